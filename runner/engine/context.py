"""What the passes of one run share: the manifest, the state store, connectors, counts, the log."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from runner.connectors.base import Connector
from runner.manifest.model import Manifest, ObjectType
from runner.provlog import ProvisioningLog
from runner.state.store import StateStore

# pending action -> the count it lands in
COUNTED_AS = {"add": "added", "update": "updated", "rename": "renamed", "disable": "disabled",
              "delete": "deleted", "delete_first": "deleted", "replace": "added", "set_password": "updated"}


@dataclass
class TypeCounts:
    """Per object type and run. Each object counts under exactly one action."""

    imported: int = 0
    added: int = 0
    updated: int = 0
    renamed: int = 0
    disabled: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: int = 0
    error: str | None = None  # set when the whole pass stopped (connection failed)
    touched: int = 0  # objects still in the source that got an action or failed (not reported)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["touched"]
        if out["error"] is None:
            del out["error"]
        return out

    def count(self, action: str, source_present: bool) -> None:
        """Count one object under the report key of a pending ``action`` (add -> added, ...)."""
        key = COUNTED_AS[action]
        setattr(self, key, getattr(self, key) + 1)
        self.touched += source_present


@dataclass
class RunOptions:
    plan: bool = False
    object_types: tuple[str, ...] = ()
    no_import: bool = False
    log_file: str | None = None
    full_export: bool = False  # re-send every in-scope object's mapped attributes
    full_import: bool = False  # ignore delta watermarks: read everything
    partition: str | None = None  # only this source partition


@dataclass
class RunContext:
    manifest: Manifest
    store: StateStore
    connectors: dict[str, Connector]
    run_id: str
    options: RunOptions
    log: ProvisioningLog
    type_ids: dict[str, int] = field(default_factory=dict)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("provision"))

    @property
    def pipeline(self) -> str:
        return self.manifest.name

    def source(self, ot: ObjectType) -> Connector:
        return self.connectors[ot.source.connector]

    def target(self, ot: ObjectType) -> Connector:
        return self.connectors[ot.target.connector]

    def heartbeat(self) -> None:
        self.store.heartbeat(self.pipeline, self.run_id)
