"""Benchmark: 2,000 users through `provision run` against raw zeep createUser calls of the same users.

    python bench/soap_export.py [--users 2000] [--concurrency 4] [--repeat 3] [--json OUT]

Both sides are whole runs, each a process of its own, against the same real SOAP service
(tests/servers/soapservice.py, spyne, emptied before every run), at the same concurrency:

* provision: ``provision run manifests/hr-to-soap.yaml --object-type user`` on HR data of that many
  people, from a new state store: the WSDL load, the CSV import, scope, mapping, the first-contact
  read of the service (listUsers), the createUser calls and the state kept;
* raw: a process (bench/raw_clients.py) that loads the WSDL into one zeep client (a
  ``requests.Session`` with Basic auth, zeep's own Transport on it) and calls ``createUser`` for
  the very users that run left in the service (userName, givenName, familyName, email, active) from
  that many threads, checking each answer. The client is shared by the threads, as provision's
  connector shares its own: a zeep call builds its envelope and parses its answer in locals, the
  only state it shares is the session (urllib3's pool, thread-safe); each answer's userName is
  checked against the request and the service's users against the list afterwards.

Runs are interleaved so that drift hits both sides alike; the medians' ratio is printed with the
raw numbers, and ``--json`` writes them. The budget is provision <= 1.25x raw. The service answers
HTTP/1.0 (a connection per call) and spyne's lxml validation and serialisation run in its one
process, so the server's own time is a large part of both sides: this measures what provision adds
on top of a real SOAP service.
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
from tests.servers.soapservice import PASSWORD, USER, SoapService  # noqa: E402

BUDGET = 1.25
FIELDS = ("userName", "givenName", "familyName", "email", "active")  # what createUser takes


class SoapTarget:
    """The spyne service, emptied before every run; the raw side calls ``createUser`` through zeep."""

    example = "hr-to-soap"
    mappings = ("person-to-soap-user.yaml", "group-to-soap-group.yaml")

    def __init__(self, folder: Path):
        self.service = SoapService.start(folder)

    def reset(self) -> dict[str, str]:
        self.service.reset()
        return {"SOAP_WSDL": self.service.wsdl, "SOAP_USER": USER, "SOAP_PASSWORD": PASSWORD, "RAW_USER": USER,
                "RAW_SECRET": PASSWORD}

    def records(self) -> list[dict[str, Any]]:
        return [{k: u.get(k) for k in FIELDS} for u in self.service.dump()["users"]]

    def raw_command(self, bodies: Path, concurrency: int) -> list[str]:
        return [sys.executable, RAW_CLIENTS, "--threads", str(concurrency), "soap-create", self.service.wsdl,
                str(bodies)]

    def stop(self) -> None:
        self.service.stop()


def compare(tmp: Path, users: int, concurrency: int, repeat: int) -> Contest:
    """Interleaved whole runs of provision and of raw zeep createUser calls against one service."""
    return whole_runs(SoapTarget(tmp / "server"), tmp, users, concurrency, repeat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        contest = compare(Path(tmp), args.users, args.concurrency, args.repeat)
    return report(f"{contest.count} users created ({args.users} HR people), {args.concurrency} threads",
                  "raw zeep createUser", contest, BUDGET, args.json, users=contest.count,
                  concurrency=args.concurrency)


if __name__ == "__main__":
    sys.exit(main())
