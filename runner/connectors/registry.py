"""Find connector classes by type name: built-ins first, then the ``provision.connectors`` entry points."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, entry_points, packages_distributions, version

from runner import __version__
from runner.connectors.base import INTERFACE_VERSION, Connector
from runner.errors import EXTRAS

ENTRY_POINT_GROUP = "provision.connectors"

BUILTIN: dict[str, str] = {
    "csv": "runner.connectors.files.csvtarget:CsvConnector",  # the csvfile source, and a target (files/)
    "jsonl": "runner.connectors.files.jsonl:JsonlConnector",
    "ldif": "runner.connectors.files.ldif:LdifConnector",
    "sql": "runner.connectors.sql:SqlConnector",
    "ldap": "runner.connectors.ldap.connector:LdapConnector",
    "scim": "runner.connectors.scim.connector:ScimConnector",
    "rest": "runner.connectors.rest.connector:RestConnector",
    "soap": "runner.connectors.soap.connector:SoapConnector",
    "scim-endpoint": "runner.connectors.scimendpoint:ScimEndpointConnector",
}


class UnknownConnector(LookupError):
    def __init__(self, name: str, known: list[str], reason: str | None = None):
        self.name, self.known = name, known
        super().__init__(reason or f"unknown connector type {name!r}; installed: {', '.join(known)}")


@dataclass(frozen=True)
class Installed:
    type_name: str
    target: str  # module:Class
    distribution: str
    version: str


def _load(target: str) -> type[Connector]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def installed() -> dict[str, Installed]:
    """Every connector this installation can load, by type name (built-ins win a name clash)."""
    found = {name: Installed(name, target, "provision", __version__) for name, target in BUILTIN.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in found:
            dist = ep.dist.name if ep.dist else "?"
            found[ep.name] = Installed(ep.name, ep.value, dist, version(dist) if ep.dist else "?")
    return found


def available() -> dict[str, str]:
    """Type name -> 'module:Class' of every connector this installation can load."""
    return {name: i.target for name, i in installed().items()}


def connector_class(type_name: str) -> type[Connector]:
    """The class registered under ``type_name``; UnknownConnector lists the installed ones."""
    known = available()
    if type_name not in known:
        raise UnknownConnector(type_name, sorted(known))
    try:
        cls = _load(known[type_name])
    except (ImportError, AttributeError) as exc:
        raise UnknownConnector(type_name, sorted(known),
                               f"connector type {type_name!r} is installed but cannot be loaded "
                               f"({known[type_name]}): {exc}") from None
    wanted = getattr(cls, "interface_version", INTERFACE_VERSION)
    if wanted > INTERFACE_VERSION:
        raise UnknownConnector(type_name, sorted(known),
                               f"connector type {type_name!r} needs connector interface {wanted}; this "
                               f"provision has {INTERFACE_VERSION}: upgrade provision")
    if wanted < INTERFACE_VERSION:
        raise UnknownConnector(type_name, sorted(known),
                               f"connector type {type_name!r} ({known[type_name]}) was written for connector "
                               f"interface {wanted}; this provision speaks interface {INTERFACE_VERSION} "
                               "(docs/connectors.md says what changed): upgrade the plugin")
    return cls


def extras() -> dict[str, tuple[list[str], bool]]:
    """Each optional extra (pyproject.toml: postgres, mysql, serve) -> its packages as installed
    (``"psycopg 3.2.1"``), and whether one of them is missing (``provision --version`` shows it)."""
    dists = packages_distributions()
    out: dict[str, tuple[list[str], bool]] = {}
    for module, (extra, _) in EXTRAS.items():
        packages, missing = out.get(extra, ([], False))
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError, AttributeError):  # a module set to None in sys.modules, a broken one
            found = False
        for dist in dists.get(module, [module]) if found else []:
            try:
                packages.append(f"{dist} {version(dist)}")
            except PackageNotFoundError:
                packages.append(dist)
        out[extra] = (packages, missing or not found)
    return out
