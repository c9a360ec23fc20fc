"""Which servers hammer_open accepts (issue 18): Redis 6.2 or later, Valkey, or a Redis-compatible server with every
command the library sends. An older server is refused at open with HAMMER_ERR_REDIS and a message naming the
version found and the one needed, never with a script error at the first call.

No Redis older than 6.2 is at hand, so a fake RESP server on loopback (tests/fake_redis.py) plays one with the
INFO server answer of a real Redis 5.0.7; the accepted side runs against the real server under test
($HAMMER_REDIS_SERVER, see `make test-servers`)."""
import pytest

import hammer
from fake_redis import FakeRedis, command_info, info_server
from redis_server import server_version

NOW = 1_700_000_000_000


def no_call(conn_no, cmd_no, args):
    raise AssertionError(f"hammer_open sent {args!r} beyond PING, INFO and COMMAND")


# The head of `INFO server` on a real Redis 5.0.7 (Debian 10), as the server sends it.
REDIS_5_INFO = [b"$%d\r\n%s\r\n" % (len(t), t) for t in [
    b"# Server\r\nredis_version:5.0.7\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\n"
    b"redis_build_id:66bd629f924ac924\r\nredis_mode:standalone\r\nos:Linux 5.4.0-42-generic x86_64\r\n"
    b"arch_bits:64\r\nmultiplexing_api:epoll\r\natomicvar_api:atomic-builtin\r\ngcc_version:9.3.0\r\n"
    b"process_id:1027\r\nrun_id:9d1bb8bcd2f9d6ff1d3ec9c0b9e5dbc6a0e64f71\r\ntcp_port:6379\r\n"]]


def test_redis_5_is_refused_at_open_naming_the_version_found_and_needed():
    with FakeRedis(no_call, info=REDIS_5_INFO) as fake:
        with pytest.raises(hammer.RedisError) as e:
            hammer.Hammer(fake.url())
        msg = str(e.value)
        assert "Redis 5.0.7" in msg and "6.2 or later" in msg and f"127.0.0.1:{fake.port}" in msg, msg
        assert e.value.status == 4   # HAMMER_ERR_REDIS


@pytest.mark.parametrize("version", [b"6.0.20", b"6.1.9", b"4.0.14", b"2.8.24"])
def test_every_redis_before_6_2_is_refused(version):
    with FakeRedis(no_call, info=info_server(version)) as fake:
        with pytest.raises(hammer.RedisError, match=version.decode().replace(".", r"\.")):
            hammer.Hammer(fake.url())


@pytest.mark.parametrize("info", [
    info_server(b"6.2.0"), info_server(b"7.0.15"), info_server(b"8.2.3"), info_server(b"255.255.255"),
    info_server(b"7.2.4", valkey_version=b"9.1.2", server_name=b"valkey"),
    [b"-NOPERM this user has no permissions to run the 'info' command\r\n"],   # not judged: an ACL user
    [b"-ERR unknown command 'INFO'\r\n"],                                      # not judged: a proxy
], ids=["6.2.0", "7.0.15", "8.2.3", "unstable", "valkey", "INFO denied", "no INFO"])
def test_supported_or_unknown_servers_open(info):
    def answer(conn_no, cmd_no, args):
        assert args[0].upper() == b"EVALSHA", args
        return [b":1\r\n"]
    with FakeRedis(answer, info=info) as fake, hammer.Hammer(fake.url()) as h:
        assert h.count_hit("a", 1, NOW) == 1


def test_a_compatible_server_lacking_a_command_is_refused_naming_it():
    with FakeRedis(no_call, command=command_info(missing={b"zremrangebyscore", b"pttl"})) as fake:
        with pytest.raises(hammer.RedisError) as e:
            hammer.Hammer(fake.url())
        msg = str(e.value)
        assert "PTTL" in msg and "ZREMRANGEBYSCORE" in msg and "Redis 7.0.15" in msg, msg
        assert "ZADD" not in msg


