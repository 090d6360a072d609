"""Benchmark: ``provision serve`` under Entra's write load, beside a bare scim2-server (issue 23).

    python bench/serve.py [--users 2000] [--clients 8] [--json OUT]

The same workload goes to two servers on 127.0.0.1, one after the other, each started for it and
stopped by its PID:

* provision: ``python -m runner serve FILE`` (tests/servers/pipelineendpoint.py) on a manifest
  written to a temporary folder: a ``scim-endpoint`` source of Users exported at once to a table of
  a SQLite file by the sql connector, with a SQLite state store beside it; every request is a write
  to the state store and an export to the target before it is answered;
* scim2-server: the bare PyPI server (tests/servers/scim.py), in memory, nothing behind it.

The workload: ``--users`` POST /Users with an Entra-shaped body (userName, name, the work email,
active, externalId, the enterprise extension's department), then one PATCH per user in Entra's form
(``Replace`` of ``title``), each phase from ``--clients`` threads with a ``requests.Session`` each.
Every request's latency is measured; per phase and server the table gives requests per second
(requests / the phase's wall time), p50 and p99, the p50 of the first and of the last tenth of the
requests (does a request get slower as the server fills?), the server process's CPU time per
request (/proc/PID/stat: steadier than wall time on a busy machine), and the ratio provision /
scim2-server.
Then the outcome is checked: every request answered 2xx, the target table holds one row per user
with its patched title, scim2-server holds every user. A failed check stops the bench with exit
code 1 and says what was wrong. The serve process's peak RSS (VmHWM of /proc/PID/status, Linux) is
reported with scim2-server's. There is no budget: docs/performance.md reports the numbers.
scim2-server answers HTTP/1.0 and closes the connection after each request, so its
clients connect per request; provision's uvicorn keeps the connections alive.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.servers.pipelineendpoint import PipelineEndpoint  # noqa: E402
from tests.servers.scim import ScimServer  # noqa: E402

CORE, ENTERPRISE = "urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MEDIA_TYPE = "application/scim+json"
PHASES = ("POST", "PATCH")
SERVERS = ("scim2-server", "provision")

TARGET_SQL = """\
CREATE TABLE IF NOT EXISTS users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name   TEXT NOT NULL UNIQUE,
    external_id TEXT,
    given_name  TEXT,
    family_name TEXT,
    email       TEXT,
    department  TEXT,
    title       TEXT,
    disabled    BOOLEAN NOT NULL DEFAULT 0
);
"""

MAPPING = """\
version: 1
description: a SCIM User sent by Entra -> an application's user row
mapping:
  - {target: user_name, source: userName}
  - {target: external_id, source: externalId}
  - {target: given_name, expression: "name.givenName"}
  - {target: family_name, expression: "name.familyName"}
  - {target: email, expression: "emails[?type=='work'].value | [0]"}
  - {target: department, expression: '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".department'}
  - {target: title, source: title}
  - {target: disabled, constant: false}
"""

MANIFEST = """\
version: 1
name: serve-bench
state: "sqlite:///{folder}/state.db"
serve: {{token: "${{env:SCIM_ENDPOINT_TOKEN}}"}}
connectors:
  entra: {{type: scim-endpoint}}
  app:
    type: sql
    url: "sqlite:///{folder}/app.db"
    create: true
    init_sql: app.sql
    objects:
      users: {{table: users, key: id, generated_key: true}}
object_types:
  - name: user
    source: {{connector: entra, object: Users, anchor: id}}
    target: {{connector: app, object: users, disable: {{disabled: true}}, correlate: [user_name]}}
    scope:
      any:
        - {{attribute: active, op: is_null}}
        - {{attribute: active, op: is_true}}
    when_out_of_scope: disable
    when_deleted: delete
    mapping: users.yaml
"""


def pipeline_folder(folder: Path) -> Path:
    """The manifest, its mapping and the target's DDL in ``folder``; returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.sql").write_text(TARGET_SQL)
    (folder / "users.yaml").write_text(MAPPING)
    manifest = folder / "serve-bench.yaml"
    manifest.write_text(MANIFEST.format(folder=folder))
    return manifest


# ---- the workload -------------------------------------------------------------------------------------


def user_name(i: int) -> str:
    return f"bench.user{i:05d}@contoso.example"


def title(i: int) -> str:
    return f"Engineer grade {i % 9} #{i}"


