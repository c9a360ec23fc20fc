"""TLS (rediss://, issue 11) against real redis-server TLS ports, with certificates made at test time by openssl
(tests/tls_certs.py: a CA, a server certificate for DNS:localhost and IP:127.0.0.1, an expired one, a client
certificate, a second CA). The shared server (redis_server) has a TLS port next to its plaintext one, on the same
data; tests that need another server set-up start their own."""
import os
import re
import subprocess
import threading
import time

import pytest

import hammer
from redis_server import RedisServer, no_tls_reason, server_has_tls

# Every test here needs a server with TLS ($HAMMER_REDIS_SERVER may name one built without: make test-servers).
pytestmark = pytest.mark.skipif(not server_has_tls(), reason=no_tls_reason())

NOW = 1_700_000_000_000
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLACK = 0.3


def opens(url):
    h = hammer.Hammer(url)
    h.close()


def refused(url, error=hammer.ConnectError):
    with pytest.raises(error) as e:
        opens(url)
    return str(e.value)


def test_calls_over_tls_reach_the_same_data_as_plaintext(redis_server, uid):
    with hammer.Hammer(redis_server.tls_url()) as h:
        assert [h.count_hit(uid, 7, NOW) for _ in range(3)] == [1, 2, 3]
        assert redis_server.cli("HGET", f"Hammer:Redis:{uid}:7", "count") == b"3"   # written over TLS, read plain
        assert h.get_bucket(uid, 7).count == 3
        lim = hammer.Limit.fixed_window(2, 60000)
        assert [h.hit(uid + ":w", lim, now_ms=NOW).allowed for _ in range(3)] == [True, True, False]
        # A batch whose replies span several TLS records (records carry at most 16 KiB): 1,000 decisions of 5
        # integers, 8 chunks in one pipeline.
        out = h.hit_many([(f"{uid}:m:{i}", lim, 1, NOW) for i in range(1000)])
        assert [d.count for d in out] == [1] * 1000
        assert h.delete_buckets(uid) >= 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_host_is_verified_by_name_or_ip_address(redis_server, host):
    opens(redis_server.tls_url(host=host))


def test_a_certificate_from_another_ca_is_refused_with_openssls_reason(redis_server, tls_certs):
    t = time.monotonic()
    msg = refused(redis_server.tls_url(ssl_ca_certs=tls_certs.other_ca))
    assert "certificate verify failed" in msg and "ssl_ca_certs" in msg, msg
    assert time.monotonic() - t < 1, "a verification failure is not a timeout"
    # Without ssl_ca_certs the system's trust store is used, which does not know the test CA.
    url = re.sub(r"&ssl_ca_certs=[^&]*", "", redis_server.tls_url())
    assert "certificate verify failed" in refused(url)


def test_a_wrong_host_name_is_refused_and_the_message_says_what_the_certificate_names(redis_server):
    msg = refused(redis_server.tls_url(ssl_server_name="wrong.example"))
    assert "hostname mismatch" in msg and "DNS:localhost" in msg and "wrong.example" in msg, msg
    # ssl_check_hostname=false skips the name only: the chain is still verified.
    opens(redis_server.tls_url(ssl_server_name="wrong.example", ssl_check_hostname="false"))
    assert "certificate verify failed" in refused(
        redis_server.tls_url(ssl_server_name="wrong.example", ssl_check_hostname="false", ssl_ca_certs=
                             redis_server.tls.other_ca))
    # ssl_server_name names the host when connecting by address.
    opens(redis_server.tls_url(ssl_server_name="localhost"))


def test_cert_reqs_none_verifies_nothing(redis_server, tls_certs):
    opens(redis_server.tls_url(ssl_ca_certs=tls_certs.other_ca, ssl_cert_reqs="none"))


def test_ca_path_is_a_directory_of_trusted_cas(redis_server, tls_certs):
    url = re.sub(r"&ssl_ca_certs=[^&]*", "", redis_server.tls_url(ssl_ca_path=tls_certs.ca_dir))
    opens(url)


