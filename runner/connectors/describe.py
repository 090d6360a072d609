"""What ``provision connectors`` shows: each installed connector and what it declares.

Capabilities can depend on configuration (a SQLite database takes one writer at a time, a
jsondir tree declares what its manifest block says); shown here are the values a connector
declares with its defaults.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from runner.connectors.base import Capabilities, ConnectorContext
from runner.connectors.registry import UnknownConnector, connector_class, installed

FLAGS = ("partitions", "hierarchical", "delta_read", "full_export", "delete_add_as_replace",
         "password_in_first_pass", "multi_valued_deltas")


def capability_names(caps: Capabilities) -> list[str]:
    names = [flag for flag in FLAGS if getattr(caps, flag)]
    if caps.normalizations:
        names.append("normalizations(" + ", ".join(
            f"{attr}: {'+'.join(steps)}" for attr, steps in sorted(caps.normalizations.items())) + ")")
    names.append(f"max_concurrency={caps.max_concurrency}")
    return names


def describe_all() -> list[dict[str, Any]]:
    rows = []
    for name, info in sorted(installed().items()):
        row: dict[str, Any] = {"type": name, "class": info.target, "distribution": info.distribution,
                               "version": info.version}
        try:
            cls = connector_class(name)
            caps = cls(_defaults(cls.config_schema), ConnectorContext(name, Path.cwd())).capabilities(None)
        except (UnknownConnector, KeyError, TypeError, ValueError) as exc:
            row["error"] = str(exc)
        else:
            doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip()
            row["description"] = doc.splitlines()[0] if doc else ""
            row["interface_version"] = cls.interface_version
            row["capabilities"] = capability_names(caps)
            row["operations"] = sorted(caps.operations)
        rows.append(row)
    return rows


def _defaults(schema: Any) -> dict[str, Any]:
    """A configuration of the schema's defaults (required strings get a placeholder)."""
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    out = {k: v["default"] for k, v in props.items() if isinstance(v, dict) and "default" in v}
    for key in schema.get("required", []) if isinstance(schema, dict) else []:
        if key not in out:
            kind = props.get(key, {}).get("type")
            out[key] = {"object": {}, "array": []}.get(kind, "sqlite://" if key == "url" else ".")
    return out
