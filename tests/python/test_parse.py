"""Limit strings (hammer.parse, the notation of the `limits` package) and the checks a Limit makes when it is built
(include/hammer.h's ranges), so that a bad limit fails at start-up with the field and its range, not at each call."""
import pytest

import hammer
from hammer import Limit

SECOND, MINUTE, HOUR, DAY = 1000, 60_000, 3_600_000, 86_400_000


# ---------------------------------------------------------------------------------------------------------------------
# hammer.parse
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("10/second", [(10, SECOND)]),
    ("10 per second", [(10, SECOND)]),
    ("10per second", [(10, SECOND)]),                       # limits' regex: spaces around "per" are optional
    ("10/seconds", [(10, SECOND)]),
    ("5 / 2 minutes", [(5, 2 * MINUTE)]),
    ("5/2minute", [(5, 2 * MINUTE)]),
    ("1 PER HOUR", [(1, HOUR)]),
    ("100/Day", [(100, DAY)]),
    ("3/month", [(3, 30 * DAY)]),                           # limits' month: 30 days
    ("1/year", [(1, 360 * DAY)]),                           # limits' year: 12 of its months
    ("10/second;1000/day", [(10, SECOND), (1000, DAY)]),
    ("10/second, 1000/day", [(10, SECOND), (1000, DAY)]),
    (" 10/second | 20 per 2 minutes ;3/hour ", [(10, SECOND), (20, 2 * MINUTE), (3, HOUR)]),
    ("1000000000/second", [(10**9, SECOND)]),
    ("1/10 years", [(1, 10 * 360 * DAY)]),
])
def test_parse(text, expected):
    assert hammer.parse(text) == [Limit.fixed_window(n, ms) for n, ms in expected]


def test_the_same_as_limits_where_it_is_installed():
    limits = pytest.importorskip("limits")   # optional: the reference notation, when present
    for text in ("10/second", "5 per 2 minutes", "1/hour;100/day", "3/month, 2/year", "7 per 3 Seconds"):
        theirs = [(item.amount, item.get_expiry() * 1000) for item in limits.parse_many(text)]
        assert [(x.limit, x.period_ms) for x in hammer.parse(text)] == theirs, text


@pytest.mark.parametrize("name,number", [(n, a) for a, n in hammer.ALGORITHMS.items()])
def test_algorithm_keyword(name, number):
    for algorithm in (name, name.upper(), number):
        assert hammer.parse("10/second;100/minute", algorithm=algorithm) == [
            Limit(number, 10, SECOND), Limit(number, 100, MINUTE)]
    assert hammer.parse("10/second", algorithm=name, burst=30) == [Limit(number, 10, SECOND, 30)]


def test_fixed_window_by_default_as_limits():
    assert hammer.parse("10/second")[0].algorithm == hammer.FIXED_WINDOW


@pytest.mark.parametrize("text,quoted", [
    ("", "an empty limit"),
    ("10/second;", "an empty limit"),
    (";10/second", "an empty limit"),
    ("10/second;;1/day", "an empty limit"),
    ("ten/second", "'ten/second'"),
    ("10/second;ten/minute", "'ten/minute'"),
    ("10 second", "'10 second'"),
    ("10/", "'10/'"),
    ("/second", "'/second'"),
    ("-1/second", "'-1/second'"),
    ("1.5/second", "'1.5/second'"),
    ("10/fortnight", "'fortnight'"),
    ("10/ms", "'ms'"),
    ("10/secondss", "'secondss'"),
    ("10/0 seconds", "'10/0 seconds'"),
    ("0/second", "limit must be from 1"),
    ("1000000001/second", "limit must be from 1"),
    ("1/11 years", "period_ms must be from 1"),
    ("1" * 40 + "/second", "bad limit"),                 # never int() of an unbounded string
    ("١٠/second", "bad limit"),                          # Arabic-Indic digits are not [0-9]
])
def test_parse_errors_quote_the_bad_piece(text, quoted):
    with pytest.raises(ValueError) as e:
        hammer.parse(text)
    assert isinstance(e.value, hammer.InvalidError)
    assert quoted in str(e.value), str(e.value)


def test_parse_checks_each_limit_for_its_algorithm():
    # 10^6 per year fits the windows but not the buckets (capacity x period over 2^52)
    assert hammer.parse("1000000/year")
    with pytest.raises(ValueError) as e:
        hammer.parse("10/second;1000000/year", algorithm="gcra")
    assert "'1000000/year'" in str(e.value) and "2^52" in str(e.value)


@pytest.mark.parametrize("bad", [None, 10, b"10/second", ["10/second"]])
def test_parse_takes_a_str(bad):
    with pytest.raises(hammer.InvalidError, match="must be a str"):
        hammer.parse(bad)


@pytest.mark.parametrize("algorithm", ["fixed", "bucket", max(hammer.ALGORITHMS) + 1, -1, True, None, 1.0])
def test_parse_bad_algorithm(algorithm):
    with pytest.raises(hammer.InvalidError, match="algorithm must be one of"):
        hammer.parse("10/second", algorithm=algorithm)


def test_parse_one():
    assert hammer.parse_one("5/minute", algorithm="sliding_window") == Limit.sliding_window(5, MINUTE)
    with pytest.raises(hammer.InvalidError, match="holds 2 limits"):
        hammer.parse_one("5/minute;10/hour")


