"""Asking the systems themselves: ``provision discover`` and ``provision validate --online``.

A manifest can be valid on paper and still map to an attribute the directory's schema does not
allow, or read a column the HR view does not have; the first run would then fail object by
object. Both commands open the connectors as a run would (no object is read or written) and
compare the manifest with what each system says it holds (``Connector.discover``,
``Connector.server_info``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import secrets
from runner.connectors.base import (
    ConfigurationError,
    ConnectionFailed,
    Connector,
    ObjectInfo,
    SystemUnavailable,
)
from runner.engine.run import close_connector, open_failure
from runner.errors import Problem
from runner.manifest.model import ObjectType
from runner.manifest.yamlfile import quoted
from runner.mapping.checks import Loaded, load_with_connectors


class Unreachable(Exception):
    """A connector could not be opened or could not describe its system; the message says which.
    ``unavailable``: because the system could not be reached or refused the credentials (exit 5),
    rather than for what it answered (exit 4)."""

    def __init__(self, message: str, unavailable: bool = False):
        super().__init__(message)
        self.unavailable = unavailable


@dataclass
class Discovery:
    """What one connector's system says about itself."""

    connector: str
    type_name: str
    server: Mapping[str, Any] = field(default_factory=dict)
    objects: Sequence[ObjectInfo] = ()

    def as_json(self) -> dict[str, Any]:
        return {"connector": self.connector, "type": self.type_name, "server": dict(self.server),
                "objects": [{"name": o.name, "description": o.description, "complete": o.complete,
                             "partitions": list(o.partitions),
                             "attributes": [vars(a) | {"normalizations": list(a.normalizations)}
                                            for a in o.attributes]} for o in self.objects]}


def discover(path: str | Path, names: Sequence[str] = ()) -> list[Discovery]:
    """Open the named connectors of a manifest (all when none is named) and ask each about its system."""
    loaded = load_with_connectors(path)
    unknown = [n for n in names if n not in loaded.connectors]
    if unknown:
        raise ConfigurationError(f"no connector {quoted(unknown[0])} in {path}; it has: "
                                 f"{', '.join(sorted(loaded.connectors))}")
    found = []
    try:
        for name in names or sorted(loaded.connectors):
            connector = loaded.connectors[name]
            open_connectors(connector)
            found.append(Discovery(name, connector.type_name, _ask(connector, "server_info"),
                                   _ask(connector, "discover")))
    finally:
        _close_all(loaded)
    return found


def online_problems(path: str | Path) -> list[Problem]:
    """Mappings, anchors and object names the systems themselves reject; [] when all is well."""
    loaded = load_with_connectors(path)
    described: dict[str, Sequence[ObjectInfo]] = {}
    found: list[Problem] = []
    try:
        for ot in loaded.manifest.object_types:
            for side in ("source", "target"):
                name = getattr(ot, side).connector
                if name not in described:
                    connector = loaded.connectors[name]
                    open_connectors(connector)
                    described[name] = _ask(connector, "discover")
                found += _side_problems(loaded, ot, side, described[name])
    finally:
        _close_all(loaded)
    return found


def _side_problems(loaded: Loaded, ot: ObjectType, side: str, objects: Sequence[ObjectInfo]) -> Iterator[Problem]:
    spec = getattr(ot, side)
    at = (*ot.path, side)
    info = _find(objects, spec.object)
    if info is None:
        if objects:
            hint = difflib.get_close_matches(spec.object, [o.name for o in objects], n=1)
            yield loaded.located.problem((*at, "object"), f"connector {quoted(spec.connector)} has no object "
                                         f"{quoted(spec.object)} on the server" + (f"; did you mean {quoted(hint[0])}?"
                                                                                  if hint else ""))
        return
    if not info.complete:
        return
    attributes = {a.name.casefold(): a for a in info.attributes}
    known = [a.name for a in info.attributes]
    where = f"{quoted(info.name)} on connector {quoted(spec.connector)}"
    if side == "source":
        if spec.anchor.casefold() not in attributes:
            yield loaded.located.problem((*at, "anchor"), f"the source anchor {quoted(spec.anchor)} is not an "
                                         f"attribute of {where}{_hint(spec.anchor, known)}")
        for m in ot.mapping:
            if m.source is not None and m.source.casefold() not in attributes:
                yield loaded.located.problem((*m.path, "source"), f"{quoted(m.source)} is not an attribute of "
                                             f"{where}{_hint(m.source, known)}")
        return
    for m in ot.mapping:
        attr = attributes.get(m.target.casefold())
        if attr is None:
            yield loaded.located.problem((*m.path, "target"), f"{quoted(m.target)} is not an attribute of {where} "
                                         f"(the server's schema){_hint(m.target, known)}")
        elif attr.read_only:
            yield loaded.located.problem((*m.path, "target"), f"{quoted(m.target)} is read-only on {where}: "
                                         "the server sets it; remove the mapping")


def _hint(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"; did you mean {quoted(close[0])}?"
    return f"; it has: {', '.join(sorted(known)[:20])}{'...' if len(known) > 20 else ''}"


def _find(objects: Sequence[ObjectInfo], name: str) -> ObjectInfo | None:
    exact = [o for o in objects if o.name == name]
    return exact[0] if exact else next((o for o in objects if o.name.casefold() == name.casefold()), None)


def open_connectors(connector: Connector) -> None:
    connector.context.redact = secrets.redact
    failure = open_failure(connector)
    if failure is not None:
        raise Unreachable(secrets.redact(str(failure)), isinstance(failure, SystemUnavailable))


def _ask(connector: Connector, question: str) -> Any:
    try:
        return getattr(connector, question)()
    except (ConnectionFailed, ConfigurationError) as exc:
        raise Unreachable(secrets.redact(f"connector {connector.context.name!r}: {question}: {exc}"),
                          isinstance(exc, SystemUnavailable)) from None


def _close_all(loaded: Loaded) -> None:
    for connector in loaded.connectors.values():
        close_connector(connector)