def test_open_asks_info_server_and_every_command_once_pipelined():
    seen = []

    def command(args):
        seen.append(args)
        return command_info()(args)
    with FakeRedis(no_call, command=command) as fake, hammer.Hammer(fake.url()):
        pass
    assert len(seen) == 1 and seen[0][:2] == [b"COMMAND", b"INFO"]
    asked = {a.lower() for a in seen[0][2:]}
    assert {b"evalsha", b"hincrby", b"pexpire", b"zadd", b"time"} <= asked


def test_the_server_under_test_opens_and_counts(redis_server, uid):
    """The real server ($HAMMER_REDIS_SERVER): accepted, and count_hit, check_rate and the fixed window (what
    failed on 6.2 before the scripts kept to its commands) work."""
    name, version = server_version()
    assert name == "Valkey" or version >= (6, 2, 0)
    with hammer.Hammer(redis_server.url()) as h:
        assert h.count_hit(uid, 1, NOW) == 1
        assert h.count_hit(uid, 1, NOW + 1) == 2
        assert h.check_rate_at(uid, 60_000, 10, NOW).allowed
        # The fixed window counts on check_rate's bucket of the same window: 2.
        assert h.hit(uid, hammer.Limit.fixed_window(10, 60_000), 1, NOW).count == 2


@pytest.mark.parametrize("check", ["+info +command|info", ""], ids=["checked", "INFO and COMMAND denied"])
def test_an_acl_user_opens_with_or_without_info_and_command(own_redis, check, uid):
    """A real server's ACL user: with +info +command|info the server is checked; without, it is not, and the handle
    works all the same (hammer_open does not ask for more than the calls need)."""
    server = own_redis()
    rules = ("on >pw resetkeys ~Hammer:Redis:* -@all +evalsha +eval +hget +hset +hincrby +pexpire +pttl +zadd "
             "+zremrangebyscore +time " + check).split()
    assert server.cli("ACL", "SETUSER", "lim", *rules) == "OK"
    with hammer.Hammer(server.url(user="lim", password="pw")) as h:
        assert h.count_hit(uid, 1, NOW) == 1
    denied = [e for e in server.cli("ACL", "LOG") if b"info" in e or b"command" in e]
    assert bool(denied) == (check == ""), denied


@pytest.mark.parametrize("policy", ["", "&on_error=allow", "&fallback=local"])
def test_lazy_connect_checks_the_server_at_the_first_connection_and_refuses_every_call(policy):
    """With lazy_connect=true hammer_open talks to no server; the first connection made checks it instead, and a
    server too old answers that call and every later one with the refusal (no script runs; on_error and fallback
    do not answer it: it is no outage)."""
    with FakeRedis(no_call, info=REDIS_5_INFO) as fake:
        with hammer.Hammer(fake.url(lazy_connect="true") + policy) as h:
            assert fake.connections == 0
            for _ in range(3):
                with pytest.raises(hammer.RedisError, match=r"Redis 5\.0\.7 .* 6\.2 or later"):
                    h.hit("a", hammer.Limit.fixed_window(10, 60_000), 1, NOW)
            with pytest.raises(hammer.RedisError, match=r"5\.0\.7"):
                h.count_hit("a", 1, NOW)
        assert fake.connections == 1   # checked once; the refusal is remembered


def test_lazy_connect_on_a_supported_server_checks_once_then_calls():
    seen = []

    def command(args):
        seen.append(args)
        return command_info()(args)

    def answer(conn_no, cmd_no, args):
        assert args[0].upper() == b"EVALSHA", args
        return [b":1\r\n"]
    with FakeRedis(answer, command=command) as fake, hammer.Hammer(fake.url(lazy_connect="true")) as h:
        assert fake.connections == 0 and not seen
        for _ in range(5):
            assert h.count_hit("a", 1, NOW) == 1
        assert len(seen) == 1
