"""Find connector classes by type name: built-ins first, then the ``provision.connectors`` entry points."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from runner.connectors.base import INTERFACE_VERSION, Connector

ENTRY_POINT_GROUP = "provision.connectors"

BUILTIN: dict[str, str] = {
    "csv": "runner.connectors.csvfile:CsvConnector",
    "sql": "runner.connectors.sql:SqlConnector",
}


class UnknownConnector(LookupError):
    def __init__(self, name: str, known: list[str]):
        self.name, self.known = name, known
        super().__init__(f"unknown connector type {name!r}; installed: {', '.join(known)}")


def _load(target: str) -> type[Connector]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def available() -> dict[str, str]:
    """Type name -> 'module:Class' of every connector this installation can load."""
    found = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def connector_class(type_name: str) -> type[Connector]:
    """The class registered under ``type_name``; UnknownConnector lists the installed ones."""
    known = available()
    if type_name not in known:
        raise UnknownConnector(type_name, sorted(known))
    cls = _load(known[type_name])
    if getattr(cls, "interface_version", INTERFACE_VERSION) > INTERFACE_VERSION:
        raise UnknownConnector(type_name, sorted(known))
    return cls
