"""Limit strings in the notation of the `limits` package (Flask-Limiter's and slowapi's), so that settings copy over:

    hammer.parse("10/second")                  -> [Limit.fixed_window(10, 1000)]
    hammer.parse("10 per 2 minutes; 1000/day") -> [Limit.fixed_window(10, 120_000),
                                                   Limit.fixed_window(1000, 86_400_000)]
    hammer.parse("5/minute", algorithm="sliding_window")

One limit is `N / [M] UNIT` or `N per [M] UNIT`: N hits per M (default 1) UNITs, UNIT one of second, minute, hour,
day, month (30 days) and year (360 days, as `limits` counts them), singular or plural, any case, spaces anywhere
between the parts. Several are separated by `;`, `,` or `|`. The algorithm is a keyword (a name of
hammer.ALGORITHMS or its number), fixed window by default as in `limits`; `burst` applies to each limit of
the string (buckets and GCRA; 0: = N; the windows ignore it). Any bad piece is an InvalidError (a ValueError)
that quotes it.
"""
import re
from typing import List, Union

from ._api import ALGORITHMS, FIXED_WINDOW, Limit
from .errors import InvalidError

__all__ = ["parse", "parse_one", "UNITS_MS"]

UNITS_MS = {"second": 1000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000,
            "month": 30 * 86_400_000, "year": 360 * 86_400_000}
_SEPARATORS = re.compile(r"[,;|]")
# limits' SINGLE_EXPR, matched whole: [0-9] and not \d (no other scripts' digits), at most 30 of them (int() of
# thousands of digits raises a ValueError of its own), "per" with or without spaces.
_ONE = re.compile(r"\s*([0-9]{1,30})\s*(?:/|per)\s*([0-9]{1,30})?\s*([a-z]+)\s*", re.IGNORECASE)
_BY_NAME = {name: number for number, name in ALGORITHMS.items()}
_FORM = "N/[M] UNIT or N per [M] UNIT, UNIT one of second, minute, hour, day, month, year (or plural)"


def _algorithm(algorithm: Union[str, int]) -> int:
    if isinstance(algorithm, str) and algorithm.lower() in _BY_NAME:
        return _BY_NAME[algorithm.lower()]
    if isinstance(algorithm, int) and not isinstance(algorithm, bool) and algorithm in ALGORITHMS:
        return algorithm
    raise InvalidError(f"algorithm must be one of {', '.join(ALGORITHMS.values())} (or 0 to {max(ALGORITHMS)}), "
                       f"not {algorithm!r}")


def parse(text: str, algorithm: Union[str, int] = FIXED_WINDOW, burst: int = 0) -> List[Limit]:
    """The limits of a string of `limits`' notation (see the module's docstring), in the order written."""
    if not isinstance(text, str):
        raise InvalidError(f"a limit string must be a str, not {type(text).__name__}")
    algo = _algorithm(algorithm)
    out: List[Limit] = []
    for piece in _SEPARATORS.split(text):
        m = _ONE.fullmatch(piece)
        if not m:
            what = "an empty limit" if not piece.strip() else f"bad limit {piece.strip()!r}"
            raise InvalidError(f"{what} in {text!r}: expected {_FORM}, several separated by ; or ,")
        amount, multiples, unit = m.groups()
        unit_ms = UNITS_MS.get(unit.lower()) or UNITS_MS.get(unit.lower()[:-1] if unit.lower().endswith("s") else "")
        if unit_ms is None:
            raise InvalidError(f"bad limit {piece.strip()!r} in {text!r}: unknown unit {unit!r} (second, minute, "
                               f"hour, day, month or year, or plural)")
        count = int(multiples) if multiples is not None else 1
        if count < 1:
            raise InvalidError(f"bad limit {piece.strip()!r} in {text!r}: the period must be at least 1 {unit}")
        try:
            out.append(Limit(algo, int(amount), count * unit_ms, burst))
        except InvalidError as e:
            raise InvalidError(f"bad limit {piece.strip()!r} in {text!r}: {e.message}") from None
    return out


def parse_one(text: str, algorithm: Union[str, int] = FIXED_WINDOW, burst: int = 0) -> Limit:
    """The one limit of a string (InvalidError when it holds several): where only one limit fits."""
    limits = parse(text, algorithm, burst)
    if len(limits) != 1:
        raise InvalidError(f"{text!r} holds {len(limits)} limits where one is expected")
    return limits[0]
