"""provision's JMESPath function library.

Each function is a ``_func_<name>`` method; its docstring is its reference entry in
docs/mapping-functions.md (first line: what it returns; further lines: details; ``Example:``
lines: an expression and its result, checked by the tests against the example record in
:mod:`runner.mapping.docs`). Arguments with a Python default are optional; a ``*rest`` parameter
takes one or more values (zero or more when its signature entry says ``"optional": True``).

Functions that take text accept null and return null, so a missing attribute flows through
instead of failing the object, unless failing is the point (``split`` of a missing email is an
error in that object's data). A ``ValueError`` raised by a function becomes a
:class:`FunctionError` naming the function, which fails that one object with a readable reason.

:data:`SPECS` (built once, at import) is what the compiler checks expressions against and what
:meth:`Library.call_function` dispatches through: arity, argument types, and checks of literal
arguments (``arg_checks``) that run at compile time for literals and at run time for values.
"""

from __future__ import annotations

import base64 as _base64
import calendar
import codecs
import difflib
import inspect
import json
import re
import secrets
import string
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jmespath
from jmespath import exceptions as jexc
from jmespath import functions
from jmespath.functions import REVERSE_TYPES_MAP, TYPES_MAP

from runner.mapping import dotnet_dates, dotnet_regex

# --------------------------------------------------------------------------------------------
# The clock. now() and the date operators of scoping filters read the time through ``clock``;
# tests replace it (``monkeypatch.setattr(functions, "clock", lambda: fixed)``).


def system_clock() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


clock: Callable[[], datetime] = system_clock


def current_time() -> datetime:
    """``clock()`` as an aware UTC datetime (a naive clock value is taken as UTC)."""
    now = clock()
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


# --------------------------------------------------------------------------------------------
# Text helpers

# Letters that Unicode does not decompose into base letter + accent, as a target that ignores
# accents compares them (the remove_diacritics normalization of runner.engine.diff: ø is o).
_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ß": "ss",
                       "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "þ": "th", "Þ": "Th", "ı": "i",
                       "ð": "d", "Ð": "D", "ħ": "h", "Ħ": "H", "ŀ": "l", "Ŀ": "L"})
# The normalize_diacritics() function follows Entra's NormalizeDiacritics table instead: ø/Ø are
# oe/OE. Applied after decomposition, so ǣ (æ + macron) and ø̄ (ø + macron) fold too.
_ENTRA_FOLD = str.maketrans({**{chr(k): v for k, v in _FOLD.items()}, "ø": "oe", "Ø": "OE"})

_NUMBER_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "off"})


def normalize_diacritics(text: str) -> str:
    """``text`` with accents removed and special letters folded to ASCII look-alikes, the way a
    target that ignores accents compares (Ødegård is Odegard)."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def entra_diacritics(text: str) -> str:
    """``text`` as Entra's NormalizeDiacritics gives it (Ødegård is OEdegard, ǣ is ae), and
    letters its table does not list folded as :func:`normalize_diacritics` does."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text).translate(_ENTRA_FOLD)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _text(value: Any) -> str:
    """A value as text: true/false for booleans, 42 (not 42.0) for whole floats, JSON for lists."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, (datetime, date)):
        return format_iso(value) if isinstance(value, datetime) else value.isoformat()
    return str(value)


class UniqueCandidates(list):
    """What select_unique_value() returns: candidates the engine checks against the target.

    ``numbered``: when every candidate is taken, try the last one with 2, 3, ... appended. Only
    for a single candidate (which Entra's SelectUniqueValue does not accept, so no migrated
    expression relies on it); with two or more, as in Entra, the object fails instead."""

    numbered: bool = False


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def to_bool(value: Any) -> bool | None:
    """true/false for a boolean, a number (non-zero is true) or a word like yes/no; null for null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        if word == "":
            return None
        if _NUMBER_TEXT.fullmatch(word):  # Entra's CBool: any non-zero number is true ('5', '-1')
            return float(word) != 0
    raise ValueError(f"cannot read {value!r} as true or false (use true/false, yes/no, 1/0, on/off)")


def _same(actual: Any, wanted: Any) -> bool:
    """Equal, or equal as text when the types differ (a CSV cell "42" is the number 42)."""
    if actual == wanted and type(actual) is type(wanted):
        return True
    if actual is None or wanted is None:
        return False
    if isinstance(actual, bool) or isinstance(wanted, bool):
        try:
            return to_bool(actual) == to_bool(wanted)
        except ValueError:
            return False
    if isinstance(actual, (int, float)) and isinstance(wanted, (int, float)):
        return actual == wanted
    return _text(actual) == _text(wanted)


# --------------------------------------------------------------------------------------------
# Argument readers: used at run time, and on literal arguments at compile time.


def _whole(value: Any, minimum: int | None = None, what: str = "a whole number") -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected {what}, got {_text(value)}")
    if isinstance(value, int):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
            isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value)):
        number = int(value)
    else:
        raise ValueError(f"expected {what}, got {value!r}")
    if minimum is not None and number < minimum:
        raise ValueError(f"expected {what} of at least {minimum}, got {number}")
    return number


def _non_negative(value: Any) -> int:
    return _whole(value, 0, "a whole number")


def _positive(value: Any) -> int:
    return _whole(value, 1, "a whole number")


def _non_zero(value: Any) -> int:
    number = _whole(value)
    if number == 0:
        raise ValueError("items count from 1 (use -1 for the last item), got 0")
    return number


def _bits(value: Any) -> int:
    """An integer from a number or from decimal / 0x-hex text (userAccountControl comes as text)."""
    if isinstance(value, str) and re.fullmatch(r"\s*(0[xX]|&[hH])[0-9a-fA-F]+\s*", value):
        return int(value.strip()[2:], 16)
    return _whole(value, what="a whole number")


def _number(value: Any) -> float | int:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {_text(value)}")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            pass
    raise ValueError(f"expected a number, got {value!r}")


def _encoding(value: Any) -> str:
    try:
        return codecs.lookup(value).name
    except (LookupError, TypeError):
        raise ValueError(f"unknown text encoding {value!r} (e.g. 'utf-8', 'utf-16-le')") from None


_COMPARE_MODES = {"binary": "binary", "text": "text", "vbbinarycompare": "binary", "vbtextcompare": "text"}


def _compare_mode(value: Any) -> str:
    mode = _COMPARE_MODES.get(value.lower()) if isinstance(value, str) else None
    if mode is None:
        raise ValueError(f"compare must be 'binary' (case-sensitive) or 'text' (case-insensitive), got {value!r}")
    return mode


_REPLACE_MODES = ("literal", "regex")
_UNSET: Any = object()  # an optional argument that was not given (null is a value)


def _replace_mode(value: Any) -> str:
    if value not in _REPLACE_MODES:
        raise ValueError(f"mode must be 'literal' or 'regex', got {value!r}")
    return value


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    """A compiled pattern; .NET's (?<name>...) groups are accepted (see dotnet_regex)."""
    try:
        return re.compile(dotnet_regex.pattern(pattern))
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


@lru_cache(maxsize=128)
def _delimiter_regex(delimiters: str) -> re.Pattern[str]:
    return re.compile("[" + re.escape(delimiters) + "]+")


def _separator(value: Any) -> str:
    if not isinstance(value, str) or value == "":
        raise ValueError("the separator cannot be empty")
    return value


# --------------------------------------------------------------------------------------------
# Dates

_DATE_ONLY = re.compile(r"\s*\d{4}-?\d{2}-?\d{2}\s*")
_TIME_CODES = re.compile(r"%[HIMSfpzXcTRZsGVuw]")
# interval -> (unit, how many): unit "month" or "second".
_INTERVALS: dict[str, tuple[str, int]] = {}
for _names, _unit in ((("yyyy", "year", "years"), ("month", 12)), (("q", "quarter", "quarters"), ("month", 3)),
                      (("m", "month", "months"), ("month", 1)), (("ww", "week", "weeks"), ("second", 604800)),
                      (("d", "y", "w", "day", "days"), ("second", 86400)), (("h", "hour", "hours"), ("second", 3600)),
                      (("n", "minute", "minutes"), ("second", 60)), (("s", "second", "seconds"), ("second", 1))):
    for _name in _names:
        _INTERVALS[_name] = _unit
