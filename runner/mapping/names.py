"""Object names from templates: ``uid={user_name},ou={department},ou=people`` or ``{region}``.

A name template is filled with the object's mapped target attributes. In DN-style templates
(``attr=value`` pairs) values are escaped per RFC 4514 §2.4, so a department called
``Research & Development, EMEA`` cannot split an RDN. The depth of a name (its number of RDNs,
or of ``/``-separated parts) orders exports: parents are created before children and children
deleted before parents. Parsing, escaping and comparing names (and a template's fields) are
below every layer, in :mod:`runner.names`: the LDAP connector and the manifest checks use them too.
"""

from __future__ import annotations

import re
from typing import Any

from runner.names import FIELD, escape_rdn_value

_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


class NameError_(ValueError):
    """A name cannot be built: an attribute it uses is null."""


def render(template: str, values: dict[str, Any]) -> str:
    dn_style = "=" in template

    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if value is None or value == "":
            raise NameError_(f"name template {template!r} needs {match.group(1)!r}, which is empty")
        text = str(value)
        return escape_rdn_value(text) if dn_style else text

    return FIELD.sub(fill, template)


def depth(name: str | None) -> int:
    if not name:
        return 0
    if "=" in name:
        return len(_UNESCAPED_COMMA.split(name))
    return len([p for p in name.split("/") if p])
