"""Benchmark: the LDAP connector's adds against raw ldap3 and ``ldapadd -c``; a 100k paged import.

    python bench/ldap_export.py [--people 10000] [--concurrency 4] [--import-people 100000]

Each export contender adds the same inetOrgPerson entries (hrgen-like values) below its own OU
of one throwaway slapd (tests/servers/slapd.py: accesslog, syncprov, memberof, refint), timed
with the wall clock:

* ``ldapadd -c``: the C client reading an LDIF of the entries (the server's ingest floor);
* raw ldap3: ``concurrency`` threads, one connection each, ``conn.add`` per entry (SYNC strategy,
  no schema);
* provision: ``LdapConnector.apply`` with the operations dealt into ``concurrency`` shares, one
  share per thread, as the engine deals a round (post-read of the entryUUID included);
* ``provision run``: the whole engine, CSV source -> the same directory: its export pass (the
  part that talks to the directory, what the raw clients are compared with) and the whole run
  (CSV import, compute and the state store included).

``LdapTarget`` is the directory of bench/budget.py's whole-run comparison: manifests/hr-to-ldap.yaml
run whole against raw ldap3 adds (bench/raw_clients.py) of the entries that run left.

The import part slapadds ``--import-people`` entries and a group with half of them as members
into a second slapd, then reads them with the connector's paged read (pages of 500) in a child
process per size, reporting time and peak RSS: memory must stay flat as the directory grows.
Then one member joins that group and one leaves through the connector: slapd's accesslog must
show one modify of two member values, not the group rewritten.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests/ is not on it: bench/ and tests/bench/ would clash

import ldap3  # noqa: E402

from bench.raw_clients import RAW_CLIENTS, in_threads, ldap_add_all  # noqa: E402
from runner.connectors.base import ConnectorContext, Operation  # noqa: E402
from runner.connectors.ldap.connector import LdapConnector  # noqa: E402
from tests.servers.slapd import Slapd  # noqa: E402

FIRST = ["Ana", "Bo", "Chen", "Dara", "Émile", "Farah", "Goran", "Hana", "Ivo", "Júlia", "Kofi", "Lena"]
LAST = ["Silva", "Ødegård", "Nuñez", "Smith", "Kowalski", "Tanaka", "Okafor", "Müller", "Rossi", "Haddad"]


def person(i: int) -> dict[str, str]:
    first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
    return {"uid": f"p{i:06d}", "cn": f"{first} {last}", "sn": last, "givenName": first,
            "mail": f"p{i:06d}@example.org", "employeeNumber": f"E{i:07d}", "title": "Engineer",
            "telephoneNumber": f"+1 555 {i:07d}", "departmentNumber": "Engineering"}


def dn(i: int, ou: str) -> str:
    return f"uid=p{i:06d},ou={ou},dc=example,dc=org"


def ldif(people: int, ou: str) -> str:
    lines = []
    for i in range(people):
        lines.append(f"dn: {dn(i, ou)}\nobjectClass: inetOrgPerson\n" +
                     "".join(f"{k}: {v}\n" for k, v in person(i).items()))
    return "\n".join(lines)


def make_ou(server: Slapd, ou: str) -> None:
    conn = ldap3.Connection(ldap3.Server(server.url, get_info=ldap3.NONE), server.root_dn, server.root_password,
                            auto_bind=True)
    conn.add(f"ou={ou},dc=example,dc=org", ["organizationalUnit"], {"ou": ou})
    conn.unbind()


def bench_ldapadd(server: Slapd, people: int, folder: Path) -> float:
    make_ou(server, "ldapadd")
    path = folder / "people.ldif"
    path.write_text(ldif(people, "ldapadd"), encoding="utf-8")
    start = time.perf_counter()
    subprocess.run(["ldapadd", "-c", "-x", "-H", server.url, "-D", server.root_dn, "-w", server.root_password,
                    "-f", str(path)], check=True, capture_output=True)
    return time.perf_counter() - start


def bench_raw(server: Slapd, people: int, concurrency: int) -> float:
    make_ou(server, "raw")
    entries = [(dn(i, "raw"), {"objectClass": ["inetOrgPerson"], **person(i)}) for i in range(people)]
    return ldap_add_all(server.url, server.root_dn, server.root_password, entries, concurrency)


def bench_provision(server: Slapd, people: int, concurrency: int, folder: Path) -> float:
    make_ou(server, "provision")
    connector = LdapConnector({"type": "ldap", "url": server.url, "bind_dn": server.root_dn,
                               "password": server.root_password, "partitions": ["dc=example,dc=org"],
                               "concurrency": concurrency}, ConnectorContext("bench", folder))
    connector.open()
    ops = [Operation(i, "add", "inetOrgPerson", name=dn(i, "provision"), attributes=person(i)) for i in range(people)]
    with connector.pool.connection() as first:  # warm the pool as a run's earlier phases would
        others = [connector.pool._new() for _ in range(concurrency - 1)]
    for conn in others:
        connector.pool.idle.put(conn)
    del first
    shares = [list(range(people))[k::concurrency] for k in range(concurrency)]

    def work(share: list[int]) -> None:
        for result in connector.apply([ops[i] for i in share]):
            if not result.ok:
                raise RuntimeError(result.error)

    elapsed = in_threads(shares, work)
    connector.close()
    return elapsed


class LdapTarget:
    """slapd for whole runs (bench/budget.py): a new server for every run, as a directory has no cheap
    reset; the raw side adds with ldap3 the entries provision left in the previous one (the
    organizational units first, then the people from that many threads)."""

    example = "hr-to-ldap"
    mappings = ("person-to-ldap-inetorgperson.yaml", "group-to-ldap-groupofnames.yaml")
    base = "dc=example,dc=org"

    def __init__(self, folder: Path):
        self.folder, self.server, self.started = folder, None, 0

    def reset(self) -> dict[str, str]:
        self.stop()
        self.started += 1
        self.server = Slapd.start(self.folder / f"slapd-{self.started}", (self.base,))
        return {"LDAP_URL": self.server.url, "LDAP_BIND_DN": self.server.root_dn, "LDAP_BASE_DN": self.base,
                "LDAP_PASSWORD": self.server.root_password, "RAW_SECRET": self.server.root_password}

    def records(self) -> list[dict[str, Any]]:
        """Every entry below the suffix with its user attributes, parents before their children."""
        conn = ldap3.Connection(ldap3.Server(self.server.url, get_info=ldap3.NONE), self.server.root_dn,
                                self.server.root_password, auto_bind=True)
        found = conn.extend.standard.paged_search(self.base, "(objectClass=*)", ldap3.SUBTREE,
                                                  attributes=[ldap3.ALL_ATTRIBUTES], paged_size=1000,
                                                  generator=False)
        conn.unbind()
        entries = [{"dn": e["dn"], "attributes": {k: [v.decode() for v in values]
                                                  for k, values in e["raw_attributes"].items()}}
                   for e in found if e.get("type") == "searchResEntry" and e["dn"].lower() != self.base]
        return sorted(entries, key=lambda e: (len(ldap3.utils.dn.parse_dn(e["dn"])), e["dn"]))

    def raw_command(self, bodies: Path, concurrency: int) -> list[str]:
        return [sys.executable, RAW_CLIENTS, "--threads", str(concurrency), "ldap-add", self.server.url,
                self.server.root_dn, str(bodies)]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def bench_engine(server: Slapd, people: int, concurrency: int, folder: Path) -> tuple[float, dict]:
    make_ou(server, "engine")
    data = folder / "hr"
    data.mkdir(exist_ok=True)
    with open(data / "people.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["id", *person(0)])
        writer.writeheader()
        for i in range(people):
            writer.writerow({"id": f"E{i:07d}", **person(i)})
    mapping = "\n".join(f"      - {{target: {k}, source: {k}}}" for k in person(0))
    manifest = folder / "engine.yaml"
    manifest.write_text(f"""version: 1