_INTERVAL_HELP = "yyyy (years), q (quarters), m (months), ww (weeks), d (days), h (hours), n (minutes), s (seconds)"


def _interval(value: Any) -> tuple[str, int]:
    unit = _INTERVALS.get(value.lower()) if isinstance(value, str) else None
    if unit is None:
        raise ValueError(f"unknown interval {value!r}; use {_INTERVAL_HELP}")
    return unit


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use IANA names such as 'Europe/Oslo' or 'UTC')") from None


def _zone_arg(value: Any) -> tzinfo:
    if not isinstance(value, str):
        raise ValueError(f"a time zone is a name such as 'Europe/Oslo', got {value!r}")
    return _zone(value)


def _date_format(value: Any) -> str:
    if not isinstance(value, str) or value == "":
        raise ValueError(f"a date format is 'iso', 'unix', strftime codes such as '%Y-%m-%d' or a .NET "
                         f"format such as 'yyyy-MM-dd', got {value!r}")
    return value


_DATE_TIME_STYLES = frozenset(s.lower() for s in (
    "None", "AllowLeadingWhite", "AllowTrailingWhite", "AllowInnerWhite", "AllowWhiteSpaces", "NoCurrentDateDefault",
    "AdjustToUniversal", "AssumeLocal", "AssumeUniversal", "RoundtripKind"))


def _entra_date_form(second: Any, fourth: Any) -> bool:
    """format_date_time(value, dateTimeStyles, inputFormat, outputFormat), Entra's argument order:
    the second argument is empty or names DateTimeStyles, and an output format follows."""
    if second is None or second == "":
        return True
    words = [w.strip().lower() for w in str(second).replace("|", ",").split(",")]
    return fourth is not None and all(w in _DATE_TIME_STYLES for w in words)


def _check_format_date_time(args: list[Any]) -> None:
    second = args[1]
    fourth = args[3] if len(args) > 3 else None
    if second is NOT_LITERAL:
        return
    if _entra_date_form(second, fourth):
        if len(args) < 4:
            raise ValueError("in Entra's form (value, date_time_styles, input_format, output_format) "
                             "the output format is missing")
        if len(args) > 4:
            raise ValueError("Entra's form (value, date_time_styles, input_format, output_format) "
                             "takes no time zones")
        formats = [(2, args[2]), (3, args[3])]
    else:
        formats = [(1, args[1]), (2, args[2])]
        for i, name in ((3, "time_zone"), (4, "input_time_zone")):
            if len(args) > i and isinstance(args[i], str):
                _named_check(i, name, _zone_arg, args[i])
    for i, fmt in formats:
        if fmt is not NOT_LITERAL:
            _named_check(i, "input_format" if i == formats[0][0] else "output_format", _date_format, fmt)


def _named_check(index: int, name: str, check: Callable[[Any], Any], value: Any) -> None:
    """Run ``check`` on a literal, naming the argument as the per-argument checks do."""
    try:
        check(value)
    except ValueError as exc:
        raise ValueError(f"argument {index + 1} ({name}): {exc}") from None


def parse_date(value: Any, zone: tzinfo = UTC) -> tuple[datetime, bool]:
    """``value`` (ISO 8601 text, a date or a datetime) as an aware datetime, and whether it was a
    calendar date without a time. Times without an offset are read in ``zone``."""
    if isinstance(value, datetime):
        moment, date_only = value, False
    elif isinstance(value, date):
        moment, date_only = datetime(value.year, value.month, value.day), True
    elif isinstance(value, str):
        moment, date_only = _parse_text_date(value)
    else:
        raise ValueError(f"cannot read {value!r} as a date; expected ISO 8601 text")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment, date_only


# A calendar date with an offset, as Workday sends it (2021-06-30+08:00, 2012-03-16-07:00):
# midnight at that offset. datetime.fromisoformat would read the offset as a time of day.
_DATE_WITH_OFFSET = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})\s*(Z|[+-]\d{2}(?::?\d{2})?)", re.I)
# The format Entra's CDate, DateAdd and Now() write (invariant culture): 8/25/2021 5:41:18 PM.
_US_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?")


def _parse_text_date(value: str) -> tuple[datetime, bool]:
    text = value.strip()
    found = _DATE_WITH_OFFSET.fullmatch(text)
    if found:
        year, month, day, offset = found.groups()
        try:
            return datetime.fromisoformat(f"{year}-{month}-{day}T00:00:00{_offset(offset)}"), False
        except ValueError as exc:
            raise ValueError(f"cannot read {value!r} as a date: {exc}") from None
    found = _US_DATE.fullmatch(text)
    if found:
        month, day, year, hour, minute, second, half = found.groups()
        clock_hour = int(hour or 0)
        if half is not None:
            if not 1 <= clock_hour <= 12:
                raise ValueError(f"cannot read {value!r} as a date: hour {clock_hour} with {half}")
            clock_hour = clock_hour % 12 + (12 if half.lower() == "pm" else 0)
        try:
            moment = datetime(int(year), int(month), int(day), clock_hour, int(minute or 0), int(second or 0))
        except ValueError as exc:
            raise ValueError(f"cannot read {value!r} as a date: {exc}") from None
        return moment, hour is None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"cannot read {value!r} as a date; expected ISO 8601 such as 2026-03-29 "
                         "or 2026-03-29T01:30:00Z") from None
    return moment, _DATE_ONLY.fullmatch(value) is not None


def _offset(text: str) -> str:
    if text.upper() == "Z":
        return "+00:00"
    digits = text[1:].replace(":", "")
    return f"{text[0]}{digits[:2]}:{digits[2:] or '00'}"


def format_iso(moment: datetime) -> str:
    """ISO 8601 with ``Z`` for UTC: 2026-03-29T01:30:00Z, 2026-03-29T03:30:00+02:00."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_BOUNDARY_INTERVALS = frozenset({"yyyy", "q", "m", "ww"})
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_AD_NEVER = frozenset({0, 9223372036854775807})


def _boundaries(code: str, a: datetime, b: datetime) -> int:
    """Visual Basic's DateDiff for yyyy, q, m and ww: calendar boundaries between two moments."""
    if code == "yyyy":
        return b.year - a.year
    if code == "q":
        return (b.year - a.year) * 4 + (b.month - 1) // 3 - (a.month - 1) // 3
    if code == "m":
        return (b.year - a.year) * 12 + b.month - a.month
    # ww: move each moment back to the Sunday its week starts on, then whole weeks between them
    a_sunday = a - timedelta(days=(a.weekday() + 1) % 7)
    b_sunday = b - timedelta(days=(b.weekday() + 1) % 7)
    days = (b_sunday - a_sunday) / timedelta(days=1)
    return int(int(days) / 7)


def _filetime(value: Any) -> int:
    """An Active Directory time stamp (a whole number, or its text as LDAP gives it)."""
    ticks = _whole(value, 0, "an Active Directory time stamp (a whole number of 100 ns since 1601)")
    if ticks > 9223372036854775807:
        raise ValueError(f"{ticks} is larger than any Active Directory time stamp")
    if ticks not in _AD_NEVER and ticks > 2650467743999999999:  # after year 9999
        raise ValueError(f"{ticks} is after the year 9999")
    return ticks


