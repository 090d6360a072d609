"""What the distributed mode installs in a process: the provider of shared budgets.

Cheap to import (neither celery nor redis is loaded): the command line installs it in every
process, and ``runner.distributed.budgets`` (Redis) is imported only when a connector names a
``budget:``. Connectors call it through runner/budgets.py, never importing this layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner import budgets


def shared_budget(block: Mapping[str, Any], label: str) -> budgets.Budget:
    from runner.distributed.budgets import open_budget

    return open_budget(block, label)


def install() -> None:
    budgets.set_provider(shared_budget)
