"""A ``provision worker`` whose sql source loses its connection at the start of the last range of
a read cut in ranges, while a file exists (fault injection, tests only).

    python tests/distributed/brokenrange.py FLAG_FILE provision-worker-args...
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from runner import cli
from runner.connectors.base import SystemUnavailable
from runner.connectors.sql import SqlConnector


def main(argv: list[str]) -> int:
    flag, args = Path(argv[0]), argv[1:]
    read_range = SqlConnector.read_range

    @functools.wraps(read_range)
    def broken(self, object, token, *a, **kw):  # type: ignore[no-untyped-def]
        if flag.exists() and json.loads(token)["to"] is None:
            raise SystemUnavailable("injected: the connection to the HR database was lost")
        return read_range(self, object, token, *a, **kw)

    SqlConnector.read_range = broken  # type: ignore[method-assign]
    return cli.main(args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
