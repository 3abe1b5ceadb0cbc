"""Checked config values: durations within bounds, finite numbers, regular expressions that
cannot run away, phone regions the phone library knows."""

from __future__ import annotations

import functools
import importlib.util
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncd.config_errors import ConfigError, Problems

_DURATION_PART = re.compile(r"(\d{1,12}(?:\.\d{1,9})?)\s*(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: the largest whole number any setting takes (beyond it, floats lose precision)
LARGEST_INT = 2**53
#: a pattern longer than this is refused
REGEX_MAX_LENGTH = 500
REGEX_MAX_GROUPS = 50

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


@dataclass(frozen=True)
class Bounds:
    """The range a duration may take, in seconds."""

    minimum: float
    maximum: float


#: a sync's ``interval`` (and ``[defaults] interval``): at least 10 s, at most 30 days
INTERVAL = Bounds(10.0, 30 * DAY)
#: ``full_every``: a full listing at most every minute, at least once a year
FULL_EVERY = Bounds(MINUTE, 365 * DAY)
#: ``[daemon] shutdown_deadline``
SHUTDOWN_DEADLINE = Bounds(1.0, HOUR)


def format_seconds(seconds: float) -> str:
    """``600`` → ``"10m"``; ``0.001`` → ``"0.001s"``."""
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_duration(value: object, file: Path, key: str, bounds: Bounds | None = None) -> float:
    """``"10m"``, ``"1h30m"``, ``"45s"``, ``"1d"`` or a number of seconds, within ``bounds``."""
    example = "expected a duration such as '30s', '10m', '1h' or '1d'"
    if isinstance(value, bool):
        raise ConfigError(file, key, f"{example}, got {value!r}")
    if isinstance(value, int):
        if abs(value) > LARGEST_INT:
            raise ConfigError(file, key, f"{example}, got a number of {len(str(value))} digits")
        seconds = float(value)
    elif isinstance(value, float):
        seconds = value
    elif isinstance(value, str):
        text = value.strip().lower()
        pos = 0
        seconds = 0.0
        for match in _DURATION_PART.finditer(text):
            if text[pos : match.start()].strip():
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos == 0 or text[pos:].strip():
            shown = value if len(value) <= 40 else value[:40] + "…"
            raise ConfigError(file, key, f"{example}, got {shown!r}")
    else:
        raise ConfigError(file, key, f"{example}, got {type(value).__name__}")
    if not math.isfinite(seconds):
        raise ConfigError(file, key, f"{example}, got {value!r}")
    if seconds <= 0:
        raise ConfigError(file, key, "must be longer than zero")
    if bounds is not None:
        if seconds < bounds.minimum:
            raise ConfigError(
                file,
                key,
                f"{format_seconds(seconds)} is shorter than the minimum of "
                f"{format_seconds(bounds.minimum)}",
            )
        if seconds > bounds.maximum:
            raise ConfigError(
                file,
                key,
                f"{_big(seconds)} is longer than the maximum of {format_seconds(bounds.maximum)}",
            )
    return seconds


def _big(seconds: float) -> str:
    return format_seconds(seconds) if seconds < 1e12 else f"{seconds:.3g}s"


def check_number(value: Any, file: Path, key: str) -> None:
    """Refuse NaN, infinities and integers too large to be meant."""
    if isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(file, key, f"expected a finite number, got {value!r}")
    if isinstance(value, int) and abs(value) > LARGEST_INT:
        raise ConfigError(file, key, f"a number of {len(str(abs(value)))} digits is out of range")


@functools.cache
def phone_regions() -> frozenset[str]:
    """The regions the phone number library knows (``phonenumbers.SUPPORTED_REGIONS``).

    Read from the names of its metadata files (``data/region_GB.py``, …; the non-geographic
    ones are numbers) rather than by importing it: every sync's ``phone_region`` is checked at
    start-up, and the library is about 1 MB of a daemon's memory, which a daemon whose numbers
    are all in E.164 never needs otherwise (syncd/contact.py imports it on the first national
    number). Should the package ever be laid out otherwise, it is imported.
    """
    spec = importlib.util.find_spec("phonenumbers")
    for location in (spec.submodule_search_locations or ()) if spec is not None else ():
        names = (
            path.name[len("region_") : -len(".py")]
            for path in Path(location).glob("data/region_*.py")
        )
        regions = frozenset(name for name in names if name.isalpha())
        if regions:
            return regions
    import phonenumbers

    return frozenset(phonenumbers.SUPPORTED_REGIONS)


def check_phone_region(value: Any, file: Path, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(file, key, f"expected a string, got {type(value).__name__}")
    region = value.strip().upper()
    if region not in phone_regions():
        raise ConfigError(
            file,
            key,
            f"{value!r} is not a region the phone number library knows "
            "(a two-letter country code such as GB, US, DE)",
        )
    return region


# --- regular expressions ------------------------------------------------------------------------

try:  # Python 3.11+: the parser behind re.compile
    from re import _parser as _sre_parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older layouts
    import sre_parse as _sre_parser


def check_regex(pattern: str, file: Path, key: str) -> None:
    """Refuse a pattern that is invalid, too long, or able to backtrack without end on a short
    field (a quantified group holding another unbounded quantifier: ``(a+)+``, ``(a*)*``)."""
    if len(pattern) > REGEX_MAX_LENGTH:
        raise ConfigError(
            file, key, f"a regular expression may be {REGEX_MAX_LENGTH} characters at most"
        )
    try:
        compiled = re.compile(pattern)
        parsed = _sre_parser.parse(pattern)
    except re.error as exc:
        raise ConfigError(file, key, f"not a valid regular expression: {exc}") from None
    except (RecursionError, OverflowError, ValueError, MemoryError):
        raise ConfigError(file, key, "regular expression too complex") from None
    if compiled.groups > REGEX_MAX_GROUPS:
        raise ConfigError(
            file, key, f"a regular expression may have {REGEX_MAX_GROUPS} groups at most"
        )
    try:
        nested = _nested_repeat(parsed, 0)
    except RecursionError:  # pragma: no cover - bounded by the length limit
        nested = True
    if nested:
        raise ConfigError(
            file,
            key,
            "regular expression has a repeated group that itself repeats (like (a+)+), which "
            "can take forever to match; simplify it",
        )


_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}


def _nested_repeat(items: Any, depth: int) -> bool:
    """Whether a repeat with an unbounded or large maximum holds another repeat."""
    for op, arg in items:
        name = str(op)
        if name in _REPEATS:
            _low, high, body = arg
            if _unbounded(high) and _has_repeat(body):
                return True
            if _nested_repeat(body, depth + 1):
                return True
        else:
            for sub in _subpatterns(arg):
                if _nested_repeat(sub, depth + 1):
                    return True
    return False


def _unbounded(high: int) -> bool:
    return high > 20  # MAXREPEAT, or a count large enough to explode


def _has_repeat(items: Any) -> bool:
    for op, arg in items:
        name = str(op)
        if name in _REPEATS:
            if arg[1] > 1:
                return True
            if _has_repeat(arg[2]):
                return True
        else:
            for sub in _subpatterns(arg):
                if _has_repeat(sub):
                    return True
    return False


def _subpatterns(arg: Any) -> list[Any]:
    """The nested patterns inside one parsed item (groups, branches, lookarounds)."""
    found: list[Any] = []
    if isinstance(arg, _sre_parser.SubPattern):
        found.append(arg)
    elif isinstance(arg, tuple | list):
        for part in arg:
            if isinstance(part, _sre_parser.SubPattern):
                found.append(part)
            elif isinstance(part, tuple | list):
                found.extend(_subpatterns(part))
    return found


# --- shared by the loaders -------------------------------------------------------------------


def check_keys(
    table: Mapping[str, Any], allowed: Sequence[str], file: Path, prefix: str, problems: Problems
) -> None:
    for key in table:
        if key not in allowed:
            hint = ", ".join(allowed)
            problems.add(
                ConfigError(file, f"{prefix}{key}", f"unknown key (expected one of: {hint})")
            )


def choice(value: Any, choices: Sequence[str], file: Path, key: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(file, key, f"must be one of {', '.join(choices)}; got {show(value)}")
    return value


def string(value: Any, file: Path, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(file, key, f"expected a string, got {type_name(value)}")
    return value


def table(value: Any, file: Path, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(file, key, f"expected a table, got {type_name(value)}")
    return value


def type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def show(value: Any) -> str:
    """A value for a message: short, and never a whole nested structure."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:60] + "…")
    if isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        text = str(value)
        return text if len(text) <= 20 else f"a number of {len(text)} digits"
    return type_name(value)