name: ldap-bench
state: "sqlite:///{folder / 'engine.state'}"
connectors:
  hr: {{type: csv, path: "{data}"}}
  dir: {{type: ldap, url: "{server.url}", bind_dn: "{server.root_dn}", password: "{server.root_password}",
         partitions: ["dc=example,dc=org"], concurrency: {concurrency}}}
object_types:
  - name: user
    source: {{connector: hr, object: people, anchor: id}}
    target: {{connector: dir, object: inetOrgPerson, name: "uid={{uid}},ou=engine,dc=example,dc=org"}}
    mapping:
{mapping}
""")
    phases = folder / "phases.json"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", TIMED_RUN, str(manifest), str(phases)],
                          capture_output=True, text=True, cwd=REPO)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)["object_types"]["user"]
    return elapsed, {**counts, "export_seconds": json.loads(phases.read_text())["export"]}


# provision run in a child process with its export pass timed: the pass that talks to the
# directory, to compare with the raw clients (import, compute and the state store are the rest)
TIMED_RUN = """
import json, sys, time
from pathlib import Path
from runner.cli import main
from runner.engine import run
spent = {"export": 0.0}
export_type = run.export_type
def timed(*args, **kwargs):
    start = time.perf_counter()
    try:
        return export_type(*args, **kwargs)
    finally:
        spent["export"] += time.perf_counter() - start
run.export_type = timed
try:
    code = main(["run", sys.argv[1], "--output", "json"])
finally:
    Path(sys.argv[2]).write_text(json.dumps(spent))
sys.exit(code)
"""


READER = """
import json, resource, sys, time
sys.path[:0] = [sys.argv[1]]
from pathlib import Path
from runner.connectors.base import ConnectorContext
from runner.connectors.ldap.connector import LdapConnector
url, password, base, obj = sys.argv[2:6]
c = LdapConnector({"type": "ldap", "url": url, "bind_dn": "cn=admin,dc=example,dc=org", "password": password,
                   "partitions": [base], "page_size": 500}, ConnectorContext("bench", Path(".")))
c.open()
start, count, values = time.perf_counter(), 0, 0
for page in c.read(obj, base, None):
    count += len(page.records)
    values += sum(len(r.attributes.get("member") or []) for r in page.records)