def test_parsed_limits_limit(redis_server, uid):
    """A parsed limit is an ordinary Limit: it decides in Redis as the constructor's would."""
    with hammer.Hammer(redis_server.url()) as h:
        per_minute, per_day = hammer.parse("2/minute;3/day", algorithm="sliding_window")
        t = 1_700_000_000_000
        assert [h.hit(uid, per_minute, now_ms=t + i).allowed for i in range(3)] == [True, True, False]
        assert h.hit(uid + "d", per_day, now_ms=t).remaining == 2
        h.delete_buckets(uid)
        h.delete_buckets(uid + "d")


# ---------------------------------------------------------------------------------------------------------------------
# Limit: checked when made
# ---------------------------------------------------------------------------------------------------------------------
BAD = [
    (lambda: Limit.sliding_window(0, 1000), "limit must be from 1 to 1_000_000_000, not 0"),
    (lambda: Limit.fixed_window(10**9 + 1, 1000), "limit must be from 1 to 1_000_000_000"),
    (lambda: Limit.gcra(10, -5), "period_ms must be from 1 to 315_360_000_000 (10 years), not -5"),
    (lambda: Limit.token_bucket(10, 0), "period_ms must be from 1"),
    (lambda: Limit.fixed_window(10, 10**12), "period_ms must be from 1 to 315_360_000_000 (10 years)"),
    (lambda: Limit.leaky_bucket(10, 1000, -1), "burst must be from 0 (= limit) to 1_000_000_000, not -1"),
    (lambda: Limit.token_bucket(10, 1000, 10**9 + 1), "burst must be from 0"),
    (lambda: Limit.gcra(10**6, 31_536_000_000), "limit x period_ms must be at most 2^52 for gcra"),
    (lambda: Limit.token_bucket(1, 315_360_000_000, 20_000), "burst x period_ms must be at most 2^52"),
    (lambda: Limit(7, 10, 1000), "unknown algorithm 7"),
    (lambda: Limit.sliding_counter(10**9, 4_503_600), "limit x period_ms must be at most 2^52 for sliding_counter"),
    (lambda: Limit(-1, 10, 1000), "unknown algorithm -1"),
]


@pytest.mark.parametrize("make,message", BAD)
def test_bad_limit_fails_when_made(make, message):
    with pytest.raises(ValueError) as e:
        make()
    assert isinstance(e.value, hammer.InvalidError) and e.value.status == hammer.ERR_INVALID
    assert message in str(e.value), str(e.value)


def test_edges_are_accepted():
    Limit.fixed_window(10**9, 315_360_000_000)            # the windows take both whole ranges
    Limit.sliding_window(1, 1)
    Limit.token_bucket(1, 315_360_000_000, 14_280)        # 14280 x 10 years <= 2^52 < 14281 x 10 years
    with pytest.raises(ValueError):
        Limit.token_bucket(1, 315_360_000_000, 14_281)
    Limit.gcra(10**9, 4_503_599)                          # 10^9 x 4503599 ms <= 2^52
    with pytest.raises(ValueError):
        Limit.gcra(10**9, 4_503_600)


def test_python_and_library_agree_on_the_edges(redis_server, uid):
    """Each edge the constructor accepts, the library accepts too (raw hammer_limit structs, bypassing Python's
    check); one past it, the library refuses as well: the two checks are the same."""
    import ctypes
    with hammer.Hammer(redis_server.url()) as h:
        for algorithm, limit, period, burst, ok in [
                (0, 10**9, 315_360_000_000, 0, True), (0, 10**9 + 1, 1000, 0, False),
                (1, 5, 315_360_000_001, 0, False), (2, 1, 315_360_000_000, 14_280, True),
                (2, 1, 315_360_000_000, 14_281, False), (4, 10**9, 4_503_599, 0, True),
                (4, 10**9, 4_503_600, 0, False), (3, 5, 1000, -1, False),
                (5, 10**9, 4_503_599, 0, True), (5, 10**9, 4_503_600, 0, False),
                (5, 1, 315_360_000_000, 10**9, True),   # the counter's capacity is its limit: burst is ignored
                (6, 5, 1000, 0, False)]:
            raw = hammer.hammer_limit(algorithm, limit, period, burst)
            out = hammer.hammer_decision()
            status = hammer.raw.hammer_peek(h._handle, (uid + str(algorithm)).encode(), ctypes.byref(raw),
                                            ctypes.byref(out))
            assert (status == hammer.OK) == ok, (algorithm, limit, period, burst, status)
            try:
                Limit(algorithm, limit, period, burst)
                python_ok = True
            except hammer.InvalidError:
                python_ok = False
            assert python_ok == ok, (algorithm, limit, period, burst)


def test_limiters_take_a_limit_string(redis_server, uid):
    import asyncio

    import hammer.aio
    with hammer.Hammer(redis_server.url()) as h:
        lim = hammer.Limiter(h, "2/hour", key=uid)
        assert lim.limit_spec == Limit.fixed_window(2, HOUR)
        lim.check()
        lim.check()
        with pytest.raises(hammer.RateLimited):
            lim.check()
        lim.reset()
        with pytest.raises(ValueError, match="holds 2 limits"):
            hammer.Limiter(h, "2/hour;3/day", key=uid)

        async def main():
            async with hammer.aio.Hammer(h) as ah:
                return hammer.aio.Limiter(ah, "3/minute", key=uid).limit_spec
        assert asyncio.run(main()) == Limit.fixed_window(3, MINUTE)
