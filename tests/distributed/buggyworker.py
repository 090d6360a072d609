"""A ``provision worker`` whose target connector has a bug: every write raises an exception no
connector should raise (fault injection, tests only).

    python tests/distributed/buggyworker.py provision-worker-args...
"""

from __future__ import annotations

import sys

from runner import cli
from runner.connectors.sql import SqlConnector


def main(argv: list[str]) -> int:
    def broken(*a, **kw):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("injected connector defect")

    SqlConnector._apply_batch = broken  # type: ignore[method-assign]
    return cli.main(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
