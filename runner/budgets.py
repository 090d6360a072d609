"""The hook for shared request budgets: what an HTTP connector's ``budget:`` block asks for.

A budget (``budget: {name: tenant-a, requests_per_second: 20, concurrency: 4}`` in a scim, rest
or soap connector's block) is a rate and a number of requests in flight that every process
naming it shares: two pipelines, on any workers, against one SaaS tenant stay under its limit
together. The connectors only ask for a slot before each request (runner/connectors/http.py);
what keeps the count across processes is installed from above, by the command line and the
workers: :mod:`runner.distributed.budgets` (Redis; the 'distributed' extra). So the connectors
import nothing of the distributed mode, and a process that never names a budget never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol


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
