"""Quarantine: a pipeline whose runs keep failing wholesale stops hammering its targets.

A run fails *wholesale* when every object type's pass stopped (credentials refused, the target
unreachable, the source unreadable), or when more than ``safety.quarantine.failure_share``
(default 0.5) of the pipeline's objects are failing at its end (failed in this run, or waiting
to be retried after failing in earlier ones). After ``safety.quarantine.after_runs`` (default 3)
such runs in a row, the pipeline is quarantined, like an Entra provisioning job: each later run
makes one cheap probe (open and ping every target connector it would use) and, while that fails,
stops there (exit 3, nothing imported or exported) naming why the pipeline was quarantined and
what the probe met. Once the probe passes, the quarantine lifts and the run goes on as usual;
``provision release FILE`` lifts it by hand. Any run that does not fail wholesale resets the
count. Plans never probe and never count.

The state (the count, the reason, since when) is a row of the state store's ``quarantine``
table; ``store.runs.quarantine(pipeline)`` reads it, for ``provision status``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from runner import secrets
from runner.connectors.base import ConfigurationError, ConnectionFailed, Connector
from runner.engine.context import TypeCounts
from runner.manifest.model import Manifest, ObjectType
from runner.state.opening import Mode, open_store
from runner.state.runs import Quarantine

logger = logging.getLogger("provision")

__all__ = ["Quarantine", "assess", "probe", "release"]


def assess(manifest: Manifest, counts: dict[str, TypeCounts]) -> str | None:
    """Why a finished run failed wholesale, or None when it did not."""
    if not counts:
        return None
    stopped = [(name, c.error) for name, c in counts.items() if c.error]
    if len(stopped) == len(counts):
        errors = list(dict.fromkeys(error for _, error in stopped))
        return "every object type's pass stopped: " + "; ".join(errors)[:1000]
    failing = sum(c.failed + c.waiting + c.blocked for c in counts.values())
    total = max(failing, sum(c.present for c in counts.values()))
    share = manifest.safety.quarantine_failure_share
    if failing and failing > share * total:
        return (f"{failing} of {total} objects failing ({failing / total:.0%}), more than "
                f"safety.quarantine.failure_share allows ({share:.0%})")
    return None


def probe(connectors: dict[str, Connector], types: Iterable[ObjectType], opened: dict[str, str | None]) -> str | None:
    """Open and ping each target connector of ``types``: the error of the first that fails, or
    None. Connectors it opened are recorded in ``opened`` (name -> None) for the run to reuse."""
    for name in dict.fromkeys(ot.target.connector for ot in types):
        connector = connectors[name]
        try:
            if name not in opened:
                connector.open()
                opened[name] = None
            connector.ping()
        except (ConnectionFailed, ConfigurationError) as exc:
            opened[name] = f"connector {name!r}: {exc}"
            return secrets.redact(opened[name] or "")
    return None


def stopped_message(pipeline: str, quarantine: Quarantine, failure: str) -> str:
    return (f"pipeline {pipeline!r} is {quarantine.describe()}. The probe of its targets failed: {failure}. "
            "Nothing was imported or exported. Fix the cause: the next run probes again and carries on once "
            "it passes; or lift the quarantine with `provision release FILE`")


def release(path: str | Path) -> tuple[str, Quarantine | None]:
    """``provision release FILE``: lift the pipeline's quarantine. Returns (pipeline, what was lifted)."""
    from runner.mapping.checks import load

    manifest = load(path)
    store = open_store(manifest, Mode.WRITE)
    try:
        return manifest.name, store.runs.release_quarantine(manifest.name)
    finally:
        store.close()
