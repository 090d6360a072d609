"""Benchmark: 2,000 users through `provision run` against raw zeep createUser calls of the same users.

    python bench/soap_export.py [--users 2000] [--concurrency 4] [--repeat 3] [--json OUT]

Both sides are whole runs, each a process of its own, against the same real SOAP service
(tests/servers/soapservice.py, spyne, emptied before every run), at the same concurrency:

* provision: ``provision run manifests/hr-to-soap.yaml --object-type user`` on HR data of that many
  people, from a new state store: the WSDL load, the CSV import, scope, mapping, the first-contact
  read of the service (listUsers), the createUser calls and the state kept;
* raw: a process that loads the WSDL into one zeep client (a ``requests.Session`` with Basic auth,
  zeep's own Transport on it) and calls ``createUser`` for the very users that run left in the
  service (userName, givenName, familyName, email, active) from a pool of that many threads,
  checking each answer. The client is shared by the threads, as provision's connector shares its
  own: a zeep call builds its envelope and parses its answer in locals, the only state it shares is
  the session (urllib3's pool, thread-safe); each answer's userName is checked against the request
  and the service's users against the list afterwards.

Runs are interleaved so that drift hits both sides alike; the medians' ratio is printed with the
raw numbers, and ``--json`` writes them. The budget is provision <= 1.25x raw. The service answers
HTTP/1.0 (a connection per call) and spyne's lxml validation and serialisation run in its one
process, so the server's own time is a large part of both sides: this measures what provision adds
on top of a real SOAP service.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from bench.wholeruns import example, report, timed  # noqa: E402
from tests.servers.soapservice import PASSWORD, USER, SoapService  # noqa: E402

BUDGET = 1.25
FIELDS = ("userName", "givenName", "familyName", "email", "active")  # what createUser takes


def raw_creates(wsdl: str, bodies_file: str, threads: int) -> int:
    """The raw side, run in a process of its own: createUser for every user, ``threads`` at a time."""
    import zeep
    from zeep.transports import Transport

    users = json.loads(Path(bodies_file).read_text())
    session = requests.Session()
    session.auth = (USER, PASSWORD)
    client = zeep.Client(wsdl, transport=Transport(session=session, timeout=30, operation_timeout=30))
    service = client.service  # made once here: Client.service builds and caches it unlocked

    def create(user: dict) -> None:
        answer = service.createUser(user=user)
        assert answer is not None and answer.userName == user["userName"] and answer.id, answer

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, users))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the numbers here")
    parser.add_argument("--raw", nargs=2, metavar=("WSDL", "BODIES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw:
        return raw_creates(args.raw[0], args.raw[1], args.concurrency)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        manifest, data = example(tmp, "hr-to-soap", ("person-to-soap-user.yaml", "group-to-soap-group.yaml"),
                                 args.users, args.concurrency)
        service = SoapService.start(tmp / "server")
        try:
            env = os.environ | {"SOAP_WSDL": service.wsdl, "SOAP_USER": USER, "SOAP_PASSWORD": PASSWORD,
                                "PROVISION_DATA": str(data)}
            provision = [sys.executable, "-m", "runner", "run", str(manifest), "--object-type", "user"]
            raw = [sys.executable, __file__, "--concurrency", str(args.concurrency), "--raw", service.wsdl,
                   str(tmp / "bodies.json")]
            ours, raws = [], []
            for n in range(args.repeat):  # interleaved, so drift hits both sides alike
                service.reset()
                state = tmp / f"state-{n}.db"
                ours.append(timed(provision, env | {"PROVISION_STATE": str(state)}))
                bodies = [{k: u.get(k) for k in FIELDS} for u in service.dump()["users"]]
                assert bodies, "the provision run created no user"
                (tmp / "bodies.json").write_text(json.dumps(bodies))
                service.reset()
                raws.append(timed(raw, env))
                made = [{k: u.get(k) for k in FIELDS} for u in service.dump()["users"]]
                assert sorted(made, key=lambda u: u["userName"]) == sorted(bodies, key=lambda u: u["userName"]), \
                    "the raw run left other users than provision's"
        finally:
            service.stop()
    return report(f"{len(bodies)} users created ({args.users} HR people), {args.concurrency} threads",
                  "raw zeep createUser", len(bodies), raws, ours, BUDGET, args.json, users=len(bodies),
                  concurrency=args.concurrency)


if __name__ == "__main__":
    sys.exit(main())
