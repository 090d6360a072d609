"""A ``provision worker`` that dies like a lost host in the middle of a slice (tests only).

    python tests/distributed/killslice.py POINT N provision-worker-args...

POINT is where, counted in the pool process that runs the slices: ``import`` (the Nth page of
source objects written, before its commit), ``scope`` (the Nth page of the scope sweep), ``map``
(the Nth page of the map sweep's pending exports) or ``export`` (right after the target's Nth
commit: operations sent and committed there, their results not recorded in the state), or
``coordinator`` (a second after the coordinator sent its Nth phase's slices: it dies with slices
of its run running on other workers). There it
SIGKILLs the worker's whole process group, main process included: its broker connection drops
without an acknowledgement, so RabbitMQ redelivers the slice to another worker.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time

from runner import cli

calls = 0


def kill_after(cls: type, name: str, n: int, message: str, pause: float = 0.0) -> None:
    """Make ``cls.name`` SIGKILL the worker's whole process group right after its Nth call in this
    process (``pause`` seconds later), saying ``message`` (with the count) on stderr first."""
    original = getattr(cls, name)

    @functools.wraps(original)
    def counted(*a, **kw):  # type: ignore[no-untyped-def]
        global calls
        result = original(*a, **kw)
        calls += 1
        if calls == n:
            time.sleep(pause)
            print(f"{message} {calls}", file=sys.stderr, flush=True)
            os.killpg(os.getpgid(0), signal.SIGKILL)
        return result

    setattr(cls, name, counted)


def main(argv: list[str]) -> int:
    point, n, args = argv[0], int(argv[1]), argv[2:]
    message = f"killslice: killing the worker at {point}"
    if point == "coordinator":
        from runner.distributed.coordinator import Coordinator
        kill_after(Coordinator, "_send", n, message, pause=1.0)
    elif point == "import":
        from runner.state.imports import Imports
        kill_after(Imports, "import_page", n, message)
    elif point == "scope":
        from runner.state.compute import Compute
        kill_after(Compute, "set_scope", n, message)
    elif point == "map":
        from runner.state.compute import Compute
        kill_after(Compute, "set_pending", n, message)
    else:
        from runner.connectors.sql import SqlConnector
        kill_after(SqlConnector, "_apply_batch", n, message)
    return cli.main(args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
