"""A fake RESP server on loopback, for the few tests that need a server that misbehaves (a broken proxy, a buggy
Redis-compatible server, a man in the middle). Everything else talks to a real redis-server.

Each accepted connection runs in its own thread: commands are parsed as RESP arrays, PING gets +PONG, INFO the
`INFO server` of a Redis 7.0.15 and COMMAND an entry for every command asked about (what hammer_open checks; see
info_server() and command_info() to answer otherwise), and every other command goes to `answer(conn_no, cmd_no,
args) -> list of steps`; a step is bytes to send, a float (seconds to sleep), a function (called: e.g. to tell the
test that bytes were sent), or None (close the connection). The answer's honest value for a call is derived from
its id, so a
reply that reaches the wrong call shows as a wrong value."""
import socket
import threading
import time


def honest(id_bytes):
    """The value an honest server answers for an id: distinct per id, never 0 or 1."""
    return 1000 * (sum(id_bytes) % 997 + len(id_bytes)) + 7


def id_of_key(key, prefix=b"Hammer:Redis:"):
    """The id inside a key or base `<prefix><id>:<suffix>`."""
    assert key.startswith(prefix), key
    return key[len(prefix):key.rindex(b":")]


def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def info_server(redis_version=b"7.0.15", **fields):
    """The steps answering INFO server: a server of that redis_version, with further fields (valkey_version=...)."""
    lines = [b"# Server", b"redis_version:" + redis_version, b"redis_mode:standalone", b"os:Linux"]
    lines += [k.encode() + b":" + v for k, v in fields.items()]
    return [bulk(b"\r\n".join(lines) + b"\r\n")]


def command_info(missing=()):
    """An answer function for COMMAND INFO: nil for the commands in `missing` (lower case), an entry for others."""
    def answer(args):
        names = [a.lower() for a in args[2:]]
        entry = lambda n: b"*6\r\n" + bulk(n) + b":-2\r\n*0\r\n:1\r\n:1\r\n:1\r\n"  # noqa: E731
        return [b"*%d\r\n" % len(names) + b"".join(b"$-1\r\n" if n in missing else entry(n) for n in names)]
    return answer


def read_command(f):
    line = f.readline()
    if not line:
        return None
    if not line.startswith(b"*"):
        return [line.strip()]  # inline command
    args = []
    for _ in range(int(line[1:])):
        n = int(f.readline()[1:])
        args.append(f.read(n + 2)[:-2])
    return args


class FakeRedis:
    def __init__(self, answer, ping=None, info=None, command=None):
        self.answer = answer
        self.ping = ping            # steps for PING (default +PONG)
        self.info = info if info is not None else info_server()   # steps for INFO
        self.command = command or command_info()                  # args -> steps for COMMAND
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0
        self.closed_by_client = 0   # connections the client closed (EOF or a reset)
        self.commands = []          # (conn_no, args) of every command but PING
        self.stopping = False
        self.threads = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)

    def url(self, **opts):
        opts.setdefault("expiry_ms", 60000)
        return f"redis://127.0.0.1:{self.port}/?" + "&".join(f"{k}={v}" for k, v in opts.items())

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                n = self.connections
                self.connections += 1
            t = threading.Thread(target=self._serve, args=(c, n), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, c, conn_no):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = c.makefile("rb")
        cmd_no = 0
        try:
            while not self.stopping:
                args = read_command(f)
                if args is None:
                    self._closed_by_client()
                    return
                if args[0].upper() == b"PING":
                    steps = self.ping if self.ping is not None else [b"+PONG\r\n"]
                elif args[0].upper() == b"INFO":
                    steps = self.info
                elif args[0].upper() == b"COMMAND":
                    steps = self.command(args)
                else:
                    with self.lock:
                        self.commands.append((conn_no, args))
                    steps = self.answer(conn_no, cmd_no, args)
                    cmd_no += 1
                for s in steps:
                    if s is None:
                        return
                    if isinstance(s, float):
                        time.sleep(s)
                    elif callable(s):
                        s()
                    else:
                        c.sendall(s)
        except ConnectionResetError:
            self._closed_by_client()   # closed with bytes of ours unread: the client's kernel answers with a reset
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def _closed_by_client(self):
        with self.lock:
            self.closed_by_client += 1

    def wait_closed_by_client(self, n, within=5.0):
        """closed_by_client once it reaches n or `within` seconds have passed: the connection's thread sees the
        client's close when it is next scheduled, which under load can be after the client's next calls."""
        end = time.monotonic() + within
        while self.closed_by_client < n and time.monotonic() < end:
            time.sleep(0.01)
        return self.closed_by_client

    def close(self):
        self.stopping = True
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
