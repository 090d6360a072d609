"""provision's JMESPath function library.

Each function is a ``_func_<name>`` method; its docstring is its reference entry (first line:
what it returns; an ``Example:`` line: an expression and its result). Functions that take text
accept null and return null, so a missing attribute flows through instead of failing the object,
unless failing is the point (``split`` of a missing email is an error in that object's data).
"""

from __future__ import annotations

import unicodedata
from typing import Any

import jmespath
from jmespath import functions

# Letters that Unicode does not decompose into base letter + accent.
_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ß": "ss",
                       "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "þ": "th", "Þ": "Th", "ı": "i"})


def normalize_diacritics(text: str) -> str:
    """``text`` with accents removed and special letters folded to ASCII look-alikes."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class Library(functions.Functions):
    """The functions available in every expression, beside JMESPath's built-ins."""

    @functions.signature({"types": ["string", "null"]})
    def _func_lower(self, text: str | None) -> str | None:
        """Lower-case text.
        Example: lower('JSmith') -> 'jsmith'"""
        return None if text is None else text.lower()

    @functions.signature({"types": ["string", "null"]})
    def _func_upper(self, text: str | None) -> str | None:
        """Upper-case text.
        Example: upper('jsmith') -> 'JSMITH'"""
        return None if text is None else text.upper()

    @functions.signature({"types": ["string", "null"]})
    def _func_to_lower(self, text: str | None) -> str | None:
        """Lower-case text (Entra's ToLower).
        Example: to_lower('JSmith') -> 'jsmith'"""
        return None if text is None else text.lower()

    @functions.signature({"types": ["string", "null"]})
    def _func_to_upper(self, text: str | None) -> str | None:
        """Upper-case text (Entra's ToUpper).
        Example: to_upper('jsmith') -> 'JSMITH'"""
        return None if text is None else text.upper()

    @functions.signature({"types": ["string"]}, {"types": ["array"]})
    def _func_join(self, separator: str, values: list[Any]) -> str | None:
        """The values joined with the separator; nulls and empty strings are left out.
        Example: join(' ', ['Anna', null, 'Smith']) -> 'Anna Smith'"""
        parts = [v if isinstance(v, str) else _text(v) for v in values if v not in (None, "")]
        return separator.join(parts) if parts else None

    @functions.signature({"types": []}, {"types": [], "variadic": True})
    def _func_coalesce(self, *values: Any) -> Any:
        """The first value that is neither null nor an empty string.
        Example: coalesce(preferred_name, first_name) -> 'Anna'"""
        return next((v for v in values if v not in (None, "")), None)

    @functions.signature({"types": ["string", "null"]})
    def _func_normalize_diacritics(self, text: str | None) -> str | None:
        """Text with diacritics removed (é -> e, ø -> o, ß -> ss).
        Example: normalize_diacritics('Zoë Ødegård') -> 'Zoe Odegard'"""
        return None if text is None else normalize_diacritics(text)

    @functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_split(self, text: str, separator: str) -> list[str]:
        """The text split at every separator.
        Example: split('anna.smith@example.org', '@') -> ['anna.smith', 'example.org']"""
        return text.split(separator)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


LIBRARY = Library()
OPTIONS = jmespath.Options(custom_functions=LIBRARY)
