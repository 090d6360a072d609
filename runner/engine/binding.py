"""Which system a pipeline's state describes: a state store bound to its targets.

The state store records, per target connector, what the system said it is when the pipeline
first wrote to it (:meth:`runner.connectors.base.Connector.identity`: host and database, a
directory's naming contexts, a service's URL). A manifest whose ``TARGET_DB_URL`` now points at
a new, empty database would otherwise read the old state, find every object "unchanged" and
leave the new database empty. So a run that reaches another system stops (exit 4) and names
both; ``--rebind`` accepts the new one: the state forgets what it believed about that target
(links, target objects, pending exports), and the run reconciles every object with it by
correlation before anything is written. A system that holds the objects the state links to (a
sample, looked up one by one) is the same data under another address (a copied database file, a
directory on a new port): the state follows it with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner import secrets
from runner.engine.context import RunContext
from runner.errors import StateError
from runner.manifest.model import ObjectType


class TargetChanged(StateError):
    """The state store describes another system than the one the manifest now reaches (exit 4)."""


def check(ctx: RunContext, connector_name: str) -> None:
    """After ``connector_name`` opened: bind the state to it, or stop if it is another system."""
    types = [ot for ot in ctx.manifest.object_types if ot.target.connector == connector_name]
    if not types:
        return  # a source only: its identity does not decide what the state believes
    try:
        identity = dict(ctx.connectors[connector_name].identity())
    except Exception as exc:  # noqa: BLE001 - a connector that cannot say simply binds to nothing
        ctx.logger.warning("connector %r could not say which system it is (%s); the state is not bound to it",
                           connector_name, secrets.redact(str(exc)))
        return
    if not identity:
        return
    identity = {"connector": ctx.connectors[connector_name].type_name, **identity}
    store = ctx.store
    known = store.reconcile.binding(ctx.pipeline, connector_name)
    if known == identity:
        return
    if known is not None and not ctx.options.rebind and _holds_what_the_state_knows(ctx, connector_name, types):
        ctx.logger.warning("connector %r now reaches %s (was %s), which holds the objects the state knows: the "
                           "same data moved or copied; the state follows it", connector_name, describe(identity),
                           describe(known))
    elif known is not None and not ctx.options.rebind:
        raise TargetChanged(
            f"the state store {store.url_shown} describes connector {connector_name!r} as {describe(known)}, but it "
            f"now reaches {describe(identity)}. Nothing was written. If the target really moved or was replaced, "
            "run with --rebind: every object is reconciled with the new system by correlation (linked where it "
            "exists, created where it does not) before anything is written; otherwise point the manifest back at "
            "the system the state describes, or give this target its own state store")
    elif known is not None:
        ctx.logger.warning("--rebind: connector %r now reaches %s (was %s); the state forgets what it knew of that "
                           "target and reconciles every object with it", connector_name, describe(identity),
                           describe(known))
        for ot in types:
            store.reconcile.forget_target(ctx.type_ids[ot.name])
    store.reconcile.bind(ctx.pipeline, connector_name, identity)
    ctx.heartbeat()
    store.commit()


def _holds_what_the_state_knows(ctx: RunContext, connector_name: str, types: list[ObjectType]) -> bool:
    """Whether the system now reached holds the objects the state links to (a sample of the first
    and last of each type, looked up one by one): the same data under another address (a copied
    database file, a directory on a new port) is the same target; a new or empty one is not."""
    connector = ctx.connectors[connector_name]
    if not connector.can("get"):
        return False
    sampled = 0
    for ot in types:
        for anchor, name, partition in ctx.store.reconcile.sample_linked(ctx.type_ids[ot.name]):
            sampled += 1
            try:
                if connector.get(ot.target.object, anchor, name=name, partition=partition) is None:
                    return False
            except Exception:  # noqa: BLE001 - cannot tell: treat it as another system
                return False
    return sampled > 0


def describe(identity: Mapping[str, Any]) -> str:
    return secrets.redact(", ".join(f"{k} {v}" for k, v in sorted(identity.items())))
