"""Benchmark: 2,000 SCIM user creates through provision's connector against raw requests POSTs.

    python bench/scim_export.py [--users 2000] [--concurrency 4] [--repeat 3]

Both sides send the same bodies (built once by ``runner.connectors.scim.protocol.build_resource``)
to the real scim2-server, each on a fresh tenant, at the same concurrency: the raw side is one
``requests.Session`` per thread in a thread pool, the connector side is ``ScimConnector.apply``
called from that many threads with the operations dealt as the engine deals them
(``ops[i::threads]``). The budget is connector <= 1.25x raw. scim2-server answers HTTP/1.0 and
spends ~4 ms per request (../shared/PERF.md), so this measures the client's overhead on top of a
slow server, not the server.

``ScimTarget`` is the server of bench/budget.py's whole-run comparison: manifests/hr-to-scim.yaml
run whole against raw requests POSTs (bench/raw_clients.py) of the users that run left.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.raw_clients import RAW_CLIENTS, post_all  # noqa: E402
from runner.connectors.base import ConnectorContext, Operation  # noqa: E402
from runner.connectors.scim import protocol as p  # noqa: E402
from runner.connectors.scim.connector import ScimConnector  # noqa: E402
from tests.servers.scim import TOKEN, ScimServer  # noqa: E402


def person(i: int) -> dict[str, object]:
    return {"userName": f"bench{i:05d}@example.org", "externalId": f"E{i:07d}", "displayName": f"Bench User {i}",
            "name.givenName": "Bench", "name.familyName": f"User{i}", 'emails[type eq "work"].value':
            f"bench{i:05d}@example.org", "title": "Engineer", "department": f"Dept {i % 7}", "active": True}


def raw(url: str, bodies: list[dict], threads: int) -> float:
    started = time.perf_counter()
    post_all(f"{url}/Users", bodies, threads, {"Authorization": f"Bearer {TOKEN}", "Content-Type": p.MEDIA_TYPE})
    return time.perf_counter() - started


class ScimTarget:
    """scim2-server for whole runs (bench/budget.py): a fresh tenant for every run; the raw side POSTs
    to its ``/Users`` what provision left in the previous one."""

    example = "hr-to-scim"
    mappings = ("person-to-scim-user.yaml", "group-to-scim-group.yaml")
    made_by_server = ("id", "meta", "groups")  # assigned or read-only (RFC 7643 section 3.1, 4.1.2)

    def __init__(self, folder: Path):
        self.server = ScimServer.start(folder)
        self.url = ""

    def reset(self) -> dict[str, str]:
        self.url = self.server.tenant()
        return {"SCIM_URL": self.url, "SCIM_TOKEN": TOKEN, "RAW_SECRET": TOKEN}

    def records(self) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = []
        while True:
            page = requests.get(f"{self.url}/Users", params={"startIndex": len(users) + 1, "count": 500},
                                headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
            page.raise_for_status()
            found = page.json().get("Resources") or []
            users += [{k: v for k, v in u.items() if k not in self.made_by_server} for u in found]
            if not found or len(users) >= page.json()["totalResults"]:
                return users

    def raw_command(self, bodies: Path, concurrency: int) -> list[str]:
        return [sys.executable, RAW_CLIENTS, "--threads", str(concurrency), "http-post", f"{self.url}/Users",
                str(bodies), "--content-type", p.MEDIA_TYPE]

    def stop(self) -> None:
        self.server.stop()


def connector(url: str, attributes: list[dict], threads: int, folder: Path) -> float:
    c = ScimConnector({"type": "scim", "url": url, "auth": {"type": "bearer", "token": TOKEN},
                       "concurrency": threads, "objects": {"Users": {}}}, ConnectorContext("bench", folder))
    c.open()
    ops = [Operation(i, "add", "Users", attributes=a, source_anchor=a["externalId"]) for i, a in enumerate(attributes)]
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        shares = list(pool.map(lambda share: list(c.apply(share)), [ops[i::threads] for i in range(threads)]))
    elapsed = time.perf_counter() - started
    assert all(r.ok for share in shares for r in share)
    c.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server = ScimServer.start(Path(tmp))
        try:
            probe = ScimConnector({"type": "scim", "url": server.tenant(), "auth": {"type": "bearer", "token": TOKEN}},
                                  ConnectorContext("bench", Path(tmp)))
            probe.open()
            info = probe.types["users"]
            probe.close()
            attributes = [person(i) for i in range(args.users)]
            bodies = [p.build_resource(info, a) for a in attributes]
            raws, ours = [], []
            for _ in range(args.repeat):  # interleaved, so drift hits both sides alike
                raws.append(raw(server.tenant(), bodies, args.concurrency))
                ours.append(connector(server.tenant(), attributes, args.concurrency, Path(tmp)))
        finally:
            server.stop()
    r, o = statistics.median(raws), statistics.median(ours)
    print(f"{args.users} users, {args.concurrency} threads, median of {args.repeat}")
    print(f"raw requests POSTs   {r:7.2f} s  {args.users / r:7.0f}/s   runs: {', '.join(f'{x:.2f}' for x in raws)}")
    print(f"provision connector  {o:7.2f} s  {args.users / o:7.0f}/s   runs: {', '.join(f'{x:.2f}' for x in ours)}")
    print(f"ratio {o / r:.2f}x (budget 1.25x)")
    return 0 if o / r <= 1.25 else 1


if __name__ == "__main__":
    sys.exit(main())
