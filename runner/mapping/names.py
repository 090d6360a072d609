"""Object names from templates: ``uid={user_name},ou={department},ou=people`` or ``{region}``.

A name template is filled with the object's mapped target attributes. In DN-style templates
(``attr=value`` pairs) values are escaped per RFC 4514 §2.4, so a department called
``Research & Development, EMEA`` cannot split an RDN. The depth of a name (its number of RDNs,
or of ``/``-separated parts) orders exports: parents are created before children and children
deleted before parents.
"""

from __future__ import annotations

import re
from typing import Any

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


class NameError_(ValueError):
    """A name cannot be built: an attribute it uses is null."""


def template_fields(template: str) -> list[str]:
    return _FIELD.findall(template)


def escape_rdn_value(value: str) -> str:
    """RFC 4514 §2.4: escape special characters, and leading/trailing spaces and a leading '#'."""
    out = re.sub(r'([,+"\\<>;=])', r"\\\1", value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def render(template: str, values: dict[str, Any]) -> str:
    dn_style = "=" in template

    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if value is None or value == "":
            raise NameError_(f"name template {template!r} needs {match.group(1)!r}, which is empty")
        text = str(value)
        return escape_rdn_value(text) if dn_style else text

    return _FIELD.sub(fill, template)


def depth(name: str | None) -> int:
    if not name:
        return 0
    if "=" in name:
        return len(_UNESCAPED_COMMA.split(name))
    return len([p for p in name.split("/") if p])
