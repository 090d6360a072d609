"""Benchmark: 5,000 users through `provision run` against raw requests POSTs of the same bodies.

    python bench/rest_export.py [--users 5000] [--concurrency 4] [--repeat 3] [--json OUT]

Both sides are whole runs, each a process of its own, against the same real json-server
(tests/servers/jsonserver.py, emptied before every run), at the same concurrency:

* provision: ``provision run manifests/hr-to-rest.yaml --object-type user`` on HR data of that many
  people, from a new state store: the CSV import, scope, mapping, the first-contact read of the
  API, the creates (managers in the same creates, once the manager exists) and the state kept;
* raw: a process (bench/raw_clients.py) that POSTs the very bodies that run left in the API (ids
  and stamps removed) from that many threads, a ``requests.Session`` each, checking each 201; the
  API must then hold the same users again.

Runs are interleaved so that drift hits both sides alike; the medians' ratio is printed with the
raw numbers, and ``--json`` writes them. The budget is provision <= 1.25x raw. json-server takes
writes one at a time (its middleware serialises them, as a table lock would), so the server's
own time is a large part of both sides: this measures what provision adds on top of a real API.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests/ is not on it: bench/ and tests/bench/ would clash

from bench.wholeruns import RAW_CLIENTS, Contest, report, whole_runs  # noqa: E402
from tests.servers.jsonserver import TOKEN, JsonServer  # noqa: E402

BUDGET = 1.25


class RestTarget:
    """json-server, emptied before every run; the raw side POSTs to ``/users``."""

    example = "hr-to-rest"
    mappings = ("person-to-rest-user.yaml", "group-to-rest-group.yaml")

    def __init__(self, folder: Path):
        self.server = JsonServer.start(folder)

    def reset(self) -> dict[str, str]:
        self.server.reset()
        return {"REST_URL": self.server.url, "REST_TOKEN": TOKEN, "RAW_SECRET": TOKEN}

    def records(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k not in ("id", "updatedAt")} for r in self.server.records("users")]

    def raw_command(self, bodies: Path, concurrency: int) -> list[str]:
        return [sys.executable, RAW_CLIENTS, "--threads", str(concurrency), "http-post", f"{self.server.url}/users",
                str(bodies)]

    def stop(self) -> None:
        self.server.stop()


def compare(tmp: Path, users: int, concurrency: int, repeat: int) -> Contest:
    """Interleaved whole runs of provision and of raw requests POSTs against one json-server."""
    return whole_runs(RestTarget(tmp / "server"), tmp, users, concurrency, repeat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        contest = compare(Path(tmp), args.users, args.concurrency, args.repeat)
    return report(f"{contest.count} users created ({args.users} HR people), {args.concurrency} threads",
                  "raw requests POSTs", contest, BUDGET, args.json, users=contest.count,
                  concurrency=args.concurrency)


if __name__ == "__main__":
    sys.exit(main())
