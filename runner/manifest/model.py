"""The typed, frozen manifest that the rest of the code trusts.

Built only from data that passed the JSON Schema; past ``runner.manifest``, nobody looks at raw
dictionaries again. Each piece keeps ``path`` (its place in the YAML) so semantic checks can
point at a line.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

YamlPath = tuple[str | int, ...]


@dataclass(frozen=True)
class ConnectorSpec:
    name: str
    type: str
    config: dict[str, Any] = field(repr=False)
    path: YamlPath = ()


@dataclass(frozen=True)
class SourceSpec:
    connector: str
    object: str
    anchor: str
    partitions: tuple[str | None, ...] = (None,)  # (None,): the connector's one, unnamed partition
    full_import_every: int | str | None = None  # a number of runs, or a duration such as "7d"


class Situation(StrEnum):
    """What a reconciliation finds for an object (midPoint's synchronization situations, for a target).

    linked: the target holds it as the state says; drifted: linked, but its values differ from
    what the mappings say; missing: linked, gone from the target; unlinked: a target object the
    match or correlate rules tie to a source object that had no link; ambiguous: several target
    objects match one source object; orphan: a target object inside the managed boundary that
    no source object claims; collision: a source object matches a target object another source
    object already claims."""

    LINKED = "linked"
    DRIFTED = "drifted"
    MISSING = "missing"
    UNLINKED = "unlinked"
    AMBIGUOUS = "ambiguous"
    ORPHAN = "orphan"
    COLLISION = "collision"


@dataclass(frozen=True)
class Reactions:
    """``reconcile:`` of an object type: what a reconciliation does per situation. Ambiguous and
    collision are always reported and the source object held (never guessed)."""

    missing: str = "create"  # create | report
    drifted: str = "update"  # update | report
    unlinked: str = "link"  # link | report
    orphan: str = "report"  # report | disable | delete (needs target.boundary)


@dataclass(frozen=True)
class Boundary:
    """``target.boundary``: the part of the target an object type manages. Objects outside it are
    never orphans, so never disabled or deleted by a reconciliation."""

    under: str | None = None  # a name suffix (a DN): only objects named under it
    scope: Group | None = None  # clauses over the target object's own attributes
    path: YamlPath = ()


@dataclass(frozen=True)
class TargetSpec:
    connector: str
    object: str
    partition: str | None = None  # a name, or a template over mapped attributes
    disable: dict[str, Any] = field(default_factory=dict)
    name: str | None = None  # template over mapped attributes; hierarchical connectors need it
    concurrency: int | None = None
    correlate: tuple[str, ...] = ()  # attributes that find an object whose add result was lost
    reconcile_every: int | str | None = None  # a number of runs, or a duration such as "7d"
    boundary: Boundary | None = None


@dataclass(frozen=True)
class AttributeMapping:
    target: str
    source: str | None = None
    constant: Any = None
    has_constant: bool = False
    expression: str | None = None
    default: Any = None
    apply: str = "always"
    sensitive: bool = False
    reference: str | None = None
    multi_valued: bool = False
    password: bool = False
    default_always: bool = False
    null: str = "skip"  # skip: a null value leaves the target value alone; clear: removes it
    path: YamlPath = ()
    # a rule under review (``proposed:``): computed beside this one, reported, never exported
    proposed: AttributeMapping | None = None
    proposed_only: bool = False  # ``proposed: true``: the whole entry is under review, not exported


@dataclass(frozen=True)
class Clause:
    attribute: str
    op: str
    value: Any = None
    path: YamlPath = ()


@dataclass(frozen=True)
class Group:
    kind: str  # "all" | "any"
    items: tuple[Clause | Group, ...]
    path: YamlPath = ()


@dataclass(frozen=True)
class MatchRule:
    target: str
    source: str | None = None
    expression: str | None = None
    path: YamlPath = ()


@dataclass(frozen=True)
class ObjectType:
    name: str
    source: SourceSpec
    target: TargetSpec
    mapping: tuple[AttributeMapping, ...]
    scope: Group | None = None
    match: tuple[MatchRule, ...] = ()
    when_out_of_scope: str = "disable"
    when_deleted: str = "delete"
    delete_after: str | None = None  # when_deleted: {disable_then_delete_after: 30d}: disabled, deleted later
    reconcile: Reactions = field(default_factory=Reactions)
    max_deletes: int | str | None = None  # safety.max_deletes: a count or "N%"; None: the default
    path: YamlPath = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def config_hash(self) -> str:
        """A fingerprint of everything that decides what this type exports.

        When it changes between runs, every object of the type is evaluated again from the
        state store (a changed mapping must reach objects whose source did not change).
        """
        relevant = {k: self.raw.get(k) for k in ("target", "mapping", "scope", "match",
                                                 "when_out_of_scope", "when_deleted")}
        relevant["target"] = {k: v for k, v in (relevant["target"] or {}).items()
                              if k not in ("reconcile_every", "boundary", "concurrency")}
        blob = json.dumps(relevant, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def attribute(self, name: str) -> AttributeMapping | None:
        return next((m for m in self.mapping if m.target == name), None)


@dataclass(frozen=True)
class Safety:
    """The pipeline-wide part of ``safety:`` (``max_deletes`` is per object type)."""

    quarantine_after_runs: int = 3  # runs in a row failing wholesale before quarantine; 0: never
    quarantine_failure_share: float = 0.5  # a run with more than this share of its objects failing fails wholesale
    log_retention: int = 30  # days the provisioning log in the state store keeps entries


@dataclass(frozen=True)
class Notify:
    """Where alerts go and when (``notify:``); the blocks as written, checked by the schema."""

    webhook: dict[str, Any] | None = None
    email: dict[str, Any] | None = None
    quarantined: bool = True
    deletion_guard: bool = True
    failed_share: float = 0.10
    no_success_for: str | None = None


@dataclass(frozen=True)
class Manifest:
    path: Path
    name: str
    connectors: dict[str, ConnectorSpec]
    object_types: tuple[ObjectType, ...]
    state: str | None = None
    log_file: str | None = None
    safety: Safety = field(default_factory=Safety)
    notify: Notify | None = None
    schedule: str | None = None  # a cron expression for provision beat (runner/manifest/cron.py)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def object_type(self, name: str) -> ObjectType | None:
        return next((t for t in self.object_types if t.name == name), None)


def build(data: dict[str, Any], path: Path) -> Manifest:
    """The model for schema-valid ``data`` (mapping files already spliced in)."""
    connectors = {
        name: ConnectorSpec(name, block["type"], {k: v for k, v in block.items()}, ("connectors", name))
        for name, block in data["connectors"].items()
    }
    safety = data.get("safety") or {}
    default_max_deletes = safety.get("max_deletes")
    types = tuple(_object_type(raw, ("object_types", i), default_max_deletes)
                  for i, raw in enumerate(data["object_types"]))
    return Manifest(path=path, name=data["name"], connectors=connectors, object_types=types,
                    state=state_url(data.get("state")), log_file=data.get("log_file"), safety=_safety(safety),
                    notify=_notify(data.get("notify")), schedule=data.get("schedule"))


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def state_url(value: str | None) -> str | None:
    """``state:`` as a SQLAlchemy URL: a value that is not a URL is a SQLite file's path (relative to the
    manifest's folder when written in the manifest, to the working directory when it came from a
    variable: runner.manifest.yamlfile made those absolute), so ``PROVISION_STATE`` may be either."""
    if value is None or _URL.match(value):
        return value
    return f"sqlite:///{value}"


def _safety(raw: dict[str, Any]) -> Safety:
    quarantine = raw.get("quarantine") or {}
    default = Safety()
    return Safety(
        quarantine_after_runs=quarantine.get("after_runs", default.quarantine_after_runs),
        quarantine_failure_share=float(quarantine.get("failure_share", default.quarantine_failure_share)),
        log_retention=raw.get("log_retention", default.log_retention),
    )


def _object_type(raw: dict[str, Any], at: YamlPath, default_max_deletes: int | str | None = None) -> ObjectType:
    src, tgt = raw["source"], raw["target"]
    mapping_path = raw.get("_mapping_path", (*at, "mapping"))
    deleted = raw.get("when_deleted", "delete")
    delete_after = deleted.get("disable_then_delete_after") if isinstance(deleted, dict) else None
    boundary = tgt.get("boundary")
    return ObjectType(
        name=raw["name"],
        source=SourceSpec(src["connector"], src["object"], src["anchor"],
                          tuple(src.get("partitions") or [src.get("partition")]), src.get("full_import_every")),
        target=TargetSpec(tgt["connector"], tgt["object"], tgt.get("partition"), dict(tgt.get("disable", {})),
                          tgt.get("name"), tgt.get("concurrency"), tuple(tgt.get("correlate") or ()),
                          tgt.get("reconcile_every"), _boundary(boundary, (*at, "target", "boundary"))),
        mapping=tuple(_attribute(m, (*mapping_path, i)) for i, m in enumerate(raw["mapping"])),
        scope=_group(raw["scope"], (*at, "scope")) if raw.get("scope") else None,
        match=tuple(MatchRule(m["target"], m.get("source"), m.get("expression"), (*at, "match", i))
                    for i, m in enumerate(raw.get("match", []))),
        when_out_of_scope=raw.get("when_out_of_scope", "disable"),
        when_deleted="disable" if delete_after else deleted,
        delete_after=delete_after,
        reconcile=Reactions(**(raw.get("reconcile") or {})),
        max_deletes=(raw.get("safety") or {}).get("max_deletes", default_max_deletes),
        path=at,
        raw={k: v for k, v in raw.items() if not k.startswith("_")},
    )


def _attribute(m: dict[str, Any], at: YamlPath) -> AttributeMapping:
    return AttributeMapping(
        target=m["target"], source=m.get("source"), constant=m.get("constant"),
        has_constant="constant" in m, expression=m.get("expression"), default=m.get("default"),
        apply=m.get("apply", "always"),
        sensitive=m.get("sensitive", False) or m.get("password", False) or _from_outside(m),
        reference=m.get("reference"), multi_valued=m.get("multi_valued", False),
        password=m.get("password", False), default_always=m.get("default_always", False),
        null=m.get("null", "skip"), path=at, proposed=_proposed(m, at), proposed_only=m.get("proposed") is True,
    )


def _proposed(m: dict[str, Any], at: YamlPath) -> AttributeMapping | None:
    """The rule under review for this attribute: the entry itself with ``proposed: true``, else
    the entry with its source, expression or constant replaced by the proposed one."""
    rule = m.get("proposed")
    if rule is None or rule is False:
        return None
    if rule is True:
        return _attribute({k: v for k, v in m.items() if k != "proposed"}, at)
    base = {k: v for k, v in m.items() if k not in ("proposed", "source", "expression", "constant")}
    return _attribute({**base, **rule}, (*at, "proposed"))


def _from_outside(m: dict[str, Any]) -> bool:
    """A constant, default or expression that holds a ${env:...} / ${file:...} value."""
    from runner.manifest.yamlfile import FromOutside

    return any(isinstance(m.get(k), FromOutside) for k in ("constant", "default", "expression"))


def _boundary(raw: dict[str, Any] | None, at: YamlPath) -> Boundary | None:
    if not raw:
        return None
    clauses = {k: v for k, v in raw.items() if k in ("all", "any")}
    return Boundary(raw.get("under"), _group(clauses, at) if clauses else None, at)


def _group(raw: dict[str, Any], at: YamlPath) -> Group:
    kind = "all" if "all" in raw else "any"
    return Group(kind, tuple(_scope_item(item, (*at, kind, i)) for i, item in enumerate(raw[kind])), at)


def _scope_item(raw: dict[str, Any], at: YamlPath) -> Clause | Group:
    if "all" in raw or "any" in raw:
        return _group(raw, at)
    return Clause(raw.get("attribute", ""), raw.get("op", ""), raw.get("value"), at)


def _notify(raw: dict[str, Any] | None) -> Notify | None:
    if not raw:
        return None
    when = raw.get("when") or {}
    return Notify(raw.get("webhook"), raw.get("email"), when.get("quarantined", True), when.get("deletion_guard", True),
                  float(str(when.get("failed_share", "10%")).rstrip("%")) / 100, when.get("no_success_for"))
