"""The raw clients the whole-run benchmarks compare ``provision run`` with, each a process of its own.

    python bench/raw_clients.py http-post URL BODIES [--threads 4] [--content-type TYPE]
    python bench/raw_clients.py ldap-add URL BIND_DN ENTRIES [--threads 4]
    python bench/raw_clients.py soap-create WSDL USERS [--threads 4]

Each sends the very records a provision run left in its target (``BODIES``, a JSON list), from a
pool of ``--threads`` threads, and checks every answer. The secret comes from ``RAW_SECRET`` in the
environment (a bearer token, the bind password, the Basic password with ``RAW_USER``), never from
the command line, which a failed run prints.

This module imports nothing of provision and its client library only where it is used, so the raw
process starts as fast as a hand-written client would: a whole-run ratio compares what provision
adds, not what this file happens to import.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
RAW_CLIENTS = str(Path(__file__).resolve())  # this file, which the whole-run benches run as the raw side


def in_threads(shares: Sequence[T], work: Callable[[T], None]) -> float:
    """``work(share)`` for each share in a thread of its own, started together behind a barrier;
    the seconds from the barrier to the last thread's end (the first error is raised afterwards)."""
    import time

    barrier = threading.Barrier(len(shares) + 1)
    errors: list[BaseException] = []

    def run(share: T) -> None:
        barrier.wait()
        try:
            work(share)
        except BaseException as exc:  # reported after the clock stops
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in shares]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def dealt(items: Sequence[T], threads: int) -> list[list[T]]:
    """``items`` dealt into ``threads`` shares, as the engine deals a round of operations."""
    return [list(items[k::threads]) for k in range(threads)]


def post_all(url: str, bodies: Sequence[dict[str, Any]], threads: int, headers: dict[str, str]) -> None:
    """POST every body to ``url`` with one ``requests.Session`` per thread; each must answer 201."""
    import requests

    def post(share: list[dict[str, Any]]) -> None:
        with requests.Session() as session:
            for body in share:
                answer = session.post(url, json=body, headers=headers, timeout=30)
                assert answer.status_code == 201, answer.text

    in_threads(dealt(bodies, threads), post)


def ldap_add_all(url: str, bind_dn: str, password: str, entries: Sequence[tuple[str, dict[str, Any]]],
                 threads: int) -> float:
    """Add ``(dn, attributes)`` entries (objectClass among the attributes) with one ldap3 connection
    per thread (SYNC strategy, no schema); the seconds the adds took."""
    import ldap3

    connections = [ldap3.Connection(ldap3.Server(url, get_info=ldap3.NONE), bind_dn, password, auto_bind=True)
                   for _ in range(threads)]

    def add(k: int) -> None:
        conn = connections[k]
        for dn, attributes in entries[k::threads]:
            if not conn.add(dn, attributes=attributes):
                raise RuntimeError(f"{dn}: {conn.result}")

    try:
        return in_threads(range(threads), add)
    finally:
        for conn in connections:
            conn.unbind()


def ldap_load(url: str, bind_dn: str, entries: list[dict[str, Any]], threads: int) -> None:
    """Containers first, one at a time (an entry must have its parent), then the leaves in threads."""
    parents = {e["dn"].split(",", 1)[1].lower() for e in entries}
    containers = [(e["dn"], e["attributes"]) for e in entries if e["dn"].lower() in parents]
    leaves = [(e["dn"], e["attributes"]) for e in entries if e["dn"].lower() not in parents]
    password = os.environ["RAW_SECRET"]
    ldap_add_all(url, bind_dn, password, containers, 1)
    ldap_add_all(url, bind_dn, password, leaves, threads)


def soap_create_all(wsdl: str, users: Sequence[dict[str, Any]], threads: int) -> None:
    """createUser for every user through one zeep client shared by the threads, as provision's
    connector shares its own: a call builds its envelope and parses its answer in locals, the only
    shared state is the session (urllib3's pool, thread-safe). Each answer must name its user."""
    import requests
    import zeep
    from zeep.transports import Transport

    session = requests.Session()
    session.auth = (os.environ["RAW_USER"], os.environ["RAW_SECRET"])
    client = zeep.Client(wsdl, transport=Transport(session=session, timeout=30, operation_timeout=30))
    service = client.service  # made once here: Client.service builds and caches it unlocked

    def create(share: list[dict[str, Any]]) -> None:
        for user in share:
            answer = service.createUser(user=user)
            assert answer is not None and answer.userName == user["userName"] and answer.id, answer

    in_threads(dealt(users, threads), create)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    kinds = parser.add_subparsers(dest="kind", required=True)
    http = kinds.add_parser("http-post")
    http.add_argument("url")
    http.add_argument("bodies", type=Path)
    http.add_argument("--content-type", default="application/json")
    ldap = kinds.add_parser("ldap-add")
    ldap.add_argument("url")
    ldap.add_argument("bind_dn")
    ldap.add_argument("bodies", type=Path)
    soap = kinds.add_parser("soap-create")
    soap.add_argument("url")
    soap.add_argument("bodies", type=Path)
    args = parser.parse_args(argv)
    bodies = json.loads(args.bodies.read_text())
    if args.kind == "http-post":
        post_all(args.url, bodies, args.threads, {"Authorization": f"Bearer {os.environ['RAW_SECRET']}",
                                                  "Content-Type": args.content_type})
    elif args.kind == "ldap-add":
        ldap_load(args.url, args.bind_dn, bodies, args.threads)
    else:
        soap_create_all(args.url, bodies, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
