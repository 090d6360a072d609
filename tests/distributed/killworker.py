"""A ``provision worker`` that dies like a lost host after the target's Nth commit (tests only).

    python tests/distributed/killworker.py N provision-worker-args...

Counts the sql connector's commits (each ``_apply_batch``, as tests/faults/killpoint.py does) in
the pool process running a task; right after commit N it SIGKILLs the worker's whole process
group, main process included: its broker connection drops without an acknowledgement, so
RabbitMQ redelivers the run to another worker. N = 0 never kills.
"""

from __future__ import annotations

import sys

from killslice import kill_after  # beside this file: the script's folder is on sys.path

from runner import cli
from runner.connectors.sql import SqlConnector


def main(argv: list[str]) -> int:
    point, args = int(argv[0]), argv[1:]
    kill_after(SqlConnector, "_apply_batch", point, "killworker: killing the worker after commit")
    return cli.main(args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
