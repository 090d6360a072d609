"""Semantic checks: what a JSON Schema cannot say about a manifest.

Unknown connector types and objects, duplicate target attributes, references to unknown object
types or to types listed later, and options that contradict each other. Every check reports all
it finds; nothing stops at the first. What needs the mapping layer (expressions that do not
compile, scope filters that cannot be built) is checked in :mod:`runner.mapping.checks`.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from runner.connectors.base import Capabilities, ConfigurationError, Connector, ConnectorContext
from runner.connectors.registry import UnknownConnector, connector_class
from runner.connectors.scimendpoint import ScimEndpointConnector, serve_problems
from runner.errors import Problem
from runner.manifest import cron, schema
from runner.manifest.model import Manifest, ObjectType
from runner.manifest.yamlfile import Located, dotted, quoted
from runner.names import shape, template_fields
from runner.sqlutil import driver_problem, shown_url


def _suggest(name: str, known: Iterable[str]) -> str:
    """``; did you mean 'x'?`` when a known name is close to ``name``, else nothing."""
    hint = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {quoted(hint[0])}?" if hint else ""


def connector_problems(data: dict[str, Any], located: Located, base_dir: Any,
                       skip: Collection[str] = ()) -> tuple[list[Problem], dict[str, Connector]]:
    """Check each connector block against its connector's own schema; build the connectors.

    Blocks that already have a problem at or inside them (JSON paths in ``skip``) are left out,
    so that a block the manifest schema rejected is not reported twice.
    """
    found: list[Problem] = []
    built: dict[str, Connector] = {}
    blocks = data.get("connectors")
    if not isinstance(blocks, dict):
        return found, built
    for name, block in blocks.items():
        at = ("connectors", name)
        prefix = dotted(at)
        if any(p == prefix or p.startswith((prefix + ".", prefix + "[")) for p in skip):
            continue
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            continue
        try:
            cls = connector_class(block["type"])
        except UnknownConnector as exc:
            if exc.name in exc.known:  # installed, but refused: cannot load, or a newer interface
                found.append(located.problem((*at, "type"), str(exc)))
                continue
            found.append(located.problem((*at, "type"), f"unknown connector type {quoted(exc.name)}"
                                         f"{_suggest(exc.name, exc.known)}; installed: {', '.join(exc.known)} "
                                         "(third-party connectors register under the 'provision.connectors' "
                                         "entry point)"))
            continue
        block_problems = schema.problems(dict(cls.config_schema), block, located, at)
        found += block_problems
        if block_problems:
            continue
        try:
            connector = cls(block, ConnectorContext(name, base_dir))
            checked = connector.check()
        except ConfigurationError as exc:
            found.append(located.problem(at, str(exc)))
            continue
        for path, message in checked:
            found.append(located.problem((*at, *path), message))
        built[name] = connector
    return found, built


def semantic_problems(manifest: Manifest, located: Located, connectors: dict[str, Connector]) -> list[Problem]:
    found: list[Problem] = []
    seen: dict[str, int] = {}
    for index, ot in enumerate(manifest.object_types):
        if ot.name in seen:
            found.append(located.problem((*ot.path, "name"), f"object type {quoted(ot.name)} is already defined "
                                         f"as object_types[{seen[ot.name]}]"))
        seen.setdefault(ot.name, index)
        found += list(_endpoint_problems(ot, located, connectors))
        found += list(_mapping_problems(ot, index, manifest, located))
        found += list(_match_problems(ot, located))
        found += list(_disable_problems(ot, located))
    found += list(_state_problems(manifest, located))
    if manifest.schedule is not None and (why := cron.problem(manifest.schedule)):
        found.append(located.problem(("schedule",), why))
    served = [((*ot.path, "source", "object"), ot.source.object) for ot in manifest.object_types
              if isinstance(connectors.get(ot.source.connector), ScimEndpointConnector)]
    found += [located.problem(p, m) for p, m in serve_problems(located.data.get("serve"), manifest.path.parent, served)]
    return found


# What ``state:`` may be: the databases and drivers the state store is written and tested for
# (runner/state/store.py); None is the dialect's own default driver (SQLite's pysqlite).
STATE_DRIVERS: dict[str, tuple[str | None, ...]] = {
    "sqlite": (None, "pysqlite"),
    "postgresql": ("psycopg",),
    "mysql": ("pymysql",),
    "mariadb": ("pymysql",),
}
STATE_URLS = "sqlite:///FILE, postgresql+psycopg://USER@HOST/DB, mysql+pymysql://USER@HOST/DB or mariadb+pymysql://..."


def _state_problems(manifest: Manifest, located: Located) -> Iterator[Problem]:
    """``state:`` must be a URL of a database the state store supports, whose driver is
    installed: refused here, with the supported list, rather than by SQLAlchemy at run time."""
    if manifest.state is None:
        return
    try:
        url = sa.make_url(manifest.state)
    except sa.exc.ArgumentError:
        yield located.problem(("state",), f"not a database URL; the state store is one of: {STATE_URLS}")
        return
    backend, _, driver = url.drivername.partition("+")
    if backend not in STATE_DRIVERS or (driver or None) not in STATE_DRIVERS[backend]:
        wanted = ", ".join(f"{backend}+{d}" for d in STATE_DRIVERS.get(backend, ()) if d)
        why = (f"the state store works with the {wanted} driver, not {url.drivername}" if backend in STATE_DRIVERS
               else f"the state store cannot be kept in {backend!r}")
        yield located.problem(("state",), f"{shown_url(url)}: {why}; it is one of: {STATE_URLS}")
        return
    missing = driver_problem(url)
    if missing:
        yield located.problem(("state",), f"{shown_url(url)}: {missing}")
    fan_out = located.data.get("fan_out") if isinstance(located.data, dict) else None
    if backend == "sqlite" and fan_out not in (None, False):
        yield located.problem(("fan_out",), "a run fans out over workers that share its state store, and a SQLite "
                                            "file is one machine's: keep the state in PostgreSQL or MariaDB, or "
                                            "drop fan_out (docs/distributed.md)")


def _endpoint_problems(ot: ObjectType, located: Located, connectors: dict[str, Connector]) -> Iterator[Problem]:
    for side, spec in (("source", ot.source), ("target", ot.target)):
        at = (*ot.path, side)
        if spec.connector not in connectors:
            defined = sorted(located.data.get("connectors", {}))
            if spec.connector not in defined:
                yield located.problem((*at, "connector"), f"unknown connector {quoted(spec.connector)}"
                                      f"{_suggest(spec.connector, defined)}; defined: {', '.join(defined)}")
            continue
        connector = connectors[spec.connector]
        names = connector.object_names()
        if names is not None and spec.object not in names:
            yield located.problem((*at, "object"), f"connector {quoted(spec.connector)} has no object "
                                  f"{quoted(spec.object)}{_suggest(spec.object, names)}; "
                                  f"it has: {', '.join(names) or 'none'}")
        if side == "target":
            yield from _target_capability_problems(ot, connector, located)
        elif ot.source.full_import_every is not None and not connector.capabilities(spec.object).delta_read:
            yield located.problem((*at, "full_import_every"), f"connector {quoted(spec.connector)} reads "
                                  f"{quoted(spec.object)} whole on every run (it has no delta reads), so "
                                  "full_import_every changes nothing; remove it")


def _target_capability_problems(ot: ObjectType, connector: Connector, located: Located) -> Iterator[Problem]:
    """What the object type asks of its target that the connector does not declare."""
    at = (*ot.path, "target")
    caps = connector.capabilities(ot.target.object)
    who = f"connector {quoted(ot.target.connector)} (type {connector.type_name})"
    if not caps.operations:
        why = [] if not connector.capabilities(None).operations else connector.template_problems(
            ot.target.object, {m.target for m in ot.mapping} | set(ot.target.disable))
        for path, message in why:  # the connector writes, but not this object as configured (a file without key:)
            yield located.problem(("connectors", ot.target.connector, *path), message)
        if not why:
            yield located.problem((*at, "connector"), f"{who} can only be read, not written to")
        return
    if caps.hierarchical and not ot.target.name:
        yield located.problem(at, f"{who} names objects hierarchically: add target.name, a template such as "
                                  "'uid={uid},ou=people'")
    mapped = {m.target for m in ot.mapping}
    for key in ("name", "partition"):
        template = getattr(ot.target, key)
        for field in template_fields(template or ""):
            if field not in mapped:
                yield located.problem((*at, key), f"target.{key} uses {{{field}}}, which is not a mapped attribute "
                                                  f"of {quoted(ot.name)}{_suggest(field, sorted(mapped))}")
    yield from _name_shape_problems(ot, connector, located)
    if ot.target.name and "rename" not in caps.operations:
        yield located.problem((*at, "name"), f"{who} cannot rename objects, so a name that changes could never "
                                             "be applied; remove target.name")
    if any(m.password for m in ot.mapping) and not (caps.password_in_first_pass or "set_password" in caps.operations):
        yield located.problem(at, f"{who} takes no passwords (neither in the create nor as set_password); "
                                  "check its configuration (the sql connector needs password: <column>)")
    yield from _correlation_problems(ot, caps, who, mapped, located)
    produced = mapped | set(ot.target.disable)
    for path, message in connector.template_problems(ot.target.object, produced):
        yield located.problem(("connectors", ot.target.connector, *path), message)
    needed = {"delete"} if "delete" in (ot.when_deleted, ot.when_out_of_scope) or ot.delete_after else set()
    needed |= {"disable"} if ot.target.disable and "disable" in (ot.when_deleted, ot.when_out_of_scope) else set()
    for kind in sorted(needed - caps.operations):
        yield located.problem(at, f"{who} cannot {kind}, which when_deleted/when_out_of_scope asks for")
    yield from _reconcile_problems(ot, connector, caps, who, located)


def _reconcile_problems(ot: ObjectType, connector: Connector, caps: Capabilities, who: str,
                        located: Located) -> Iterator[Problem]:
    """Orphans are disabled or deleted only inside a declared boundary, and only by a connector
    that can read the target (a reconciliation is a read of it)."""
    orphan = ot.reconcile.orphan
    at = (*ot.path, "reconcile", "orphan")
    if orphan != "report" and ot.target.boundary is None:
        yield located.problem(at, f"reconcile.orphan: {orphan} needs target.boundary, the part of the target "
                                  f"{quoted(ot.name)} manages (under: a base DN, or all/any clauses over target "
                                  "attributes), so objects outside it (service accounts) are never touched")
    if orphan == "disable" and not ot.target.disable:
        yield located.problem(at, "reconcile.orphan: disable needs target.disable, e.g. disable: {active: false}")
    if orphan != "report" and orphan not in caps.operations:
        yield located.problem(at, f"{who} cannot {orphan}, which reconcile.orphan asks for")
    boundary = ot.target.boundary
    if boundary is not None and boundary.under and not caps.hierarchical:
        yield located.problem((*boundary.path, "under"), f"{who} does not name objects hierarchically, so "
                              "boundary.under cannot apply; use all/any clauses over target attributes")
    asked = ot.target.reconcile_every is not None or boundary is not None or "reconcile" in ot.raw
    if asked and not connector.can("read"):
        yield located.problem((*ot.path, "target"), f"{who} cannot read {quoted(ot.target.object)}, so it "
                              "cannot be reconciled; remove reconcile, reconcile_every and boundary")


def _name_shape_problems(ot: ObjectType, connector: Connector, located: Located) -> Iterator[Problem]:
    """What the target says of the names ``target.name`` renders (a DN outside its partitions, an
    RDN without ``attr=``), asked once of the template itself: every run would fail each object
    on it. A partition that comes from values is left to the run, which checks every name."""
    sample = shape(ot.target.name) if ot.target.name else None
    if sample is None:
        return
    partition = ot.target.partition
    if partition is not None and template_fields(partition):
        partition = None
    problem = connector.name_problem(ot.target.object, sample, partition)
    if problem is not None:
        yield located.problem((*ot.path, "target", "name"), problem)


def _mapping_problems(ot: ObjectType, index: int, manifest: Manifest, located: Located) -> Iterator[Problem]:
    order = {t.name: i for i, t in reversed(list(enumerate(manifest.object_types)))}
    targets: dict[str, Any] = {}
    for m in ot.mapping:
        kinds = [k for k, present in (("source", m.source is not None), ("constant", m.has_constant),
                                      ("expression", m.expression is not None)) if present]
        if len(kinds) != 1:
            what = "none" if not kinds else " and ".join(kinds)
            yield located.problem(m.path, f"attribute {quoted(m.target)} needs exactly one of source, constant or "
                                  f"expression (has {what})")
        if m.target in targets:
            first = located.where(targets[m.target])
            yield located.problem((*m.path, "target"), f"duplicate target attribute {quoted(m.target)} "
                                  f"(first mapped at line {first[1]})")
        targets.setdefault(m.target, m.path)
        if m.reference is not None:
            if m.reference not in order:
                yield located.problem((*m.path, "reference"), f"unknown object type {quoted(m.reference)}"
                                      f"{_suggest(m.reference, order)}; defined: {', '.join(order)}")
            elif order[m.reference] > index:
                yield located.problem((*m.path, "reference"), f"object type {quoted(m.reference)} is listed "
                                      f"after {quoted(ot.name)}; list it first so its objects exist when "
                                      "referenced")
        if m.sensitive and m.reference:
            yield located.problem((*m.path, "sensitive"), "a reference cannot be sensitive")


def _match_problems(ot: ObjectType, located: Located) -> Iterator[Problem]:
    for rule in ot.match:
        if (rule.source is None) == (rule.expression is None):
            yield located.problem(rule.path, "a match rule needs exactly one of source or expression")


def _disable_problems(ot: ObjectType, located: Located) -> Iterator[Problem]:
    if not ot.target.disable:
        needs = ("target.disable: the attributes written to disable an object, e.g. "
                 "target: {..., disable: {active: false}}")
        if ot.when_deleted == "disable":
            yield located.problem((*ot.path, "when_deleted"), f"when_deleted: disable needs {needs}")
        if ot.when_out_of_scope == "disable" and ot.scope is not None:
            if "when_out_of_scope" in ot.raw:
                yield located.problem((*ot.path, "when_out_of_scope"), f"when_out_of_scope: disable needs {needs}")
            else:
                yield located.problem((*ot.path, "scope"), "objects that leave this scope are disabled "
                                      f"(when_out_of_scope defaults to disable), which needs {needs}; or set "
                                      "when_out_of_scope: delete or ignore", key=True)
    for name in ot.target.disable:
        if ot.attribute(name) is None:
            yield located.problem((*ot.path, "target", "disable", name), f"disable attribute {quoted(name)} must also "
                                  "be mapped, so an object that comes back in scope is enabled again")


def _correlation_problems(ot: ObjectType, caps: Capabilities, who: str, mapped: set[str],
                          located: Located) -> Iterator[Problem]:
    """After a crash, an add whose result was lost must be findable in the target, or it would be
    created twice: by target.correlate, the connector's natural key, or the object's name."""
    at = (*ot.path, "target")
    sensitive = {m.target for m in ot.mapping if m.sensitive or m.password}
    references = {m.target for m in ot.mapping if m.reference}
    for i, attr in enumerate(ot.target.correlate):
        if attr not in mapped:
            yield located.problem((*at, "correlate", i), f"{quoted(attr)} is not a mapped attribute of "
                                  f"{quoted(ot.name)}{_suggest(attr, sorted(mapped))}")
        elif attr in sensitive or attr in references:
            yield located.problem((*at, "correlate", i), f"{quoted(attr)} is sensitive or a reference; correlate "
                                  "on plain attributes that are unique in the target")
    if caps.generated_anchor and not (ot.target.correlate or caps.correlation or ot.target.name or caps.hierarchical):
        candidates = [m.target for m in ot.mapping if not (m.sensitive or m.password or m.reference)][:3]
        yield located.problem(at, f"{who} generates the keys of {quoted(ot.target.object)} and knows no natural "
                                  "key for it, so an add interrupted by a crash could be created twice: add "
                                  "target.correlate with the mapped attributes that are unique in the target "
                                  f"(e.g. correlate: [{', '.join(candidates[:1]) or 'name'}])")
