"""Benchmark: 5,000 users through `provision run` against raw requests POSTs of the same bodies.

    python bench/rest_export.py [--users 5000] [--concurrency 4] [--repeat 3] [--json OUT]

Both sides are whole runs, each a process of its own, against the same real json-server
(tests/servers/jsonserver.py, emptied before every run), at the same concurrency:

* provision: ``provision run manifests/hr-to-rest.yaml --object-type user`` on HR data of that many
  people, from a new state store: the CSV import, scope, mapping, the first-contact read of the
  API, the creates (managers in the same creates, once the manager exists) and the state kept;
* raw: a process that POSTs the very bodies that run left in the API (ids and stamps removed) with
  one ``requests.Session`` per thread in a pool of that many threads, checking each 201.

Runs are interleaved so that drift hits both sides alike; the medians' ratio is printed with the
raw numbers, and ``--json`` writes them. The budget is provision <= 1.25x raw. json-server takes
writes one at a time (its middleware serialises them, as a table lock would), so the server's
own time is a large part of both sides: this measures what provision adds on top of a real API.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from bench.wholeruns import example, report, timed  # noqa: E402
from tests.servers.jsonserver import TOKEN, JsonServer  # noqa: E402

BUDGET = 1.25


def raw_posts(url: str, bodies_file: str, threads: int) -> int:
    """The raw side, run in a process of its own: POST every body, ``threads`` at a time."""
    bodies = json.loads(Path(bodies_file).read_text())
    sessions: dict[int, requests.Session] = {}

    def post(body: dict) -> None:
        session = sessions.setdefault(threading.get_ident(), requests.Session())
        r = session.post(f"{url}/users", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert r.status_code == 201, r.text

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, bodies))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the numbers here")
    parser.add_argument("--raw", nargs=2, metavar=("URL", "BODIES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw:
        return raw_posts(args.raw[0], args.raw[1], args.concurrency)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        manifest, data = example(tmp, "hr-to-rest", ("person-to-rest-user.yaml", "group-to-rest-group.yaml"),
                                 args.users, args.concurrency)
        server = JsonServer.start(tmp / "server")
        try:
            env = os.environ | {"REST_URL": server.url, "REST_TOKEN": TOKEN, "PROVISION_DATA": str(data)}
            provision = [sys.executable, "-m", "runner", "run", str(manifest), "--object-type", "user"]
            raw = [sys.executable, __file__, "--concurrency", str(args.concurrency), "--raw", server.url,
                   str(tmp / "bodies.json")]
            ours, raws = [], []
            for n in range(args.repeat):  # interleaved, so drift hits both sides alike
                server.reset()
                state = tmp / f"state-{n}.db"
                ours.append(timed(provision, env | {"PROVISION_STATE": str(state)}))
                records = server.records("users")
                bodies = [{k: v for k, v in r.items() if k not in ("id", "updatedAt")} for r in records]
                (tmp / "bodies.json").write_text(json.dumps(bodies))
                server.reset()
                raws.append(timed(raw, env))
                assert len(server.records("users")) == len(bodies)
        finally:
            server.stop()
    return report(f"{len(bodies)} users created ({args.users} HR people), {args.concurrency} threads",
                  "raw requests POSTs", len(bodies), raws, ours, BUDGET, args.json, users=len(bodies),
                  concurrency=args.concurrency)


if __name__ == "__main__":
    sys.exit(main())