def _add_months(moment: datetime, months: int) -> datetime:
    years, month0 = divmod(moment.month - 1 + months, 12)
    year, month = moment.year + years, month0 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _read_date(value: Any, fmt: str, zone: tzinfo) -> tuple[datetime, bool]:
    if fmt == "iso":
        return parse_date(value, zone)
    if fmt == "unix":
        return datetime.fromtimestamp(_number(value), UTC), False
    if not isinstance(value, str):
        raise ValueError(f"cannot read {value!r} as a date in the format {fmt!r}")
    dotnet = dotnet_dates.is_dotnet(fmt)
    try:
        moment = dotnet_dates.parse(value, fmt) if dotnet else datetime.strptime(value.strip(), fmt)
    except ValueError:
        raise ValueError(f"cannot read {value!r} as a date in the format {fmt!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment, not dotnet_dates.has_time(fmt) if dotnet else _TIME_CODES.search(fmt) is None


# --------------------------------------------------------------------------------------------
# Other helpers

_CHAR_CLASSES = {
    "lower": string.ascii_lowercase,
    "upper": string.ascii_uppercase,
    "digits": string.digits,
    "symbols": "!#$%&*+-=?@_",
}
_RANDOM = secrets.SystemRandom()


def _char_class(value: Any) -> str:
    if value not in _CHAR_CLASSES:
        raise ValueError(f"unknown character class {value!r}; use {', '.join(map(repr, _CHAR_CLASSES))}")
    return value


def _random_length(value: Any) -> int:
    length = _whole(value, 1, "a length")
    if length > 4096:
        raise ValueError(f"a length of at most 4096, got {length}")
    return length


def _hashable(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return ("json", json.dumps(value, sort_keys=True, default=str))
    return (type(value).__name__, value)


_CULTURE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")


def _culture(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _CULTURE.fullmatch(value):
        raise ValueError(f"a culture is an RFC 4646 name such as 'en-US' or 'tr-TR', got {value!r}")
    return value


def _turkic(culture: str | None) -> bool:
    return _culture(culture) is not None and str(culture).lower().split("-")[0] in ("tr", "az")


# .NET's TextInfo.ToTitleCase: which Unicode categories end a word, and which letters start one.
_WORD_SEPARATOR_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf",
                                        "Po", "Sm", "Sc", "Sk", "So"})
_LETTER_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo"})


def _upper_one(ch: str) -> str:
    """One character title-cased, kept as it is when Python would make it two (ß -> Ss)."""
    up = ch.title()
    return up if len(up) == 1 else ch


def _lower_one(ch: str) -> str:
    low = ch.lower()
    return low if len(low) == 1 else ch


@lru_cache(maxsize=4096)
def _word_role(ch: str) -> int:
    """For ToTitleCase: 1 a letter (starts or continues a word), 2 a separator (ends one), 0 other
    word characters (marks, digits, the apostrophe)."""
    if ch == "'":
        return 0
    category = unicodedata.category(ch)
    return 1 if category in _LETTER_CATEGORIES else 2 if category in _WORD_SEPARATOR_CATEGORIES else 0


def _title_case(text: str) -> str:
    """Entra's PCase without separators: .NET ToTitleCase of the lower-cased text. A word starts
    at a letter and runs over letters, marks, digits and apostrophes up to a separator."""
    out: list[str] = []
    in_word = False
    for ch in text:
        role = _word_role(ch)
        if in_word:
            if role == 2:
                in_word = False
                out.append(ch)
            else:
                out.append(_lower_one(ch))
        elif role == 1:
            in_word = True
            out.append(_upper_one(ch))
        else:
            out.append(_lower_one(ch))
    return "".join(out)


class FunctionError(ValueError):
    """A function that cannot work on the values it was given (one object's data)."""

    def __init__(self, function_name: str, message: str):
        super().__init__(f"{function_name}(): {message}")
        self.function_name = function_name


def checks(*, usage: str | None = None, call: Callable[[list[Any]], None] | None = None,
           **by_argument: Callable[[Any], Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Attach literal checks to a function: ``name=reader`` runs ``reader`` on that argument when it
    is a literal (compile time); ``call`` sees every argument, with NOT_LITERAL where it is not one."""

    def attach(function: Callable[..., Any]) -> Callable[..., Any]:
        function.arg_checks = by_argument  # type: ignore[attr-defined]
        function.call_check = call  # type: ignore[attr-defined]
        function.usage = usage  # type: ignore[attr-defined]
        return function

    return attach


class _NotLiteral:
    def __repr__(self) -> str:
        return "NOT_LITERAL"


NOT_LITERAL: Any = _NotLiteral()


def _check_switch(args: list[Any]) -> None:
    if (len(args) - 2) % 2:
        raise ValueError(f"needs key/value pairs after the source and the default; got {len(args)} "
                         "arguments, so a key has no value")


def _check_random(args: list[Any]) -> None:
    rest = args[1:]
    if any(a is NOT_LITERAL for a in args):
        return
    if rest and not isinstance(rest[0], str):
        minimums, avoid = _entra_random_args(rest)
        _entra_pools(_random_length(args[0]), minimums, avoid)
        return
    for i, name in enumerate(rest):
        _named_check(i + 1, "classes", _char_class, name)
    classes = rest
    if rest and _random_length(args[0]) < len(set(classes)):
        raise ValueError(f"a length of {args[0]} cannot hold one character of each of "
                         f"{len(set(classes))} classes")


_ENTRA_SPECIAL = string.punctuation  # the 32 that Windows' password complexity rule counts
_ENTRA_CLASSES = (("numbers", string.digits), ("special characters", _ENTRA_SPECIAL),
                  ("capitals", string.ascii_uppercase), ("lower-case letters", string.ascii_lowercase))


def _entra_random_args(rest: list[Any]) -> tuple[list[int], str]:
    """Entra's RandomString(Length, MinimumNumbers, MinimumSpecialCharacters, MinimumCapital,
    MinimumLowerCase, CharactersToAvoid) after the length: four counts (missing ones are 0) and
    the characters to avoid."""
    avoid = ""
    if rest and isinstance(rest[-1], str):
        avoid = rest[-1]
        rest = rest[:-1]
    if len(rest) > 4:
        raise ValueError("takes at most four minimum counts (numbers, special characters, capitals, "
                         "lower-case letters), then the characters to avoid")
    minimums = [_whole(v, 0, "a minimum count") for v in rest] + [0] * (4 - len(rest))
    return minimums, avoid


def _entra_pools(size: int, minimums: list[int], avoid: str) -> list[str]:
    if sum(minimums) > size:
        raise ValueError(f"a length of {size} cannot hold the minimum counts {', '.join(map(str, minimums))} "
                         f"(together {sum(minimums)})")
    pools = ["".join(c for c in chars if c not in avoid) for _, chars in _ENTRA_CLASSES]
    for (name, _), need, pool in zip(_ENTRA_CLASSES, minimums, pools, strict=True):
        if need and not pool:
            raise ValueError(f"every one of the {name} is among the characters to avoid")
    if not "".join(pools):
        raise ValueError("every character is among the characters to avoid")
    return pools


def _entra_random(size: int, minimums: list[int], avoid: str) -> str:
    pools = _entra_pools(size, minimums, avoid)
    chars = [secrets.choice(pool) for need, pool in zip(minimums, pools, strict=True) for _ in range(need)]
    alphabet = "".join(pools)
    chars += [secrets.choice(alphabet) for _ in range(size - len(chars))]
    _RANDOM.shuffle(chars)
    return "".join(chars)


def _check_replace(args: list[Any]) -> None:
    if len(args) > 4:
        _check_entra_replace(args + [None] * (7 - len(args)))
        return
    mode = args[3] if len(args) > 3 else "literal"
    if mode is not NOT_LITERAL:
        _named_check(3, "mode", _replace_mode, mode)
    if mode == "literal" and args[1] == "":
        raise ValueError("the text to replace cannot be empty")
    if mode == "regex" and isinstance(args[1], str):
        pattern = _regex(args[1])
        if isinstance(args[2], str):
            try:
                pattern.sub(dotnet_regex.replacement(args[2], pattern), "")
            except re.error as exc:
                raise ValueError(f"invalid replacement {args[2]!r}: {exc}") from None


def _replace_simple(text: Any, old: Any, new: Any, mode: str) -> str | None:
    if text is None:
        return None
    value = _text(text)
    if old is None or old == "":
        return value
    replacement = "" if new is None else _text(new)
    if _replace_mode(mode) == "literal":
        return value.replace(_text(old), replacement)
    compiled = _regex(_text(old))
    try:
        return compiled.sub(dotnet_regex.replacement(replacement, compiled), value)
    except re.error as exc:
        raise ValueError(f"invalid replacement {replacement!r}: {exc}") from None


def _replace_entra(source: Any, old: Any, pattern: Any, group: Any, new: Any, other: Any,
                   template: Any) -> str | None:
    """Entra's Replace, argument by argument as its reference describes it."""
    if pattern is not None and group is not None and other is not None and new is None:
        if not _empty(source):
            return _text(source)
        found = _regex(_text(pattern)).search(_text(other))
        if found is None:
            return None
        return _group(found, _text(group))
    if template is not None:
        if source is None or _empty(old):
            return None if source is None else _text(template)
        return _text(template).replace(_text(old), _text(source))
    if source is None:
        return None
    value = _text(source)
    replacement = "" if new is None else _text(new)
    if pattern is None:
        return value if _empty(old) else value.replace(_text(old), replacement)
    compiled = _regex(_text(pattern))
    if group is None:
        try:
            return compiled.sub(dotnet_regex.replacement(replacement, compiled), value)
        except re.error as exc:
            raise ValueError(f"invalid replacement {replacement!r}: {exc}") from None
    name = _text(group)
    if name not in compiled.groupindex:
        raise ValueError(f"the regular expression {_text(pattern)!r} has no group named {name!r}")
    out, last = [], 0
    for found in compiled.finditer(value):
        begin, end = found.span(name)
        if begin < 0:
            continue
        out += [value[last:begin], replacement]
        last = end
    out.append(value[last:])
    return "".join(out)


def _group(found: re.Match[str], name: str) -> str | None:
    try:
        return found.group(name)
    except IndexError:
        raise ValueError(f"the regular expression has no group named {name!r}") from None


def _check_entra_replace(args: list[Any]) -> None:
    """Entra's seven-argument Replace: which combinations mean something, checked on literals."""
    _, old, pattern, group, new, _, template = args
    if isinstance(pattern, str):
        compiled = _regex(pattern)
        if isinstance(group, str) and group not in compiled.groupindex:
            raise ValueError(f"the regular expression {pattern!r} has no group named {group!r}")
        if isinstance(new, str) and group is None:
            try:
                compiled.sub(dotnet_regex.replacement(new, compiled), "")
            except re.error as exc:
                raise ValueError(f"invalid replacement {new!r}: {exc}") from None
    elif old is None and pattern is None:
        raise ValueError("Entra's form replace(source, oldValue, regexPattern, regexGroupName, "
                         "replacementValue, replacementAttributeName, template) needs oldValue or regexPattern")
    if old == "":
        raise ValueError("the text to replace (oldValue) cannot be empty")
    if template is not NOT_LITERAL and template is not None and old is None:
        raise ValueError("a template needs oldValue: the text in the template the source replaces")


TEXT = ["string", "number", "null"]
ANY: list[str] = []


class Library(functions.Functions):
    """The functions available in every expression, beside JMESPath's built-ins."""

    # ---- text ------------------------------------------------------------------------------

    @functions.signature({"types": TEXT}, {"types": TEXT})
    def _func_append(self, text: Any, suffix: Any) -> str | None:
        """The text with the suffix added at its end; null when the text is null.
        Example: append(uid, '@example.org') -> 'zoe.odegard@example.org'"""
        if text is None:
            return None
        return _text(text) if suffix is None else _text(text) + _text(suffix)

    @functions.signature({"types": ["string", "null"]})
    def _func_lower(self, text: str | None) -> str | None:
        """Lower-case text.
        Example: lower('Zoë Ødegård') -> 'zoë ødegård'"""
        return None if text is None else text.lower()

    @functions.signature({"types": ["string", "null"]})
    def _func_upper(self, text: str | None) -> str | None:
        """Upper-case text.
        Example: upper('Łukasz') -> 'ŁUKASZ'"""
        return None if text is None else text.upper()

    @functions.signature({"types": ["string", "null"]}, {"types": ["string", "null"], "optional": True})
    @checks(culture=_culture)
    def _func_to_lower(self, text: str | None, culture: str | None = None) -> str | None:
        """Lower-case text (Entra's ToLower; the same as lower). `culture` (an RFC 4646 name such as
        'tr-TR') matters only for Turkish and Azeri, where I lower-cases to ı.
        Example: to_lower('JSmith') -> 'jsmith'
        Example: to_lower('IŞIK', 'tr-TR') -> 'ışık'"""
        if text is None:
            return None
        if _turkic(culture):
            text = text.replace("I", "ı").replace("İ", "i")
        return text.lower()

    @functions.signature({"types": ["string", "null"]}, {"types": ["string", "null"], "optional": True})
    @checks(culture=_culture)
    def _func_to_upper(self, text: str | None, culture: str | None = None) -> str | None:
        """Upper-case text (Entra's ToUpper; the same as upper). `culture` as in to_lower: in
        Turkish and Azeri, i upper-cases to İ.
        Example: to_upper('jsmith') -> 'JSMITH'
        Example: to_upper('istanbul', 'tr-TR') -> 'İSTANBUL'"""
        if text is None:
            return None
        if _turkic(culture):
            text = text.replace("i", "İ")
        return text.upper()

    @functions.signature({"types": ["string", "null"]}, {"types": ["string", "null"], "optional": True})
    def _func_pcase(self, text: str | None, separators: str | None = None) -> str | None:
        """The text with the first letter of every word upper-case and the others lower-case, as
        Entra's PCase. Without `separators`, words are split as .NET's ToTitleCase splits them:
        at white space, punctuation (- . , ( ) and so on) and symbols, but not at an apostrophe
        (O'neill: Microsoft's own example passes ' among the separators to get Pinto-De'Silva),
        and a digit does not start a word (1St). With `separators`, only its characters separate
        words.
        Example: pcase('PABLO GONSALVES (SECOND)') -> 'Pablo Gonsalves (Second)'
        Example: pcase('jean.paul ANNE-MARIE O\\'NEILL') -> 'Jean.Paul Anne-Marie O\\'neill'
        Example: pcase('PINTO-DE\\'SILVA', ' \\'-') -> 'Pinto-De\\'Silva'
        Example: pcase('nguyễn văn an') -> 'Nguyễn Văn An'"""
        if text is None:
            return None
        if separators is None:
            return _title_case(text)
        out: list[str] = []
        boundary = True
        for ch in text:
            if ch in separators:
                out.append(ch)
                boundary = True
            elif boundary:
                out.append(_upper_one(ch))
                boundary = False
            else:
                out.append(_lower_one(ch))
        return "".join(out)

    @functions.signature({"types": ["string", "null"]})
    def _func_normalize_diacritics(self, text: str | None) -> str | None:
        """Text with diacritics removed, as in Entra's NormalizeDiacritics table: é -> e, ł -> l,
        ß -> ss, æ and ǣ -> ae, ø -> oe, Ø -> OE. Letters Entra's table does not list are folded
        too: accents are removed (ễ -> e) and đ, ð -> d, þ -> th, œ -> oe, ħ -> h.
        Example: normalize_diacritics('Zoë Ødegård') -> 'Zoe OEdegard'
        Example: normalize_diacritics('Łukasz Nguyễn') -> 'Lukasz Nguyen'
        Example: normalize_diacritics('Bjørn Ǣsir') -> 'Bjoern AEsir'"""
        return None if text is None else entra_diacritics(text)

    @functions.signature({"types": TEXT})
    def _func_strip_spaces(self, text: Any) -> str | None:
        """The text with every white-space character removed (spaces, tabs, no-break spaces).
        Example: strip_spaces(' +47 22 33 44 55 ') -> '+4722334455'"""
        return None if text is None else "".join(_text(text).split())

    @functions.signature({"types": TEXT}, {"types": ["number"]})
    @checks(count=_whole)
    def _func_left(self, text: Any, count: int) -> str | None:
        """The first `count` characters of the text (all of it when it is shorter). As in Entra,
        a count of 0 gives empty text and a negative count the whole text.
        Example: left('Ødegård', 3) -> 'Øde'
        Example: left('Ødegård', -1) -> 'Ødegård'"""
        if text is None:
            return None
        number = _whole(count)
        return _text(text) if number < 0 else _text(text)[:number]

    @functions.signature({"types": TEXT}, {"types": ["number"]}, {"types": ["number"]})
    @checks(start=_positive, length=_non_negative)
    def _func_mid(self, text: Any, start: int, length: int) -> str | None:
        """`length` characters of the text from position `start` (the first character is 1).
        Example: mid('Nguyễn Văn An', 8, 3) -> 'Văn'"""
        if text is None:
            return None
        begin = _positive(start) - 1
        return _text(text)[begin:begin + _non_negative(length)]

    @functions.signature({"types": TEXT}, {"types": ["number", "string"]}, {"types": ["string"], "optional": True})
    @checks(number=_whole, delimiters=_separator)
    def _func_word(self, text: Any, number: Any, delimiters: str | None = None) -> str | None:
        """Word number `number` (the first is 1) of the text; as in Entra, empty text when there
        are fewer words or `number` is below 1. Words are separated by any of the `delimiters`
        characters (default: white space); runs of delimiters count as one.
        Example: word('Zoë Ødegård', 2) -> 'Ødegård'
        Example: word('ou=sales,ou=people', 2, ',=') -> 'sales'
        Example: word('Zoë Ødegård', 0) -> ''"""
        if text is None:
            return None
        index = _whole(number)
        value = _text(text)
        words = value.split() if delimiters is None else [w for w in _delimiter_regex(delimiters).split(value) if w]
        return words[index - 1] if 1 <= index <= len(words) else ""

    @functions.signature({"types": TEXT}, {"types": TEXT}, {"types": ["number"], "optional": True},
                         {"types": ["string"], "optional": True})
    @checks(start=_positive, compare=_compare_mode)
    def _func_instr(self, text: Any, search: Any, start: int = 1, compare: str = "binary") -> int | None:
        """The position (from 1) of the first `search` in the text at or after `start`; 0 when absent.
        `compare` is 'binary' (case-sensitive, the default) or 'text' (case-insensitive); Entra's
        vbBinaryCompare and vbTextCompare work too, quoted or bare.
        Example: instr('anna.smith@example.org', '@') -> 11
        Example: instr('repEated', 'e', 3, vbBinaryCompare) -> 7
        Example: instr('Zoë', 'Ë', 1, 'text') -> 3"""
        if text is None or search is None:
            return None
        haystack, needle = _text(text), _text(search)
        if _compare_mode(compare) == "text":
            haystack, needle = haystack.lower(), needle.lower()
        return haystack.find(needle, _positive(start) - 1) + 1

    @functions.signature({"types": TEXT}, {"types": TEXT}, {"types": TEXT}, {"types": ["string", "null"], "optional": True},
                         {"types": TEXT, "optional": True}, {"types": TEXT, "optional": True},
                         {"types": TEXT, "optional": True})
    @checks(call=_check_replace,
            usage="replace(text, old, new, ['literal' or 'regex']) or, as Entra, replace(source, oldValue, "
                  "regexPattern, regexGroupName, replacementValue, replacementAttributeName, template)")
    def _func_replace(self, text: Any, old: Any, new: Any, mode: Any = _UNSET, replacement: Any = _UNSET,
                      replacement_source: Any = None, template: Any = None) -> str | None:
        """The text with every `old` replaced by `new`.
        With mode 'regex', `old` is a regular expression (Python syntax, or .NET's: (?<name>...)
        groups; (?i) for case-insensitive) and `new` may refer to its groups as \\1, \\g<name>, or
        as in .NET $1 and ${name}. A null `new` removes the matches. With five to seven arguments
        it is Entra's Replace(source, oldValue, regexPattern, regexGroupName, replacementValue,
        replacementAttributeName, template), with null for the arguments Entra leaves empty:
        oldValue and replacementValue replace text; oldValue and template put the source into the
        template; regexPattern and replacementValue replace matches; with regexGroupName only that
        group of each match is replaced; with regexGroupName and replacementAttributeName, an
        empty source is replaced by that group of the regular expression's match in
        replacementAttributeName.
        Example: replace('Zoë Ødegård', ' ', '.') -> 'Zoë.Ødegård'
        Example: replace('2026-03-29', '(\\d+)-(\\d+)-(\\d+)', '\\3.\\2.\\1', 'regex') -> '29.03.2026'
        Example: replace('+47 (22) 33-44', '[^0-9+]', null, 'regex') -> '+47223344'
        Example: replace('+47 22334455', '\\+(?<country>\\d+) (?<number>\\d+)', '${number}', 'regex') -> '22334455'
        Example: replace(uid, '<user>', null, null, null, null, '<user>@example.org') -> 'zoe.odegard@example.org'
        Example: replace(preferred_name, null, '^(?<first>\\w+)', 'first', null, first_name, null) -> 'Zoë'"""
        if replacement is _UNSET:  # three or four arguments: provision's form
            return _replace_simple(text, old, new, "literal" if mode is _UNSET else mode)
        return _replace_entra(text, old, new, mode, replacement, replacement_source, template)

    @functions.signature({"types": ["string"]}, {"types": ["string"]})
    @checks(separator=_separator)
    def _func_split(self, text: str, separator: str) -> list[str]:
        """The text split at every separator, each part without the white space around it (as in
        Entra's example, 'PermissionSetOne, PermissionSetTwo' split at ',' gives no ' PermissionSetTwo').
        A null text is an error in that object's data.
        Example: split('anna.smith@example.org', '@') -> ['anna.smith', 'example.org']
        Example: split('staff, vpn', ',') -> ['staff', 'vpn']"""
        return [part.strip() for part in text.split(_separator(separator))]

    @functions.signature({"types": ["string"]}, {"types": ANY, "variadic": True})
    def _func_join(self, separator: str, *values: Any) -> str | None:
        """The values joined with the separator; lists are joined item by item, and nulls and empty
        strings are left out. Null when nothing is left.
        Example: join(' ', ['Zoë', null, 'Ødegård']) -> 'Zoë Ødegård'
        Example: join(', ', last_name, first_name) -> 'Ødegård, Zoë'
        Example: join('.', '', null) -> null"""
        parts: list[str] = []
        for value in values:
            if isinstance(value, list):
                parts.extend(_text(v) for v in value if v is not None and v != "")
            elif value is not None and value != "":
                parts.append(_text(value))
        return separator.join(parts) if parts else None

    @functions.signature({"types": ANY})
    def _func_cstr(self, value: Any) -> str | None:
        """The value as text: numbers as written, true/false, lists and objects as JSON; null stays null.
        Example: cstr(42) -> '42'
        Example: cstr(true) -> 'true'"""
        return None if value is None else _text(value)

    @functions.signature({"types": TEXT}, {"types": ["string"], "optional": True})
    @checks(encoding=_encoding)
    def _func_base64(self, text: Any, encoding: str = "utf-8") -> str | None:
        """The text encoded as Base64, from its bytes in `encoding` (default 'utf-8'; Entra's
        ConvertToBase64 uses 'utf-16-le').
        Example: base64('Zoë') -> 'Wm/Dqw=='
        Example: base64('Hi', 'utf-16-le') -> 'SABpAA=='"""
        if text is None:
            return None
        return _base64.b64encode(_text(text).encode(_encoding(encoding))).decode("ascii")

    @functions.signature({"types": ["string", "null"]}, {"types": ["string"], "optional": True})
    @checks(encoding=_encoding)
    def _func_base64_decode(self, text: str | None, encoding: str = "utf-8") -> str | None:
        """The text whose Base64 encoding (of its bytes in `encoding`, default 'utf-8') is given.
        Example: base64_decode('Wm/Dqw==') -> 'Zoë'"""
        if text is None:
            return None
        try:
            raw = _base64.b64decode("".join(text.split()), validate=True)
        except ValueError:
            raise ValueError(f"{text!r} is not Base64") from None
        try:
            return raw.decode(_encoding(encoding))
        except UnicodeDecodeError:
            raise ValueError(f"{text!r} does not decode as {encoding} text") from None

    @functions.signature({"types": TEXT})
    def _func_utf8_hex(self, text: Any) -> str | None:
        """The UTF-8 bytes of the text as upper-case hexadecimal (Entra's ConvertToUTF8Hex).
        Example: utf8_hex('Zoë') -> '5A6FC3AB'"""
        return None if text is None else _text(text).encode("utf-8").hex().upper()

    @functions.signature({"types": ANY})
    def _func_redact(self, value: Any) -> Any:
        """The value, unchanged; the attribute is treated as sensitive (shown as *** in logs).
        Example: redact('s3cret') -> 's3cret'"""
        return value

    # ---- values, nulls and conditions --------------------------------------------------------

    @functions.signature({"types": ANY, "variadic": True})
    def _func_coalesce(self, *values: Any) -> Any:
        """The first value that is neither null nor an empty string; null when there is none.
        Example: coalesce(preferred_name, first_name) -> 'Zoë'
        Example: coalesce('', null, 'Łukasz') -> 'Łukasz'"""
        return next((v for v in values if v is not None and v != ""), None)

    @functions.signature({"types": ANY})
    def _func_is_null(self, value: Any) -> bool:
        """true when the value is null (a missing attribute).
        Example: is_null(middle_name) -> true
        Example: is_null('') -> false"""
        return value is None

    @functions.signature({"types": ANY})
    def _func_is_null_or_empty(self, value: Any) -> bool:
        """true when the value is null, an empty string or an empty list.
        Example: is_null_or_empty('') -> true
        Example: is_null_or_empty('Zoë') -> false"""
        return _empty(value)

    @functions.signature({"types": ANY})
    def _func_is_present(self, value: Any) -> bool:
        """true when the value is neither null, an empty string nor an empty list.
        Example: is_present(email) -> true
        Example: is_present(middle_name) -> false"""
        return not _empty(value)

    @functions.signature({"types": ANY})
    def _func_is_string(self, value: Any) -> bool:
        """true when the value is text (even empty text).
        Example: is_string('42') -> true
        Example: is_string(42) -> false"""
        return isinstance(value, str)

    @functions.signature({"types": ANY, "variadic": True})
    def _func_select_unique_value(self, *candidates: Any) -> UniqueCandidates:
        """The candidate values in order; the engine keeps the first one that no object of the
        target holds yet. As in Entra, when every candidate is taken the object fails (and is
        tried again on the next run); only a single candidate, which Entra does not accept, is
        numbered instead: jsmith, jsmith2, jsmith3. Create only; only allowed as the outermost
        function.
        Example: select_unique_value(lower(normalize_diacritics(join('', [left(first_name, 1), last_name]))), lower(normalize_diacritics(join('.', [first_name, last_name])))) -> ['zoedegard', 'zoe.oedegard']"""
        found = UniqueCandidates(_text(c) for c in candidates if not _empty(c))
        found.numbered = len(candidates) == 1
        return found

    @functions.signature({"types": ANY})
    def _func_ignore_flow_if_null_or_empty(self, value: Any) -> Any:
        """The value; when it is null or empty, the attribute is left out of the export altogether
        (the target keeps what it has). Only allowed as the outermost function of an expression.
        Example: ignore_flow_if_null_or_empty(phone) -> '+47 22 33 44 55'"""
        return None if _empty(value) else value

    @functions.signature({"types": ["boolean", "number", "string", "null"]})
    def _func_cbool(self, value: Any) -> bool:
        """The value as true/false: a number, or text that is a number, is true unless it is 0 (as
        Entra's CBool: '5' is true); text true/yes/y/on or false/no/n/off (any case); null and
        empty text are false. Other text is an error in that object's data.
        Example: cbool('Yes') -> true
        Example: cbool('5') -> true
        Example: cbool(0) -> false
        Example: cbool(middle_name) -> false"""
        return bool(to_bool(value))

    @functions.signature({"types": ["boolean", "number", "string", "null"]})
    def _func_not(self, value: Any) -> bool:
        """false when the value reads as true (see cbool), otherwise true: as Entra's Not, null,
        empty text and text that is not a truth value give true.
        Example: not(true) -> false
        Example: not('no') -> true
        Example: not(middle_name) -> true"""
        try:
            return not to_bool(value)
        except ValueError:
            return True

    @functions.signature({"types": ANY}, {"types": ANY}, {"types": ANY})
    def _func_iif(self, condition: Any, if_true: Any, if_false: Any) -> Any:
        """`if_true` when the condition is true (read as in cbool), else `if_false` (also for null).
        Example: iif(status == 'active', 'enabled', 'disabled') -> 'enabled'
        Example: iif(is_manager, 'Manager', 'Staff') -> 'Staff'"""
        if isinstance(condition, (list, dict)):
            flag: bool | None = bool(condition)
        else:
            flag = to_bool(condition)
        return if_true if flag else if_false

    @functions.signature({"types": ANY}, {"types": ANY}, {"types": ANY, "variadic": True, "optional": True})
    @checks(usage="switch(source, default, key1, value1, [key2, value2, ...])", call=_check_switch)
    def _func_switch(self, source: Any, default: Any, *pairs: Any) -> Any:
        """The value paired with the first key equal to the source (text compares with numbers:
        42 matches '42'); `default` when no key matches. As in Entra, the key '' (or null) is the
        case for an empty or missing source: an empty CSV cell, a null column, an absent attribute.
        Example: switch(country, 'Other', 'NO', 'Norway', 'PL', 'Poland') -> 'Norway'
        Example: switch('SE', 'Other', 'NO', 'Norway', 'PL', 'Poland') -> 'Other'
        Example: switch(middle_name, 'has one', '', 'none') -> 'none'"""
        empty = _empty(source)
        for i in range(0, len(pairs) - 1, 2):
            key = pairs[i]
            if (empty and (key is None or key == "")) or (not empty and _same(source, key)):
                return pairs[i + 1]
        return default

    # ---- lists ------------------------------------------------------------------------------

    @functions.signature({"types": ANY})
    def _func_count(self, values: Any) -> int:
        """The number of values: the length of a list, 0 for null, 1 for a single value.
        Example: count(groups) -> 3
        Example: count(middle_name) -> 0"""
        if values is None:
            return 0
        return len(values) if isinstance(values, list) else 1

    @functions.signature({"types": ANY}, {"types": ["number"]})
    @checks(index=_non_zero)
    def _func_item(self, values: Any, index: int) -> Any:
        """Item number `index` of a list (the first is 1, the last is -1); null when out of range.
        A single value counts as a list of one.
        Example: item(groups, 1) -> 'staff'
        Example: item(groups, -1) -> 'vpn'"""
        if values is None:
            return None
        items = values if isinstance(values, list) else [values]
        number = _non_zero(index)
        position = number - 1 if number > 0 else number
        return items[position] if -len(items) <= position < len(items) else None

    @functions.signature({"types": ["array", "null"]})
    def _func_remove_duplicates(self, values: list[Any] | None) -> list[Any] | None:
        """The list without repeated values, in their first order.
        Example: remove_duplicates(['staff', 'vpn', 'staff']) -> ['staff', 'vpn']"""
        if values is None:
            return None
        seen: set[Any] = set()
        out = []
        for value in values:
            key = _hashable(value)
            if key not in seen:
                seen.add(key)
                out.append(value)
        return out

    # ---- numbers ----------------------------------------------------------------------------

    @functions.signature({"types": TEXT}, {"types": TEXT})
    def _func_bit_and(self, value1: Any, value2: Any) -> int | None:
        """The bitwise AND of two whole numbers (decimal text, and hex text written 0xF7 or, as in
        Entra, &HF7, is read as a number).
        Example: bit_and('66050', 2) -> 2
        Example: bit_and('0xF7', 15) -> 7
        Example: bit_and('&HF', '&HF7') -> 7"""
        if value1 is None or value2 is None:
            return None
        return _bits(value1) & _bits(value2)

    # ---- dates ------------------------------------------------------------------------------

    @functions.signature()
    def _func_now(self) -> str:
        """The current time in UTC, ISO 8601, to the second.
        Example: now() -> '2026-03-29T01:30:00Z'"""
        return format_iso(current_time().replace(microsecond=0))

    @functions.signature({"types": ANY}, {"types": ["string"], "optional": True})
    @checks(time_zone=_zone_arg)
    def _func_cdate(self, value: Any, time_zone: str = "UTC") -> str | None:
        """The date or time as ISO 8601 in UTC. A date or time without an offset is read in
        `time_zone` (an IANA name, default 'UTC').
        Example: cdate('2026-03-29T03:30:00+02:00') -> '2026-03-29T01:30:00Z'
        Example: cdate('2026-03-29', 'Europe/Oslo') -> '2026-03-28T23:00:00Z'"""
        if _empty(value):
            return None
        moment, _ = parse_date(value, _zone_arg(time_zone))
        return format_iso(moment.astimezone(UTC))

    @functions.signature({"types": ["string"]}, {"types": ["number", "string", "null"]}, {"types": ANY})
    @checks(interval=_interval, number=_number)
    def _func_date_add(self, interval: str, number: Any, value: Any) -> str | None:
        """The date or time `number` intervals later (earlier when negative). Intervals: yyyy
        (years), q (quarters), m (months), ww (weeks), d (days), h (hours), n (minutes), s
        (seconds), or the words years, months, weeks, days, hours, minutes, seconds. A date stays a
        date; month ends are kept in range (Jan 31 + 1 month = Feb 28).
        Example: date_add('d', 14, hire_date) -> '2026-04-14'
        Example: date_add('m', 1, '2026-01-31') -> '2026-02-28'
        Example: date_add('h', 2, '2026-03-29T01:30:00Z') -> '2026-03-29T03:30:00Z'"""
        if _empty(value) or number is None:
            return None
        unit, size = _interval(interval)
        moment, date_only = parse_date(value)
        amount = _number(number)
        if unit == "month":
            moment = _add_months(moment, _whole(amount, what="a whole number of months or years") * size)
        else:
            step = timedelta(seconds=amount * size)
            moment = moment + step
            date_only = date_only and step % timedelta(days=1) == timedelta(0)
        return moment.date().isoformat() if date_only else format_iso(moment)

    @functions.signature({"types": ["string"]}, {"types": ANY}, {"types": ANY})
    @checks(interval=_interval)
    def _func_date_diff(self, interval: str, start: Any, end: Any) -> int | None:
        """The number of intervals from `start` to `end` (negative when `end` is earlier). Entra's
        interval letters count as Entra (Visual Basic's DateDiff) counts them: yyyy, q, m and ww
        count the year, quarter, month and week (Sunday to Saturday) boundaries crossed, in UTC;
        d, h, n and s count whole days, hours, minutes and seconds. The words years, quarters,
        months and weeks count whole ones instead (an age: 1990-06-15 to 2026-03-29 is 35 years,
        but 36 yyyy).
        Example: date_diff('d', hire_date, '2026-04-14') -> 14
        Example: date_diff('years', birth_date, '2026-03-29') -> 35
        Example: date_diff('yyyy', birth_date, '2026-03-29') -> 36
        Example: date_diff('ww', '2026-03-28', '2026-03-29') -> 1
        Example: date_diff('h', '2026-03-29T00:00:00+01:00', '2026-03-29T03:00:00+02:00') -> 2"""
        if _empty(start) or _empty(end):
            return None
        unit, size = _interval(interval)
        a, _ = parse_date(start)
        b, _ = parse_date(end)
        code = interval.lower()
        if code in _BOUNDARY_INTERVALS:
            return _boundaries(code, a.astimezone(UTC), b.astimezone(UTC))
        if unit == "second":
            delta = b - a
            whole = abs(delta) // timedelta(seconds=size)
            return whole if delta >= timedelta(0) else -whole
        months = (b.year - a.year) * 12 + b.month - a.month
        if months > 0 and _add_months(a, months) > b:
            months -= 1
        elif months < 0 and _add_months(a, months) < b:
            months += 1
        return int(months / size)

    @functions.signature({"types": ["number", "string", "null"]})
    @checks(value=_filetime)
    def _func_date_from_num(self, value: Any) -> str | None:
        """The date and time (ISO 8601, UTC) of an Active Directory time stamp: 100-nanosecond
        intervals since 1601-01-01 UTC, as in accountExpires, lastLogonTimestamp or pwdLastSet
        (Entra's DateFromNum). 0 and 9223372036854775807 mean "never" in AD and give null.
        Example: date_from_num(129699324000000000) -> '2012-01-01T23:00:00Z'
        Example: date_from_num('0') -> null"""
        if _empty(value):
            return None
        ticks = _filetime(value)
        if ticks in _AD_NEVER:
            return None
        moment = _FILETIME_EPOCH + timedelta(microseconds=ticks // 10)
        return format_iso(moment)

    @functions.signature({"types": ANY})
    def _func_num_from_date(self, value: Any) -> int | None:
        """The Active Directory time stamp (100-nanosecond intervals since 1601-01-01 UTC) of a date
        or time, for accountExpires (Entra's NumFromDate). A time without an offset is UTC; a
        calendar date is its midnight UTC.
        Example: num_from_date('2012-01-01T23:00:00Z') -> 129699324000000000
        Example: num_from_date('2020-12-31 23:59:59-08:00') -> 132539615990000000"""
        if _empty(value):
            return None
        moment, _ = parse_date(value)
        delta = moment.astimezone(UTC) - _FILETIME_EPOCH
        return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10

    @functions.signature({"types": ANY}, {"types": ["string", "null"]}, {"types": ["string"]},
                         {"types": ["string", "null"], "optional": True}, {"types": ["string"], "optional": True})
    @checks(call=_check_format_date_time,
            usage="format_date_time(value, input_format, output_format, [time_zone], [input_time_zone]) or, "
                  "as Entra, format_date_time(value, date_time_styles, input_format, output_format)")
    def _func_format_date_time(self, value: Any, input_format: Any, output_format: str,
                               time_zone: str | None = None, input_time_zone: str = "UTC") -> Any:
        """The date or time read with `input_format` and written with `output_format`, each 'iso'
        (ISO 8601), 'unix' (seconds since 1970), strptime/strftime % codes, or a .NET custom format
        as Entra uses (yyyy-MM-dd HH:mm:ss, M/d/yyyy h:mm:ss tt, zzz for the offset). Times without
        an offset are read in `input_time_zone` (default 'UTC') and written in `time_zone`
        (default: as read). A calendar date without a time is not moved between time zones.
        Entra's form FormatDateTime(source, dateTimeStyles, inputFormat, outputFormat) works with
        null or '' for the styles (or a DateTimeStyles name; AdjustToUniversal writes UTC).
        Example: format_date_time('2026-03-29T01:30:00Z', 'iso', '%d.%m.%Y %H:%M', 'Europe/Oslo') -> '29.03.2026 03:30'
        Example: format_date_time('29.03.2026', '%d.%m.%Y', 'iso') -> '2026-03-29'
        Example: format_date_time('20260329013000Z', '%Y%m%d%H%M%SZ', 'iso', 'America/New_York') -> '2026-03-28T21:30:00-04:00'
        Example: format_date_time(1774747800, 'unix', 'iso') -> '2026-03-29T01:30:00Z'
        Example: format_date_time('20260329013000.0Z', null, 'yyyyMMddHHmmss.fZ', 'yyyy-MM-dd') -> '2026-03-29'"""
        if _empty(value):
            return None
        if _entra_date_form(input_format, time_zone):
            styles = (input_format or "").lower()
            input_format, output_format = output_format, _date_format(time_zone)
            time_zone = "UTC" if "adjusttouniversal" in styles else None
            input_time_zone = "UTC"
        moment, date_only = _read_date(value, _date_format(input_format), _zone_arg(input_time_zone))
        if time_zone is not None and not date_only:
            moment = moment.astimezone(_zone_arg(time_zone))
        fmt = _date_format(output_format)
        if fmt == "iso":
            return moment.date().isoformat() if date_only else format_iso(moment)
        if fmt == "unix":
            return int(moment.timestamp())
        if dotnet_dates.is_dotnet(fmt):
            return dotnet_dates.format(moment, fmt)
        return moment.strftime(fmt)

    # ---- generated values -------------------------------------------------------------------

    @functions.signature()
    def _func_guid(self) -> str:
        """A new random GUID (UUID version 4), different on every evaluation: use with apply: on_create.
        Example: guid() -> 'c0a8e5a2-5b7e-4f0e-9a51-2f4c1d3b9e77'"""
        return str(uuid.uuid4())

    @functions.signature({"types": ["number"]}, {"types": ["string", "number"], "variadic": True, "optional": True})
    @checks(length=_random_length, call=_check_random,
            usage="random_string(length, [class...]) or random_string(length, min_numbers, "
                  "min_special, min_capital, min_lower, [characters_to_avoid])")
    def _func_random_string(self, length: int, *classes: Any) -> str:
        """`length` random characters from a cryptographically secure source. Different on every
        evaluation: for initial passwords, use with apply: on_create and sensitive: true. Two forms:
        named classes, at least one of each: 'lower', 'upper', 'digits', 'symbols'
        (!#$%&*+-=?@_), all four when none is named; or Entra's RandomString form, minimum counts
        of digits, special characters, capitals and lower-case letters, and optionally the
        characters to leave out. Special characters are ASCII's 32 punctuation characters, the set
        Windows' password complexity rule counts; the characters beyond the minimums come from all
        four sets.
        Example: random_string(16) -> 'q7#Rm2!xTz9@Lp4w'
        Example: random_string(8, 'upper', 'digits') -> 'K7Q2ZP9M'
        Example: random_string(6, 3, 0, 0, 3) -> '1a73qt'
        Example: random_string(10, 2, 2, 2, 1, '?,') -> '1@!2BaRg53'"""
        size = _random_length(length)
        if classes and not isinstance(classes[0], str):
            minimums, avoid = _entra_random_args(list(classes))
            return _entra_random(size, minimums, avoid)
        names = list(dict.fromkeys(_char_class(c) for c in classes)) if classes else list(_CHAR_CLASSES)
        if size < len(names):
            raise ValueError(f"a length of {size} cannot hold one character of each of {len(names)} classes")
        pools = [_CHAR_CLASSES[n] for n in names]
        alphabet = "".join(pools)
        chars = [secrets.choice(pool) for pool in pools]
        chars += [secrets.choice(alphabet) for _ in range(size - len(pools))]
        _RANDOM.shuffle(chars)
        return "".join(chars)

    # ---- dispatch ---------------------------------------------------------------------------

    def call_function(self, function_name: str, resolved_args: list[Any]) -> Any:
        spec = SPECS.get(function_name)
        if spec is None:
            raise jexc.UnknownFunctionError(f"Unknown function: {function_name}()")
        given = len(resolved_args)
        if given < spec.min_args or (spec.max_args is not None and given > spec.max_args):
            raise FunctionError(function_name, f"takes {spec.arity_text()}, got {given}")
        if spec.typed:
            self._check_types(spec, resolved_args)
        try:
            return spec.function(self, *resolved_args)
        except FunctionError:
            raise
        except ValueError as exc:
            raise FunctionError(function_name, str(exc)) from None

    def _check_types(self, spec: FunctionSpec, args: list[Any]) -> None:
        allowed_by_position = spec.pytypes
        last = len(allowed_by_position) - 1
        for i, arg in enumerate(args):
            allowed, types, nested = allowed_by_position[i if i <= last else last]
            if allowed is None:
                continue
            if nested:
                self._type_check_single(arg, types, spec.name)
            elif type(arg).__name__ not in allowed:
                raise jexc.JMESPathTypeError(spec.name, arg, TYPES_MAP.get(type(arg).__name__, type(arg).__name__),
                                             types)


# --------------------------------------------------------------------------------------------
# The function table


@dataclass(frozen=True)
class Param:
    name: str
    types: tuple[str, ...]
    optional: bool = False
    variadic: bool = False
    check: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class FunctionSpec:
    """One function: what the compiler checks and the dispatcher calls."""

    name: str
    function: Callable[..., Any]
    params: tuple[Param, ...]
    min_args: int
    max_args: int | None
    builtin: bool
    doc: str = ""
    usage_override: str | None = None
    call_check: Callable[[list[Any]], None] | None = None
    # per parameter: (python type names or None for any, JMESPath type names, has array subtypes)
    pytypes: tuple[tuple[frozenset[str] | None, list[str], bool], ...] = field(default=(), repr=False)
    typed: bool = False

    def param(self, index: int) -> Param | None:
        if index < len(self.params):
            return self.params[index]
        return self.params[-1] if self.params and self.params[-1].variadic else None

    def usage(self) -> str:
        if self.usage_override:
            return self.usage_override
        parts = []
        for p in self.params:
            text = f"{p.name}..." if p.variadic else p.name
            parts.append(f"[{text}]" if p.optional else text)
        return f"{self.name}({', '.join(parts)})"

    def arity_text(self) -> str:
        low, high = self.min_args, self.max_args
        if high is None:
            return f"at least {low} argument{'s' if low != 1 else ''}"
        if low == high:
            return f"{low} argument{'s' if low != 1 else ''}"
        return f"{low} to {high} arguments"


def _spec(name: str, entry: dict[str, Any], builtin: bool) -> FunctionSpec:
    function = entry["function"]
    signature: tuple[dict[str, Any], ...] = tuple(entry["signature"])
    try:
        py_params = [p for p in inspect.signature(function).parameters.values()][1:]
    except (TypeError, ValueError):
        py_params = []
    arg_checks: dict[str, Callable[[Any], Any]] = getattr(function, "arg_checks", {}) or {}
    params = []
    for i, sig in enumerate(signature):
        py = py_params[i] if i < len(py_params) else None
        pname = py.name if py is not None else f"arg{i + 1}"
        variadic = bool(sig.get("variadic"))
        optional = bool(sig.get("optional")) or (py is not None and py.default is not inspect.Parameter.empty)
        params.append(Param(pname, tuple(sig.get("types", ())), optional, variadic, arg_checks.get(pname)))
    required = sum(1 for p in params if not p.optional)
    variadic = bool(params) and params[-1].variadic
    pytypes = []
    for p in params:
        if not p.types:
            pytypes.append((None, [], False))
            continue
        allowed: set[str] = set()
        nested = False
        for t in p.types:
            base, _, sub = t.partition("-")
            nested = nested or bool(sub)
            allowed.update(REVERSE_TYPES_MAP[base])
        pytypes.append((frozenset(allowed), list(p.types), nested))
    doc = inspect.cleandoc(function.__doc__ or "") if not builtin else ""
    return FunctionSpec(
        name=name, function=function, params=tuple(params), min_args=required,
        max_args=None if variadic else len(params), builtin=builtin, doc=doc,
        usage_override=getattr(function, "usage", None), call_check=getattr(function, "call_check", None),
        pytypes=tuple(pytypes), typed=any(a is not None for a, _, _ in pytypes),
    )


def _build_specs() -> dict[str, FunctionSpec]:
    ours = {name[len("_func_"):] for name in vars(Library) if name.startswith("_func_")}
    return {name: _spec(name, entry, builtin=name not in ours)
            for name, entry in sorted(Library.FUNCTION_TABLE.items())}


SPECS: dict[str, FunctionSpec] = _build_specs()
"""Every function an expression can call (provision's and JMESPath's built-ins), by name."""

VOLATILE = frozenset({"now", "guid", "random_string"})
"""Functions whose result changes between evaluations of the same record."""


def library_functions() -> list[FunctionSpec]:
    """provision's own functions (not JMESPath's built-ins), by name."""
    return [s for s in SPECS.values() if not s.builtin]


def suggest(name: str) -> str | None:
    """The known function closest to a misspelt ``name``."""
    close = difflib.get_close_matches(name, list(SPECS), n=1, cutoff=0.6)
    return close[0] if close else None


def check_literals(spec: FunctionSpec, args: Iterable[Any]) -> None:
    """Run a function's literal checks; ``args`` has NOT_LITERAL where an argument is computed.
    Raises ValueError naming the function (and the argument) for the first problem."""
    values = list(args)
    for i, value in enumerate(values):
        param = spec.param(i)
        if value is NOT_LITERAL or param is None or param.check is None:
            continue
        if value is None and "null" in param.types:
            continue
        try:
            param.check(value)
        except ValueError as exc:
            raise ValueError(f"{spec.name}() argument {i + 1} ({param.name}): {exc}") from None
    if spec.call_check is not None:
        try:
            spec.call_check(values)
        except ValueError as exc:
            raise ValueError(f"{spec.name}(): {exc}") from None


LIBRARY = Library()
OPTIONS = jmespath.Options(custom_functions=LIBRARY)
