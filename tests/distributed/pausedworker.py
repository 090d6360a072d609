"""A ``provision worker`` whose runs stop after the target's first commit until a file exists (tests only).

    python tests/distributed/pausedworker.py GATE_FILE provision-worker-args...

The run holds the pipeline's lock while it waits, so the test can send another run of the same
pipeline (a firing of beat) to another worker and see it meet the lock; creating GATE_FILE lets
the run go on and end as usual.
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

from runner import cli
from runner.connectors.sql import SqlConnector


def main(argv: list[str]) -> int:
    gate, args = Path(argv[0]), argv[1:]
    apply_batch = SqlConnector._apply_batch

    @functools.wraps(apply_batch)
    def paused(*a, **kw):  # type: ignore[no-untyped-def]
        result = apply_batch(*a, **kw)
        deadline = time.monotonic() + 120
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return result

    SqlConnector._apply_batch = paused  # type: ignore[method-assign]
    return cli.main(args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
