""".NET custom date and time format strings (Entra's FormatDateTime) read and written in Python.

Entra's ``FormatDateTime([x], , "yyyyMMddHHmmss.fZ", "yyyy-MM-dd")`` uses .NET's custom format
strings (invariant culture); Python's ``strptime``/``strftime`` use ``%`` codes. A format without
a ``%`` is read here as a .NET one, so a migrated expression keeps its formats. Only the invariant
culture exists: month and day names are English, ``/`` and ``:`` are themselves. Not supported:
``t`` (the first letter of AM/PM, read as a literal t), ``g`` (the era) and one-letter ``y``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache

# longest first: "yyyy" before "yy", "MMMM" before "MM"
_TOKEN = re.compile(r"yyyy|yy|MMMM|MMM|MM|M|dddd|ddd|dd|d|HH|H|hh|h|mm|m|ss|s|f{1,7}|F{1,7}|tt|t|zzz|zz|z|K"
                    r"|'[^']*'|\"[^\"]*\"|\\.|%|.", re.S)
_PARSE = {"yyyy": "%Y", "yy": "%y", "MMMM": "%B", "MMM": "%b", "MM": "%m", "M": "%m", "dddd": "%A",
          "ddd": "%a", "dd": "%d", "d": "%d", "HH": "%H", "H": "%H", "hh": "%I", "h": "%I", "mm": "%M",
          "m": "%M", "ss": "%S", "s": "%S", "tt": "%p", "zzz": "%z", "zz": "%z", "z": "%z", "K": "%z"}
_TIME_TOKENS = frozenset({"HH", "H", "hh", "h", "mm", "m", "ss", "s", "tt"})


def is_dotnet(fmt: str) -> bool:
    """A date format meant as .NET's: it has no ``%`` code and is not 'iso' or 'unix'."""
    return "%" not in fmt and fmt not in ("iso", "unix")


@lru_cache(maxsize=128)
def _tokens(fmt: str) -> tuple[str, ...]:
    return tuple(found.group(0) for found in _TOKEN.finditer(fmt))


def _literal(token: str) -> str | None:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return token[1:-1]
    if token.startswith("\\") and len(token) == 2:
        return token[1]
    if token == "%":
        return ""
    if token in _PARSE or token[0] in "fF" and set(token) == {token[0]}:
        return None
    return token


@lru_cache(maxsize=128)
def strptime_format(fmt: str) -> str:
    """``fmt`` as a strptime pattern. Raises ValueError for what strptime cannot read."""
    out = []
    for token in _tokens(fmt):
        text = _literal(token)
        if text is not None:
            out.append(text.replace("%", "%%"))
        elif token[0] in "fF":
            out.append("%f")
        else:
            out.append(_PARSE[token])
    return "".join(out)


def has_time(fmt: str) -> bool:
    """The format carries a time of day (a date without one is a calendar date)."""
    return any(t in _TIME_TOKENS or (t[0] in "fF" and _literal(t) is None) for t in _tokens(fmt))


def parse(text: str, fmt: str) -> datetime:
    """``text`` read with the .NET format ``fmt``; raises ValueError."""
    return datetime.strptime(text.strip(), strptime_format(fmt))


def _offset(moment: datetime, width: str) -> str:
    delta = moment.utcoffset() or timedelta(0)
    sign = "-" if delta < timedelta(0) else "+"
    minutes = abs(int(delta.total_seconds())) // 60
    hours, rest = divmod(minutes, 60)
    if width == "z":
        return f"{sign}{hours}"
    if width == "zz":
        return f"{sign}{hours:02d}"
    return f"{sign}{hours:02d}:{rest:02d}"


def format(moment: datetime, fmt: str) -> str:  # noqa: A001 - the .NET name
    """``moment`` written with the .NET format ``fmt``."""
    out = []
    for token in _tokens(fmt):
        text = _literal(token)
        if text is not None:
            out.append(text)
            continue
        if token[0] in "fF":
            digits = f"{moment.microsecond:06d}0"[:len(token)]
            out.append(digits.rstrip("0") if token[0] == "F" else digits)
        elif token == "K":
            out.append("Z" if moment.utcoffset() == timedelta(0) else _offset(moment, "zzz") if moment.tzinfo else "")
        elif token.startswith("z"):
            out.append(_offset(moment, token))
        elif token in ("M", "d", "H", "h", "m", "s"):
            value = {"M": moment.month, "d": moment.day, "H": moment.hour, "h": moment.hour % 12 or 12,
                     "m": moment.minute, "s": moment.second}[token]
            out.append(str(value))
        else:
            out.append(moment.strftime(_PARSE[token]))
    return "".join(out)
