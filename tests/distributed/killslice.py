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

from runner import cli

calls = 0


def main(argv: list[str]) -> int:
    point, n, args = argv[0], int(argv[1]), argv[2:]

    def kill_on(cls: type, name: str) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        def counted(*a, **kw):  # type: ignore[no-untyped-def]
            global calls
            result = original(*a, **kw)
            calls += 1
            if calls == n:
                print(f"killslice: killing the worker at {point} {calls}", file=sys.stderr, flush=True)
                os.killpg(os.getpgid(0), signal.SIGKILL)
            return result

        setattr(cls, name, counted)

    if point == "coordinator":
        import time

        from runner.distributed.coordinator import Coordinator

        send = Coordinator._send

        @functools.wraps(send)
        def sent(*a, **kw):  # type: ignore[no-untyped-def]
            global calls
            send(*a, **kw)
            calls += 1
            if calls == n:
                time.sleep(1.0)
                print(f"killslice: killing the worker at {point} {calls}", file=sys.stderr, flush=True)
                os.killpg(os.getpgid(0), signal.SIGKILL)

        Coordinator._send = sent  # type: ignore[method-assign]
    elif point == "import":
        from runner.state.imports import Imports
        kill_on(Imports, "import_page")
    elif point == "scope":
        from runner.state.compute import Compute
        kill_on(Compute, "set_scope")
    elif point == "map":
        from runner.state.compute import Compute
        kill_on(Compute, "set_pending")
    else:
        from runner.connectors.sql import SqlConnector
        kill_on(SqlConnector, "_apply_batch")
    return cli.main(args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