def test_an_expired_server_certificate_is_refused(tls_certs):
    with RedisServer(tls=tls_certs, tls_only=True, extra=[f"tls-cert-file {tls_certs.expired}"]) as s:
        msg = refused(s.url(ssl_ca_certs=tls_certs.ca))
        assert "certificate has expired" in msg, msg
        opens(s.url(ssl_ca_certs=tls_certs.ca, ssl_cert_reqs="none"))


def test_client_certificates(tls_certs):
    with RedisServer(tls=tls_certs, tls_only=True, extra=["tls-auth-clients yes"]) as s:
        base = s.url(ssl_ca_certs=tls_certs.ca)
        msg = refused(base)
        assert "client certificate" in msg, msg
        with hammer.Hammer(base + f"&ssl_certfile={tls_certs.client}&ssl_keyfile={tls_certs.client_key}") as h:
            assert h.count_hit("client-cert", 1, NOW) == 1
        msg = refused(base + f"&ssl_certfile={tls_certs.client}&ssl_keyfile={tls_certs.server_key}",
                      hammer.InvalidError)
        assert "does not match" in msg, msg


def test_files_that_cannot_be_loaded_are_named(redis_server, tls_certs):
    assert "/nonexistent/ca.pem" in refused(redis_server.tls_url(ssl_ca_certs="/nonexistent/ca.pem"),
                                            hammer.InvalidError)
    assert "ssl_certfile" in refused(redis_server.tls_url(ssl_certfile="/nonexistent/c.pem"), hammer.InvalidError)


def test_tls13_only_server_and_ssl_min_version(tls_certs):
    with RedisServer(tls=tls_certs, tls_only=True, extra=['tls-protocols "TLSv1.3"']) as s:
        opens(s.url(ssl_ca_certs=tls_certs.ca, ssl_min_version="TLSv1.3"))
        opens(s.url(ssl_ca_certs=tls_certs.ca))   # TLS 1.2 minimum, 1.3 negotiated
    with RedisServer(tls=tls_certs, tls_only=True, extra=['tls-protocols "TLSv1.2"']) as s:
        opens(s.url(ssl_ca_certs=tls_certs.ca))
        msg = refused(s.url(ssl_ca_certs=tls_certs.ca, ssl_min_version="TLSv1.3"))
        assert "ssl_min_version" in msg, msg


def test_plaintext_and_tls_mismatches_fail_within_the_timeouts_and_say_so(redis_server):
    bound = (300 + 300) / 1000 + SLACK
    t = time.monotonic()
    with pytest.raises((hammer.ConnectError, hammer.HammerTimeout, hammer.ProtocolError)) as e:
        opens(f"rediss://127.0.0.1:{redis_server.port}/?expiry_ms=1000&connect_timeout_ms=300&timeout_ms=300")
    assert time.monotonic() - t < bound
    assert "redis://" in str(e.value), str(e.value)
    t = time.monotonic()
    with pytest.raises((hammer.ConnectError, hammer.HammerTimeout, hammer.ProtocolError)) as e:
        opens(f"redis://127.0.0.1:{redis_server.tls_port}/?expiry_ms=1000&connect_timeout_ms=300&timeout_ms=300")
    assert time.monotonic() - t < bound
    assert "rediss://" in str(e.value), str(e.value)


def test_no_password_or_key_material_in_messages(tls_certs):
    with RedisServer(tls=tls_certs, tls_only=True, extra=["requirepass s3cret-pw"]) as s:
        for url in [s.url(ssl_ca_certs=tls_certs.other_ca).replace("rediss://", "rediss://:s3cret-pw@"),
                    s.url(ssl_ca_certs=tls_certs.ca).replace("rediss://", "rediss://:wrong-pw@")]:
            with pytest.raises(hammer.HammerError) as e:
                opens(url)
            assert "s3cret-pw" not in str(e.value) and "wrong-pw" not in str(e.value), str(e.value)
            assert "PRIVATE KEY" not in str(e.value)
        with hammer.Hammer(s.url(ssl_ca_certs=tls_certs.ca).replace("rediss://", "rediss://:s3cret-pw@")) as h:
            assert h.count_hit("auth", 1, NOW) == 1


