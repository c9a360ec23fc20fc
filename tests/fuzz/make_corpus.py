#!/usr/bin/env python3
"""Writes the seed corpus of the libFuzzer target (tests/fuzz/corpus/): one file per seed, named by its content's
hash. The encoding mirrors `Reader` in Sources/FuzzHammer/FuzzHammer.swift: the first byte picks the target, numbers
are one byte (an index into INTERESTING below 128, a small value 128..191) or 0xff + 8 raw big-endian bytes.

    python3 tests/fuzz/make_corpus.py        (rewrites tests/fuzz/corpus/seed-*)
"""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

INTERESTING = [0, 1, -1, 2, 1000, 60000, 2**63 - 1, -2**63, 2**63 - 2, -2**63 + 1, 2**47, 2**47 + 1, 2**52,
               10**9, 10**9 + 1, 315360000000, 315360000001, 2**31 - 1, -2**31]
CONFIG, DECIMAL, KEYS, MODEL, API, BATCH, STATUSES = range(7)


def num(v):
    if v in INTERESTING:
        return bytes([INTERESTING.index(v)])
    if -8 <= v <= 55:
        return bytes([128, (v + 8) & 0xFF])
    return b"\xff" + struct.pack(">q", v)


def ident(b, long=None):
    """An id: up to 23 bytes, then a repeat byte (241.. picks 65535, 65536, 65537, 70000, 2**20 bytes)."""
    assert len(b) < 24
    reps = 0 if long is None else 241 + [65535, 65536, 65537, 70000, 2**20].index(long)
    return bytes([len(b)]) + b + bytes([reps])


def seeds():
    urls = [
        b"redis://127.0.0.1:6379/0?expiry_ms=60000",
        b"redis://user:p%40ss@localhost:6380/2?expiry_ms=1&prefix=Hammer%3ARedis%3A&pool_size=1024",
        b"redis://secret@[::1]:6379/?expiry_ms=3153600000000&connect_timeout_ms=1&timeout_ms=3600000",
        b"redis://:pw@host/?expiry_ms=5&clock=redis&on_error=deny&fallback=local&scan_delete=yes&db=0",
        b"unix:///tmp/redis.sock?expiry_ms=7200000&db=3&on_error=allow",
        b"redis://h/?expiry_ms=0", b"redis://h/?expiry_ms=3153600000001", b"redis://h:0/?expiry_ms=1",
        b"redis://h:65536/?expiry_ms=1", b"redis://h:-1/?expiry_ms=1", b"redis://[::1/?expiry_ms=1",
        b"redis://[zz]/?expiry_ms=1", b"redis://h/?expiry_ms=1&expiry_ms=1", b"redis://h/?expiry_ms",
        b"redis://h/?expiry_ms=1&prefix=%", b"redis://h/?expiry_ms=1&prefix=%G0", b"redis://%ff%fe@h/?expiry_ms=1",
        b"redis://u%00:p@h/?expiry_ms=1", b"unix://relative.sock?expiry_ms=1", b"unix:///" + b"a" * 120 + b"?expiry_ms=1",
        b"redis://h/1/2?expiry_ms=1", b"redis://h/5?expiry_ms=1&db=6", b"redis://h/?expiry_ms=1#x", b"http://h/",
        b"redis:/h", b"://", b"", b"redis://h/?expiry_ms=99999999999999999999999", b"redis://h/?expiry_ms=+1",
        b"redis://h/?expiry_ms=1&pool_size=1025&timeout_ms=0", b"REDIS://H/?expiry_ms=1&&&",
    ]
    for u in urls:
        yield bytes([CONFIG]) + u
    for d in [b"0", b"-0", b"9223372036854775807", b"-9223372036854775808", b"9223372036854775808", b"+1", b"",
              b"007", b"1e3", b" 1", b"-", b"\xff"]:
        yield bytes([DECIMAL]) + d
    yield bytes([KEYS]) + ident(b"Hammer:") + ident(b"a*b?[c]\\") + num(-1) + b"Hammer:a*b?[c]\\:12"
    yield bytes([KEYS]) + ident(b"") + ident(b"x", long=65537) + num(2**63 - 1)
    # Models: each algorithm with boundary limits, then steps (mode, cost, now).
    for alg in range(-1, 6):
        for limit, period, burst in [(1, 1, 0), (10**9, 1, 0), (1, 315360000000, 0), (10**9, 1000, 10**9),
                                     (50, 1000, 80), (2**63 - 1, -1, -2**63)]:
            steps = [(0, 1, 0), (0, 10**9, 2**47), (1, 1, 2**47), (0, 2, 1), (2, 10**9, 2**47), (0, 0, 0)]
            body = bytes([alg + 1]) + num(limit) + num(period) + num(burst) + bytes([len(steps)])
            for mode, cost, now in steps:
                body += bytes([mode]) + num(cost) + num(now)
            yield bytes([MODEL]) + body
    # The limit lowered mid-sequence (mode byte | 0x80): hits under limit 30, then a free hit and a peek under 10.
    for alg in range(6):
        steps = [(0, 7, 1000), (0, 7, 1000), (0, 7, 1000), (0x80, 0, 1000), (0x81, 1, 1000), (0x80, 1, 1000)]
        body = bytes([alg + 1]) + num(30) + num(60000) + num(0) + bytes([len(steps)])
        for mode, cost, now in steps:
            body += bytes([mode]) + num(cost) + num(now)
        yield bytes([MODEL]) + body
    # Every exported call, once plain and once with each NULL flag.
    for fn in range(12):
        for flags in [0, 1, 2, 4, 8]:
            for idb, long in [(b"fuzz:seed", None), (b"z", 65537), (b"\x00mid", None)]:
                yield (bytes([API, fn, flags]) + ident(idb, long) + num(1000) + num(10) + num(1) + num(2**47)
                       + bytes([(fn % 5) + 1]) + num(50) + num(1000) + num(0))
    yield bytes([API, 0, 0]) + ident(b"fuzz:max") + num(2**63 - 1) + num(-2**63) + num(2**63 - 1) + num(0)
    # Batches: three requests each, valid and invalid mixed; and n out of range.
    for which in range(3):
        for flags in [0, 1, 2, 4, 8]:
            body = bytes([BATCH, which, 3, flags])
            for idb, alg in [(b"fuzz:b1", 1), (b"fuzz:b2", 4), (b"", 7)]:
                body += ident(idb) + (b"\x01" if not idb else b"") + bytes([alg]) + num(50) + num(1000) + num(0)
            body += num(1000) + num(10) + num(1) + num(-1) + num(-1) + num(5) + num(0) + num(0) + num(0)
            if flags & 8:
                body += num(-1)
            yield body
    for s in [0, 7, 8, -1, 2**31 - 1]:
        yield bytes([STATUSES]) + struct.pack(">q", s)


def main():
    os.makedirs(CORPUS, exist_ok=True)
    for name in os.listdir(CORPUS):
        if name.startswith("seed-"):
            os.remove(os.path.join(CORPUS, name))
    n = 0
    for s in seeds():
        with open(os.path.join(CORPUS, "seed-" + hashlib.sha1(s).hexdigest()[:16]), "wb") as f:
            f.write(s)
        n += 1
    print(f"{n} seeds in {os.path.relpath(CORPUS)}")


if __name__ == "__main__":
    main()