def create_body(i: int) -> dict[str, Any]:
    """What Entra POSTs for a new user (the shape of Microsoft's "Create User" request)."""
    return {"schemas": [CORE, ENTERPRISE], "externalId": str(uuid.UUID(int=i)), "userName": user_name(i),
            "active": True, "emails": [{"primary": True, "type": "work", "value": user_name(i)}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": f"Bench User{i}", "familyName": f"User{i}", "givenName": "Bench"},
            "roles": [], ENTERPRISE: {"department": f"Department {i % 7}"}}


def patch_body(i: int) -> dict[str, Any]:
    """Entra's single-valued update: one ``Replace`` with a path."""
    return {"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "title", "value": title(i)}]}


@dataclass
class Phase:
    """One phase against one server: every request's latency (ms, in the order they finished, so the
    first and last tenths show whether requests slow down as the server fills), its wall time, what
    failed."""

    seconds: float
    latencies_ms: list[float]
    failures: list[str] = field(default_factory=list)
    #: CPU time the server process spent in the phase (steadier than wall time on a busy machine)
    server_cpu_seconds: float | None = None

    def numbers(self) -> dict[str, Any]:
        cuts = statistics.quantiles(self.latencies_ms, n=100, method="inclusive") if len(self.latencies_ms) > 1 \
            else self.latencies_ms * 99
        tenth = max(1, len(self.latencies_ms) // 10)
        return {"requests": len(self.latencies_ms), "seconds": round(self.seconds, 3),
                "requests_per_second": round(len(self.latencies_ms) / self.seconds, 1),
                "p50_ms": round(cuts[49], 2), "p99_ms": round(cuts[98], 2),
                "p50_first_tenth_ms": round(statistics.median(self.latencies_ms[:tenth]), 2),
                "p50_last_tenth_ms": round(statistics.median(self.latencies_ms[-tenth:]), 2),
                "server_cpu_ms_per_request": None if self.server_cpu_seconds is None
                else round(self.server_cpu_seconds * 1000 / max(1, len(self.latencies_ms)), 2),
                "failed": len(self.failures)}


def phase(calls: Sequence[Callable[[requests.Session], requests.Response]], clients: int,
          ok: Callable[[int, requests.Response], str | None]) -> tuple[Phase, list[requests.Response | None]]:
    """Run ``calls`` from ``clients`` threads, one ``requests.Session`` each; ``ok(i, answer)`` names
    what is wrong with an answer (None: nothing). Returns the phase and the answers (None: no answer)."""
    sessions: dict[int, requests.Session] = {}
    latencies: list[float] = []
    failures: list[str] = []
    answers: list[requests.Response | None] = [None] * len(calls)

    def one(i: int) -> None:
        session = sessions.setdefault(threading.get_ident(), requests.Session())
        started = time.perf_counter()
        try:
            answer = calls[i](session)
        except requests.RequestException as e:
            latencies.append((time.perf_counter() - started) * 1000)
            failures.append(f"request {i}: no answer ({type(e).__name__}: {e})")
            return
        latencies.append((time.perf_counter() - started) * 1000)
        answers[i] = answer
        wrong = ok(i, answer)
        if wrong:
            failures.append(f"request {i}: {wrong}")

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(len(calls))))
    seconds = time.perf_counter() - started
    for session in sessions.values():
        session.close()
    return Phase(seconds, latencies, failures), answers


def workload(url: str, token: str, users: int, clients: int, pid: int) -> tuple[dict[str, Phase], list[str | None]]:
    """POST ``users`` users to ``url`` (a SCIM base URL, served by process ``pid``), then PATCH each
    one's title; returns the phases and the ids the server gave (None where the POST failed)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": MEDIA_TYPE, "Accept": MEDIA_TYPE}

    def status_2xx(i: int, answer: requests.Response) -> str | None:
        return None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}: {answer.text[:300]}"

    def post(i: int) -> Callable[[requests.Session], requests.Response]:
        data = json.dumps(create_body(i))
        return lambda s: s.post(f"{url}/Users", data=data, headers=headers, timeout=60)

    cpu = cpu_seconds(pid)
    posting, created = phase([post(i) for i in range(users)], clients, status_2xx)
    cpu, posting.server_cpu_seconds = _spent(cpu, cpu_seconds(pid))
    ids = [a.json().get("id") if a is not None and a.status_code == 201 else None for a in created]

    def patch(i: int) -> Callable[[requests.Session], requests.Response]:
        data = json.dumps(patch_body(i))
        return lambda s: s.patch(f"{url}/Users/{ids[i]}", data=data, headers=headers, timeout=60)

    patched = [i for i in range(users) if ids[i]]
    patching, _ = phase([patch(i) for i in patched], clients, lambda n, a: status_2xx(patched[n], a))
    _, patching.server_cpu_seconds = _spent(cpu, cpu_seconds(pid))
    return {"POST": posting, "PATCH": patching}, ids


# ---- checks and facts ---------------------------------------------------------------------------------


def target_problems(db: Path, users: int) -> list[str]:
    """What is wrong with the target table after the workload: one row per user, its title patched."""
    with sqlite3.connect(db) as con:
        rows = dict(con.execute("SELECT user_name, title FROM users"))
    problems = []
    if len(rows) != users:
        problems.append(f"the target table holds {len(rows)} rows, not {users}")
    wrong = [name for i in range(users) if rows.get(name := user_name(i)) != title(i)]
    if wrong:
        problems.append(f"{len(wrong)} target rows without their patched title, e.g. {wrong[0]}: "
                        f"{rows.get(wrong[0])!r}")
    return problems


def scim2_problems(url: str, token: str, users: int) -> list[str]:
    """What is wrong with what scim2-server holds afterwards: every user, a patched title on a sample."""
    headers = {"Authorization": f"Bearer {token}", "Accept": MEDIA_TYPE}
    total = requests.get(f"{url}/Users", params={"count": 0}, headers=headers, timeout=60).json()["totalResults"]
    problems = [] if total == users else [f"scim2-server holds {total} users, not {users}"]
    for i in sorted({0, users // 2, users - 1}):
        found = requests.get(f"{url}/Users", params={"filter": f'userName eq "{user_name(i)}"'}, headers=headers,
                             timeout=60).json().get("Resources") or [{}]
        if found[0].get("title") != title(i):
            problems.append(f"scim2-server: {user_name(i)} has title {found[0].get('title')!r}, not {title(i)!r}")
    return problems


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU time the process has used (/proc/PID/stat), or None where /proc does not tell it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15


def _spent(before: float | None, after: float | None) -> tuple[float | None, float | None]:
    """(after, after - before), None where either is unknown."""
    return after, None if before is None or after is None else after - before


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), or None where /proc does not tell it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


# ---- the two servers ------------------------------------------------------------------------------------


def against_scim2_server(folder: Path, users: int, clients: int) -> dict[str, Any]:
    server = ScimServer.start(folder)
    try:
        url = server.tenant("bench")
        phases, _ = workload(url, server.token, users, clients, server.process.pid)
        rss = peak_rss_mib(server.process.pid)
        problems = scim2_problems(url, server.token, users)
    finally:
        server.stop()
    return {"phases": phases, "peak_rss_mib": rss, "problems": problems}


def against_provision(folder: Path, users: int, clients: int) -> dict[str, Any]:
    endpoint = PipelineEndpoint.start_serving(pipeline_folder(folder), folder)
    try:
        phases, _ = workload(endpoint.url, endpoint.token, users, clients, endpoint.process.pid)
        rss = peak_rss_mib(endpoint.process.pid)
    finally:
        endpoint.stop()
    return {"phases": phases, "peak_rss_mib": rss, "problems": target_problems(folder / "app.db", users)}


def report(results: dict[str, dict[str, Any]], users: int, clients: int, seconds: float,
           json_path: Path | None) -> int:
    """Print the table, write the JSON when asked; 0 when every check passed, else 1 (and say why)."""
    numbers = {name: {p: r["phases"][p].numbers() for p in PHASES} for name, r in results.items()}
    problems = [f"{name}: {p}" for name, r in results.items() for p in r["problems"]]
    problems += [f"{name} {p}: {f}" for name, r in results.items() for p in PHASES for f in r["phases"][p].failures[:5]]
    ratios = {p: {"requests_per_second": round(numbers["provision"][p]["requests_per_second"]
                                               / numbers["scim2-server"][p]["requests_per_second"], 2),
                  "p50": round(numbers["provision"][p]["p50_ms"] / numbers["scim2-server"][p]["p50_ms"], 2),
                  "p99": round(numbers["provision"][p]["p99_ms"] / numbers["scim2-server"][p]["p99_ms"], 2)}
              for p in PHASES}
    print(f"{users} users, {clients} clients: POST /Users, then one PATCH (Replace title) each; "
          f"{seconds:.1f} s in all")
    print(f"{'phase':<7}{'server':<15}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'p50 first/last tenth':>22}"
          f"{'cpu ms/req':>12}{'failed':>8}")
    for p in PHASES:
        for name in SERVERS:
            n = numbers[name][p]
            tenths = f"{n['p50_first_tenth_ms']:.1f} / {n['p50_last_tenth_ms']:.1f}"
            cpu = "?" if n["server_cpu_ms_per_request"] is None else f"{n['server_cpu_ms_per_request']:.1f}"
            print(f"{p:<7}{name:<15}{n['requests_per_second']:>9.1f}{n['p50_ms']:>9.1f}{n['p99_ms']:>9.1f}"
                  f"{tenths:>22}{cpu:>12}{n['failed']:>8}")
        r = ratios[p]
        print(f"{p:<7}{'ratio':<15}{r['requests_per_second']:>8.2f}x{r['p50']:>8.2f}x{r['p99']:>8.2f}x")
    rss = {name: r["peak_rss_mib"] for name, r in results.items()}
    print("peak RSS: " + ", ".join(f"{name} {rss[name]} MiB" for name in SERVERS if rss[name] is not None))
    print("check: " + ("every request 2xx; the target table holds every user with the patched title"
                       if not problems else "FAILED"))
    if json_path:
        json_path.write_text(json.dumps({"users": users, "clients": clients, "seconds": round(seconds, 1),
                                         "servers": numbers, "ratio": ratios, "peak_rss_mib": rss,
                                         "correct": not problems, "problems": problems}, indent=2))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)
    if args.users < 1 or args.clients < 1:
        parser.error("--users and --clients must be at least 1")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp_name:
        tmp = Path(tmp_name)
        results = {"scim2-server": against_scim2_server(tmp / "scim2-server", args.users, args.clients),
                   "provision": against_provision(tmp / "provision", args.users, args.clients)}
    return report(results, args.users, args.clients, time.perf_counter() - started, args.json)


if __name__ == "__main__":
    sys.exit(main())
