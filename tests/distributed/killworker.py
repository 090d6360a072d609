"""A ``provision worker`` that dies like a lost host after the target's Nth commit (tests only).

    python tests/distributed/killworker.py N provision-worker-args...

Counts the sql connector's commits (each ``_apply_batch``, as tests/faults/killpoint.py does) in
the pool process running a task; right after commit N it SIGKILLs the worker's whole process
group, main process included: its broker connection drops without an acknowledgement, so
RabbitMQ redelivers the run to another worker. N = 0 never kills.
"""

from __future__ import annotations

import functools
import os
import signal
import sys

from runner import cli
from runner.connectors.sql import SqlConnector

commits = 0


def main(argv: list[str]) -> int:
    point, args = int(argv[0]), argv[1:]
    apply_batch = SqlConnector._apply_batch

    @functools.wraps(apply_batch)
    def counted(*a, **kw):  # type: ignore[no-untyped-def]
        global commits
        result = apply_batch(*a, **kw)
        commits += 1
        if commits == point:
            print(f"killworker: killing the worker after commit {commits}", file=sys.stderr, flush=True)
            os.killpg(os.getpgid(0), signal.SIGKILL)
        return result

    SqlConnector._apply_batch = counted  # type: ignore[method-assign]
    return cli.main(args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