def test_many_threads_on_one_handle_over_tls_count_every_hit(redis_server, uid):
    threads, per = 8, 150
    counts, errors = [], []
    lock = threading.Lock()
    with hammer.Hammer(redis_server.tls_url(pool_size=4)) as h:
        def work():
            for _ in range(per):
                try:
                    c = h.count_hit(uid, 1, NOW)
                except hammer.HammerError as e:
                    with lock:
                        errors.append(e)
                    continue
                with lock:
                    counts.append(c)
        ts = [threading.Thread(target=work) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, errors[:3]
        assert sorted(counts) == list(range(1, threads * per + 1))
        assert h.stats().connections <= 4


def storm(h, uid, seconds, threads=4):
    """Threads calling count_hit for `seconds`: (the counts that returned OK, failures by exception type)."""
    ok, failed = [], {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def work():
        while time.monotonic() < stop:
            try:
                c = h.count_hit(uid, 1, NOW)
            except hammer.HammerError as e:
                with lock:
                    failed[type(e).__name__] = failed.get(type(e).__name__, 0) + 1
                time.sleep(0.005)
                continue
            with lock:
                ok.append(c)
    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    return ts, ok, failed


def wait_for_aof_rewrite(s):
    """Redis 7 writes its first AOF base file in the background: a restart before that would lose the data."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        info = s.cli("INFO", "persistence").decode()
        if "aof_rewrite_in_progress:0" in info and "aof_rewrite_scheduled:0" in info:
            return
        time.sleep(0.05)
    raise AssertionError("the AOF rewrite did not finish")


def test_faults_over_tls_restart_freeze_and_client_kill(tls_certs, uid):
    with RedisServer(tls=tls_certs, tls_only=True, extra=["appendonly yes", "appendfsync always"]) as s:
        url = s.url(ssl_ca_certs=tls_certs.ca, connect_timeout_ms=300, timeout_ms=300, pool_size=4)
        with hammer.Hammer(url) as h:
            # A restart in the middle of a storm: calls fail only while it lasts; every OK count is in Redis once.
            wait_for_aof_rewrite(s)
            ts, ok, failed = storm(h, uid, 1.5)
            time.sleep(0.5)
            s.restart()
            for t in ts:
                t.join()
            assert len(ok) == len(set(ok)), "a count returned twice"
            total = int(s.cli("HGET", f"Hammer:Redis:{uid}:1", "count"))
            assert max(ok) <= total <= len(ok) + sum(failed.values())
            assert h.count_hit(uid, 1, NOW) == total + 1
            # A freeze: calls fail with a timeout within the bound, then the handle recovers.
            s.pause()
            try:
                t = time.monotonic()
                with pytest.raises(hammer.HammerTimeout):
                    h.count_hit(uid, 1, NOW)
                assert time.monotonic() - t < 0.6 + SLACK
            finally:
                s.resume()
            time.sleep(1.1)   # past the breaker's back-off
            before = h.count_hit(uid, 1, NOW)
            # CLIENT KILL of every connection: pooled ones are replaced; at most one call per connection fails.
            s.cli("CLIENT", "KILL", "TYPE", "normal")
            results = []
            for _ in range(10):
                try:
                    results.append(h.count_hit(uid, 1, NOW))
                except hammer.ConnectError:
                    results.append(None)
            assert results.count(None) <= 4, results
            assert [r for r in results if r is not None][-1] > before


def test_the_library_needs_only_libssl_and_libcrypto_more():
    lib = os.path.join(ROOT, "build", "lib", "libhammer.so")
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                            subprocess.run(["readelf", "-d", lib], capture_output=True, text=True).stdout))
    assert {"libssl.so.3", "libcrypto.so.3"} <= needed, needed
    assert needed - {"libssl.so.3", "libcrypto.so.3"} == {"libhiredis.so.0.14", "libm.so.6", "libc.so.6",
                                                          "ld-linux-x86-64.so.2"}, needed