elapsed = time.perf_counter() - start
c.close()
print(json.dumps({"records": count, "members": values, "seconds": elapsed,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_import(folder: Path, sizes: list[int]) -> list[dict]:
    rows = []
    for size in sizes:
        sub = folder / f"import-{size}"
        sub.mkdir()
        path = sub / "preload.ldif"
        with open(path, "w", encoding="utf-8") as f:
            f.write("dn: ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: people\n\n")
            for i in range(size):
                f.write(f"dn: {dn(i, 'people')}\nobjectClass: inetOrgPerson\n" +
                        "".join(f"{k}: {v}\n" for k, v in person(i).items()) + "\n")
            f.write("dn: cn=half,dc=example,dc=org\nobjectClass: groupOfNames\ncn: half\n" +
                    "".join(f"member: {dn(i, 'people')}\n" for i in range(0, size, 2)) + "\n")
        server = Slapd.start(sub / "slapd", ("dc=example,dc=org",), preload=path)
        try:
            for obj in ("inetOrgPerson", "groupOfNames"):
                done = subprocess.run([sys.executable, "-c", READER, str(REPO), server.url, server.root_password,
                                       "dc=example,dc=org", obj], capture_output=True, text=True, check=True)
                rows.append({"size": size, "object": obj, **json.loads(done.stdout)})
            rows[-1]["change"] = one_member_change(server, sub)
        finally:
            server.stop()
    return rows


def one_member_change(server: Slapd, folder: Path) -> dict:
    """One member in and one out of the big group through the connector: the seconds it takes and
    the member values slapd received (its accesslog's reqMod), which must be those two."""
    group = "cn=half,dc=example,dc=org"
    admin = ldap3.Connection(ldap3.Server(server.url, get_info=ldap3.NONE), server.root_dn, server.root_password,
                             auto_bind=True)
    admin.search(group, "(objectClass=*)", ldap3.BASE, attributes=["entryUUID"])
    uuid = str(admin.response[0]["attributes"]["entryUUID"][0])
    connector = LdapConnector({"type": "ldap", "url": server.url, "bind_dn": server.root_dn,
                               "password": server.root_password, "partitions": ["dc=example,dc=org"]},
                              ConnectorContext("bench", folder))
    connector.open()
    start = time.perf_counter()
    [result] = connector.apply([Operation(1, "update", "groupOfNames", anchor=uuid, name=group,
                                          add_values={"member": [dn(1, "people")]},
                                          remove_values={"member": [dn(0, "people")]})])
    seconds = time.perf_counter() - start
    connector.close()
    assert result.ok, result.error
    admin.search("cn=accesslog", f"(&(objectClass=auditModify)(reqDN={group}))", ldap3.LEVEL, attributes=["reqMod"])
    sent = [m for e in admin.response for m in e["attributes"]["reqMod"] if m.lower().startswith("member:")]
    modifies = len(admin.response)
    admin.unbind()
    return {"seconds": seconds, "values": len(sent), "modifies": modifies}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--import-people", type=int, default=100000)
    parser.add_argument("--skip-import", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ldap-bench-") as tmp:
        folder = Path(tmp)
        server = Slapd.start(folder / "slapd", ("dc=example,dc=org",))
        try:
            n, c = args.people, args.concurrency
            floor = bench_ldapadd(server, n, folder)
            raw = bench_raw(server, n, c)
            ours = bench_provision(server, n, c, folder)
            engine, counts = bench_engine(server, n, c, folder)
        finally:
            server.stop()
        print(f"export of {n} inetOrgPerson adds, concurrency {c} (slapd with accesslog, syncprov, memberof, refint)")
        print(f"  {'contender':<34}{'seconds':>9}{'adds/s':>9}{'vs raw':>8}")
        for label, seconds in (("ldapadd -c (C client, 1 conn)", floor), (f"raw ldap3, {c} threads", raw),
                               (f"provision connector, {c} threads", ours),
                               ("provision run: export pass", counts["export_seconds"]),
                               (f"provision run: whole ({counts['added']} added)", engine)):
            print(f"  {label:<34}{seconds:>9.1f}{n / seconds:>9.0f}{seconds / raw:>7.2f}x")
        if not args.skip_import:
            sizes = sorted({max(1000, args.import_people // 5), args.import_people})
            print(f"paged import (pages of 500), a fresh process per read; group 'half' has {args.import_people // 2} "
                  "members")
            print(f"  {'entries':>8} {'object':<14}{'records':>8}{'members':>9}{'seconds':>9}{'peak RSS MB':>12}")
            changes = []
            for row in bench_import(folder, sizes):
                print(f"  {row['size']:>8} {row['object']:<14}{row['records']:>8}{row['members']:>9}"
                      f"{row['seconds']:>9.1f}{row['peak_mb']:>12.0f}")
                if "change" in row:
                    changes.append((row["members"], row["change"]))
            for members, change in changes:
                print(f"  one member in, one out of the {members}-member group: {change['modifies']} modify of "
                      f"{change['values']} member values, {change['seconds'] * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
