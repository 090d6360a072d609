"""The JSON text the state store keeps: records, row hashes, pending changes, log entries.

Serialising is a tenth of an initial cycle's time with the standard library (issue 25's profile:
about five ``json.dumps`` per object), so the text is made by orjson, a C extension that does the
same work several times faster. The text must stay byte for byte what ``json.dumps(value,
sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)`` made before: row hashes
stored by earlier versions are compared with new ones, and a different text would make every
object of an existing state store look changed. So:

* ``datetime``/``date``/``time`` and dataclasses go to ``default`` (``str(value)``, a space
  between date and time), not orjson's own forms;
* what orjson refuses (integers beyond 64 bits, keys that are not text) and values holding a
  float, which orjson writes otherwise (``0.000015`` against ``1.5e-05``), take the standard
  library, which writes them as it always did.

One difference is left: an ``Enum`` that is not also a ``str`` or ``int`` is written as its value,
where the standard library wrote ``str(member)``; the store keeps none.

``tests/test_jsontext.py`` compares both writers on the values the store keeps.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# datetimes and dataclasses go to ``default`` (``str(value)``), as the standard library's ``default=str``
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class _Fallback(Exception):
    """A value orjson would write otherwise than the standard library."""


def _default(value: Any) -> Any:
    if isinstance(value, float):  # a float subclass: written as the standard library writes floats
        raise _Fallback
    return str(value)


def _no_float(value: Any) -> bool:
    """Whether ``value`` holds no float: orjson writes some floats otherwise than ``repr`` does
    (``0.000015`` against ``1.5e-05``, ``null`` for NaN), so those values take the standard
    library. About half a microsecond for a record of text fields, against eight for
    ``json.dumps``."""
    kind = type(value)
    if kind is dict:
        for item in value.values():
            if type(item) is str or item is None:
                continue
            if not _no_float(item):
                return False
        return True
    if kind is float:
        return False
    if kind is list or kind is tuple:
        for item in value:
            if type(item) is str:
                continue
            if not _no_float(item):
                return False
    return True


def dumps(value: Any) -> str:
    """Compact JSON with sorted keys and text unescaped, as the state store keeps it."""
    if not _no_float(value):
        return _stdlib(value)
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS).decode()
    except (orjson.JSONEncodeError, _Fallback):  # big integers, keys that are not text, float subclasses
        return _stdlib(value)


def _stdlib(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def loads(text: str) -> Any:
    """Parse what :func:`dumps` wrote, and any JSON text the standard library reads: older rows
    may hold ``NaN``, which orjson refuses, and orjson reads an integer beyond 64 bits as a
    float, so text that gives any float is read again by the standard library (rare: the store
    keeps text, whole numbers and flags)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    return value if _no_float(value) else json.loads(text)
