"""The hook for shared request budgets: what a connector's ``budget:`` block asks for.

A budget (``budget: {name: tenant-a, requests_per_second: 20, concurrency: 4}`` in a scim, rest,
soap or ldap connector's block) is a rate and a number of requests in flight that every process
naming it shares: two pipelines, on any workers, against one SaaS tenant (or one directory)
stay under its limit together. The connectors only ask for a slot before each request
(runner/connectors/http.py, the ldap connector's writes);
what keeps the count across processes is installed from above, by the command line and the
workers: :mod:`runner.distributed.budgets` (Redis; the 'distributed' extra). So the connectors
import nothing of the distributed mode, and a process that never names a budget never loads it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["name"],
    "anyOf": [{"required": ["requests_per_second"]}, {"required": ["concurrency"]}],
    "description": "a rate and a number of requests in flight shared by every process and pipeline that "
                   "names this budget (two pipelines against one SaaS tenant stay under its limit together); "
                   "kept in Redis (PROVISION_BUDGET_URL), the 'distributed' extra (docs/distributed.md)",
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$",
                 "description": "the budget's name, the same in every manifest that shares it (e.g. the tenant)"},
        "requests_per_second": {"type": "number", "exclusiveMinimum": 0,
                                "description": "at most this many requests a second, all sharers together"},
        "burst": {"type": "integer", "minimum": 1, "default": 1,
                  "description": "requests that may go at once after a pause (1: evenly spaced)"},
        "concurrency": {"type": "integer", "minimum": 1,
                        "description": "at most this many requests in flight, all sharers together"},
        "lease": {"type": "number", "minimum": 1, "default": 60,
                  "description": "seconds a slot stays held by a process that died holding it"},
    },
}
"""The ``budget:`` key of a connector block that takes one."""


class Budget(Protocol):
    """One shared budget as one connector uses it."""

    def slot(self) -> AbstractContextManager[None]:
        """Wait for a request's turn (a concurrency slot, then the rate's next opening); the slot is
        held until the block ends. Raises the connector interface's errors (SystemUnavailable when
        the place the budget is kept cannot be reached)."""
        ...


Provider = Callable[[Mapping[str, Any], str], Budget]
"""``provider(block, label)``: the :class:`Budget` for a connector's ``budget:`` block (``label``
names the connector in messages)."""

_provider: Provider | None = None


def set_provider(provider: Provider | None) -> None:
    """Install what enforces ``budget:`` blocks in this process (None: nothing)."""
    global _provider
    _provider = provider


def provider() -> Provider | None:
    return _provider


def problems(config: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """What ``validate`` says of a connector block's ``budget:`` beyond the schema: the store
    that keeps it needs Redis's client, the 'distributed' extra."""
    if config.get("budget") and not _installed("redis"):
        return [(("budget",), "a shared budget is kept in Redis, which needs the 'distributed' extra, which is "
                              "not installed (no module named 'redis'): pip install 'provision[distributed]'")]
    return []


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, a broken one
        return False
