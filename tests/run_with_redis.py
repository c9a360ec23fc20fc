"""Runs a program with HAMMER_URL set: the caller's, or a throwaway redis-server on a free loopback port."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redis_server import RedisServer  # noqa: E402


def main():
    cmd = sys.argv[1:]
    if os.environ.get("HAMMER_URL"):
        sys.exit(subprocess.call(cmd))
    with RedisServer() as server:
        env = dict(os.environ, HAMMER_URL=server.url(expiry_ms=60000))
        print(f"(throwaway redis-server on 127.0.0.1:{server.port})", flush=True)
        sys.exit(subprocess.call(cmd, env=env))


if __name__ == "__main__":
    main()
