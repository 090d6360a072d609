"""Which attributes a response carries: the schema's ``returned`` rules and the client's
``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5, §3.9).

Entra reads groups with ``excludedAttributes=members`` ("Requests to retrieve groups specify that
the members attribute is to be excluded"): for a group of tens of thousands of members this is what
keeps its lookups small. ``returned: never`` attributes (``password``) never leave the endpoint,
``always`` ones (``id``, and ``schemas``) are always there (RFC 7643 §7).

Names are case-insensitive and may be sub-attributes (``name.givenName``) or fully qualified
(``urn:...:enterprise:2.0:User:manager``). A name this resource type does not have is ignored: the
parameters only shape the answer, and RFC 7644 gives no error for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import Invalid
from .filters import Path, parse_path
from .schema import Kind

_FIXED = ("schemas", "id")


def names(text: str | None) -> list[str]:
    """``"userName, name.givenName"`` -> ["userName", "name.givenName"]."""
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def _paths(kind: Kind, text: str | None) -> tuple[list[Path], bool]:
    """The paths named, and whether ``meta`` is among them."""
    paths, meta = [], False
    for name in names(text):
        if name.split(".", 1)[0].lower() == "meta":
            meta = True
            continue
        try:
            path = parse_path(kind, name)
        except Invalid:
            continue
        if path.conditions is None:
            paths.append(path)
    return paths, meta


def project(kind: Kind, resource: Mapping[str, Any], attributes: str | None = None,
            excluded: str | None = None) -> dict[str, Any]:
    """``resource`` (as rendered, with ``schemas``, ``id`` and ``meta``) as the response shows it."""
    out = {k: v for k, v in resource.items() if k not in _hidden(kind, resource)}
    for ext in kind.extensions:
        if isinstance(out.get(ext), Mapping):
            out[ext] = _strip_block(kind, out[ext], ext)
    if names(attributes):
        return _only(kind, out, *_paths(kind, attributes))
    if names(excluded):
        paths, meta = _paths(kind, excluded)
        return _without(out, paths, meta)
    return out


def _hidden(kind: Kind, resource: Mapping[str, Any]) -> set[str]:
    hidden = {a.name for a in kind.attributes_of(None).values() if a.returned in ("never", "request")}
    return hidden & set(resource)


def _strip_block(kind: Kind, block: Mapping[str, Any], urn: str) -> dict[str, Any]:
    never = {a.name for a in kind.attributes_of(urn).values() if a.returned in ("never", "request")}
    return {k: v for k, v in block.items() if k not in never}


def _only(kind: Kind, resource: dict[str, Any], paths: list[Path], meta: bool) -> dict[str, Any]:
    out = {k: resource[k] for k in _FIXED if k in resource}
    for attr in kind.attributes_of(None).values():
        if attr.returned == "always" and attr.name in resource:
            out[attr.name] = resource[attr.name]
    for path in paths:
        source = resource if path.block is None else resource.get(path.block)
        if not isinstance(source, Mapping):
            continue
        target = out if path.block is None else out.setdefault(path.block, {})
        if path.attr is None:
            target.update(_strip_block(kind, source, path.block or ""))
            continue
        value = source.get(path.attr.name)
        if value is None:
            continue
        if path.sub is None:
            target[path.attr.name] = value
            continue
        sub = path.sub.name
        if isinstance(value, list):
            picked = [{sub: e[sub]} for e in value if isinstance(e, Mapping) and sub in e]
        else:
            picked = {**(target.get(path.attr.name) or {}), sub: value[sub]} if sub in value else None
        if picked:
            target[path.attr.name] = picked
    for block in [k for k, v in out.items() if k.startswith("urn:") and v == {}]:
        del out[block]
    if meta and "meta" in resource:
        out["meta"] = resource["meta"]
    return out


def _without(resource: dict[str, Any], paths: list[Path], meta: bool) -> dict[str, Any]:
    out = dict(resource)
    if meta:
        out.pop("meta", None)
    for path in paths:
        holder = out if path.block is None else out.get(path.block)
        if not isinstance(holder, dict):
            continue
        if path.attr is None:
            out.pop(path.block or "", None)
            continue
        if path.block is not None:
            holder = out[path.block] = dict(holder)
        name = path.attr.name
        if path.attr.name in _FIXED or path.attr.returned == "always" or name not in holder:
            continue
        if path.sub is None:
            del holder[name]
        elif isinstance(holder[name], list):
            holder[name] = [{k: v for k, v in e.items() if k != path.sub.name} for e in holder[name]]
        elif isinstance(holder[name], Mapping):
            holder[name] = {k: v for k, v in holder[name].items() if k != path.sub.name}
    return out
