""".NET regular expressions (the form Entra expressions are written in) in Python's form.

People migrating from Entra paste patterns such as ``\\+(?<isdCode>\\d* )(?<phoneNumber>\\d{10})``
and replacements such as ``${phoneNumber}``. Python's ``re`` spells named groups ``(?P<name>...)``,
back-references ``(?P=name)`` and replacement references ``\\g<name>``; without translation the
pattern is rejected and ``${name}`` is copied into the result as literal text. The translation is
textual and leaves everything Python already understands (``(?P<name>...)``, ``\\1``,
``\\g<name>``) as it is, so one pattern may mix both forms.

Replacement references follow .NET's rules: ``$n``/``${n}``/``${name}`` name a group only when
the pattern has that group (otherwise they are literal text, as in .NET), ``$$`` is one ``$``
and ``$&`` (``$0``) is the whole match.
"""

from __future__ import annotations

import re

# (?<name>...) and (?'name'...) but not the look-behinds (?<=...) and (?<!...)
_NAMED_GROUP = re.compile(r"\(\?<(?![=!])([A-Za-z_]\w*)>|\(\?'([A-Za-z_]\w*)'")
_BACKREF = re.compile(r"\\k<([A-Za-z_]\w*)>|\\k'([A-Za-z_]\w*)'")
_DOLLAR = re.compile(r"\$(?:\$|&|\{(\w+)\}|(\d+))")


def pattern(text: str) -> str:
    """``text`` with .NET named groups and named back-references in Python's syntax."""
    if "(?" not in text and "\\k" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":  # an escaped character is never the start of a group
            found = _BACKREF.match(text, i)
            if found:
                out.append(f"(?P={found.group(1) or found.group(2)})")
                i = found.end()
                continue
            out.append(text[i:i + 2])
            i += 2
            continue
        found = _NAMED_GROUP.match(text, i)
        if found:
            out.append(f"(?P<{found.group(1) or found.group(2)}>")
            i = found.end()
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def replacement(text: str, compiled: re.Pattern[str]) -> str:
    """``text`` with .NET ``$`` references turned into Python's ``\\g<...>`` for ``compiled``;
    a ``$`` that names no group of the pattern stays literal text."""
    if "$" not in text:
        return text

    def one(found: re.Match[str]) -> str:
        whole = found.group(0)
        if whole == "$$":
            return "$"
        if whole == "$&":
            return r"\g<0>"
        name = found.group(1)
        if name is not None:
            if name.isdigit() and int(name) <= compiled.groups:
                return rf"\g<{int(name)}>"
            if name in compiled.groupindex:
                return rf"\g<{name}>"
            return whole
        digits = found.group(2)
        # .NET takes the longest prefix of the digits that names a group
        for end in range(len(digits), 0, -1):
            if int(digits[:end]) <= compiled.groups:
                return rf"\g<{int(digits[:end])}>" + digits[end:]
        return whole

    return _DOLLAR.sub(one, text)
