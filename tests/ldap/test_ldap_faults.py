"""Faults a healthy slapd does not make, injected by a real proxy in front of it.

``servers.ldap_fault_proxy.LdapFaultProxy`` relays LDAP between the connector and the session's
slapd and, for the next K requests of a kind (add, modify, modDN, delete), answers busy (51),
unavailable (52), timeLimitExceeded (3) or a permanent code itself, holds the server's answer past
the connector's timeout, or drops the connection before or after the server applied the request.
Faults are counted requests, not timers, so the tests do not depend on the machine's speed; the
one timeout is the connector's own (1 s, against an answer held for a minute).

Through the connector: each kind of write answered busy/unavailable/timeLimitExceeded is a
retryable error carrying the server's message, and the same operation sent again works; an add
whose answer is lost (held, dropped) is retried on a fresh connection and found existing, which
the engine adopts; a permanent code fails that object only. Through ``provision run``
(manifests/hr-to-ldap.yaml): runs under busy and unavailable answers finish with the directory an
undisturbed run gives; a timed-out add is adopted, not duplicated; the directory going away
mid-export fails the run with only the in-flight objects in doubt, and the next run completes it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import ldap3
import pytest
from servers.ldap_fault_proxy import LdapFaultProxy

from runner import cli, sampledata
from runner.connectors.base import AlreadyExists, PermanentError, RetryableError, Throttled

from .helpers import REPO, admin, connector, dump, new_base, op

PEOPLE, GROUPS = 24, 4
BASE = "dc=example,dc=org"


@pytest.fixture
def proxy(slapd) -> Iterator[LdapFaultProxy]:
    server = LdapFaultProxy(("127.0.0.1", slapd.port))
    yield server
    server.stop()


def entries(server, base: str, what: str = "(objectClass=inetOrgPerson)") -> list[str]:
    conn = admin(server)
    conn.search(base, what, ldap3.SUBTREE, attributes=["1.1"])
    found = sorted(e["dn"].lower() for e in conn.response if e.get("type") == "searchResEntry")
    conn.unbind()
    return found


# ---- through the connector ------------------------------------------------------------------------


def person(uid: str, **more: Any) -> dict[str, Any]:
    return {"cn": f"Person {uid}", "sn": uid, **more}


@pytest.mark.parametrize("code, error", [(51, Throttled), (52, RetryableError), (3, RetryableError)])
def test_busy_unavailable_and_time_limit_on_every_kind_of_write_are_retryable(directory, proxy, tmp_path,
                                                                              code, error):
    dir = connector(directory, tmp_path, url=proxy.url)
    dir.open()
    try:
        dn = f"uid=p{code},{BASE}"
        message = f"injected {code} (test)"
        proxy.inject("add", code=code, message=message)
        [r] = dir.apply([op("add", name=dn, attributes=person(f"p{code}"))])
        assert not r.ok and type(r.error) is error and message in str(r.error), r.error
        [added] = dir.apply([op("add", name=dn, attributes=person(f"p{code}"))])
        assert added.ok, added.error
        anchor = added.anchor
        steps = [("modify", op("update", anchor=anchor, name=dn, attributes={"title": "Chief"})),
                 ("modDN", op("rename", anchor=anchor, name=f"uid=q{code},{BASE}", old_name=dn)),
                 ("delete", op("delete", anchor=anchor, name=f"uid=q{code},{BASE}"))]
        for kind, operation in steps:
            proxy.inject(kind, code=code, message=message)
            [r] = dir.apply([operation])
            assert not r.ok and type(r.error) is error and message in str(r.error), (kind, r.error)
            [r] = dir.apply([operation])
            assert r.ok, (kind, r.error)
        assert proxy.pending() == 0
        assert [a for a in proxy.actions() if a != "forwarded"] == [f"answer {code}"] * 4
        assert entries(directory, BASE) == []
    finally:
        dir.close()


def test_busy_or_unavailable_while_making_a_missing_parent_is_retryable_not_a_missing_parent(directory, proxy,
                                                                                               tmp_path):
    dir = connector(directory, tmp_path, url=proxy.url)
    dir.open()
    try:
        dn = f"uid=deep,ou=sales,ou=people,{BASE}"
        proxy.inject("add", code=51, dn="ou=people,", message="try later")
        [r] = dir.apply([op("add", name=dn, attributes=person("deep"))])
        assert not r.ok and isinstance(r.error, Throttled) and "try later" in str(r.error), r.error
        [added] = dir.apply([op("add", name=dn, attributes=person("deep"))])
        assert added.ok, added.error
        moved = f"uid=deep,ou=support,ou=people,{BASE}"  # a move below a container to make
        rename = op("rename", anchor=added.anchor, name=moved, old_name=dn)
        proxy.inject("add", code=52, dn="ou=support,", message="not now")
        [r] = dir.apply([rename])
        assert not r.ok and type(r.error) is RetryableError and "not now" in str(r.error), r.error
        [r] = dir.apply([rename])
        assert r.ok, r.error
        assert entries(directory, BASE) == [moved]
    finally:
        dir.close()


def test_an_add_answered_too_late_is_retried_on_a_fresh_connection_and_adopted(directory, proxy, tmp_path):
    dir = connector(directory, tmp_path, url=proxy.url, timeout=1)
    dir.open()
    try:
        dn = f"uid=slow,{BASE}"
        proxy.inject("add", "delay", seconds=60)  # the server applies it; its answer waits here
        [r] = dir.apply([op("add", name=dn, attributes=person("slow"))])
        assert not r.ok and type(r.error) is RetryableError and "broke" in str(r.error), r.error
        assert entries(directory, BASE) == [dn], "the server applied the add whose answer was lost"
        [again] = dir.apply([op("add", name=dn, attributes=person("slow"))])
        assert not again.ok and isinstance(again.error, AlreadyExists), again.error  # the engine adopts it
        found = dir.get("inetOrgPerson", name=dn)
        assert found is not None and found.attributes["sn"] == "slow"
        adds = [s for s in proxy.seen if s.kind == "add"]
        assert [s.action for s in adds] == ["delay", "forwarded"]
        assert adds[0].connection != adds[1].connection, "the timed-out connection was not used again"
        assert entries(directory, BASE) == [dn]
    finally:
        dir.close()


@pytest.mark.parametrize("applied", [False, True])
def test_a_connection_dropped_during_an_add_is_retried(directory, proxy, tmp_path, applied: bool):
    dir = connector(directory, tmp_path, url=proxy.url)
    dir.open()
    try:
        dn = f"uid=dropped,{BASE}"
        proxy.inject("add", "drop", applied=applied)
        [r] = dir.apply([op("add", name=dn, attributes=person("dropped"))])
        assert not r.ok and type(r.error) is RetryableError, r.error
        assert entries(directory, BASE) == ([dn] if applied else [])
        [again] = dir.apply([op("add", name=dn, attributes=person("dropped"))])
        assert again.ok if not applied else isinstance(again.error, AlreadyExists), again.error
        assert entries(directory, BASE) == [dn]
    finally:
        dir.close()


def test_a_permanent_code_fails_only_that_object_with_the_servers_message(directory, proxy, tmp_path):
    dir = connector(directory, tmp_path, url=proxy.url)
    dir.open()
    try:
        proxy.inject("add", code=19, dn="uid=b,", message="mail: value is not unique")
        results = dir.apply([op("add", i, name=f"uid={u},{BASE}", attributes=person(u)) for i, u in
                             enumerate("abc")])
        [a, b, c] = results
        assert a.ok and c.ok, (a.error, c.error)
        assert isinstance(b.error, PermanentError) and "constraintViolation (19): mail: value is not unique" \
            in str(b.error), b.error
        proxy.inject("modify", code=65, dn="uid=c,", message="attribute 'title' not allowed")
        results = dir.apply([op("update", i, anchor=r.anchor, name=f"uid={u},{BASE}", attributes={"title": "T"})
                             for i, (u, r) in enumerate(zip("ac", (a, c), strict=True))])
        [ua, uc] = results
        assert ua.ok and isinstance(uc.error, PermanentError) and "objectClassViolation (65): attribute " \
            "'title' not allowed" in str(uc.error), (ua.error, uc.error)
        assert entries(directory, BASE) == [f"uid=a,{BASE}", f"uid=c,{BASE}"]
    finally:
        dir.close()


# ---- through provision run ----------------------------------------------------------------------------


def write_manifest(folder: Path, **directory: Any) -> Path:
    """manifests/hr-to-ldap.yaml, with extra keys in the directory connector's block."""
    text = (REPO / "manifests" / "hr-to-ldap.yaml").read_text().replace("../mappings/", f"{REPO}/mappings/")
    extra = "".join(f"\n    {k}: {json.dumps(v)}" for k, v in directory.items())
    path = folder / "hr-to-ldap.yaml"
    path.write_text(text.replace("    concurrency: 4", "    concurrency: 4" + extra, 1))
    return path


def provision_run(manifest: Path, url: str, server, data: Path, base: str, state: Path) -> tuple[int, dict, str]:
    """``provision run`` in this process: (exit code, JSON summary, stderr); its provisioning log
    goes to ``<state>.log.jsonl``."""
    env = {"PROVISION_DATA": str(data), "LDAP_URL": url, "LDAP_BIND_DN": server.root_dn,
           "LDAP_PASSWORD": server.root_password, "LDAP_BASE_DN": base, "PROVISION_STATE": str(state)}
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["run", str(manifest), "--output", "json", "--log-file", str(state) + ".log.jsonl"])
    return code, json.loads(out.getvalue() or "{}"), err.getvalue()


def failed(summary: dict) -> int:
    return sum(c["failed"] for c in summary["object_types"].values())


def changed(summary: dict) -> int:
    return sum(c["added"] + c["updated"] + c["renamed"] + c["deleted"] + c["disabled"]
               for c in summary["object_types"].values())


@pytest.fixture(scope="module")
def world(slapd, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """HR data before and after a change, and the directory undisturbed runs make of them."""
    tmp = tmp_path_factory.mktemp("ldapfaults")
    before, after = tmp / "before", tmp / "after"
    sampledata.make(before, PEOPLE, GROUPS, 7)
    shutil.copytree(before, after)
    sampledata.mutate(after, 3, 40.0)
    manifest = write_manifest(tmp)
    base = new_base(slapd, "faults-clean")
    code, first, err = provision_run(manifest, slapd.url, slapd, before, base, tmp / "clean.db")
    assert code == 0 and failed(first) == 0, err + json.dumps(first)
    clean_before = dump(slapd, base)
    code, second, err = provision_run(manifest, slapd.url, slapd, after, base, tmp / "clean.db")
    assert code == 0 and failed(second) == 0, err + json.dumps(second)
    counts = second["object_types"]["user"]
    assert counts["renamed"] and counts["deleted"] and counts["updated"], counts
    return {"tmp": tmp, "manifest": manifest, "before": before, "after": after, "clean_before": clean_before,
            "clean_after": dump(slapd, base)}


def test_runs_under_busy_and_unavailable_answers_finish_with_every_entry_correct(slapd, proxy, world):
    base, state = new_base(slapd, "faults-busy"), world["tmp"] / "busy.db"
    for code in (51, 52):
        proxy.inject("add", code=code, count=3)  # the first adds: containers and people
        proxy.inject("add", code=code, count=2, dn="uid=", after=4)
    code, summary, err = provision_run(world["manifest"], proxy.url, slapd, world["before"], base, state)
    assert code == 0 and failed(summary) == 0, err + json.dumps(summary)
    assert proxy.pending() == 0 and proxy.actions("add").count("answer 51") == 5
    # the groups named the person (by DN) while it did not exist yet: slapo-memberof computes
    # memberOf only when a group is written, so the late entry has none; everything else is the same
    def without_member_of(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {dn: {k: v for k, v in a.items() if k != "memberOf"} for dn, a in entries.items()}

    assert without_member_of(dump(slapd, base)) == without_member_of(world["clean_before"])

    proxy.reset()
    for kind, busy in (("modify", 2), ("modDN", 1), ("delete", 1)):
        proxy.inject(kind, code=51, count=busy)
        proxy.inject(kind, code=52, count=1)
    code, summary, err = provision_run(world["manifest"], proxy.url, slapd, world["after"], base, state)
    assert code == 0 and failed(summary) == 0, err + json.dumps(summary)
    assert proxy.pending() == 0, proxy.faults
    assert dump(slapd, base) == world["clean_after"]
    code, again, err = provision_run(world["manifest"], slapd.url, slapd, world["after"], base, state)
    assert code == 0 and changed(again) == 0, err + json.dumps(again)


def test_a_run_whose_add_answers_are_lost_adopts_the_entries_without_duplicates(slapd, proxy, world):
    """Answers held past the 1 s timeout, and connections dropped before and after the add."""
    (world["tmp"] / "timeout").mkdir(exist_ok=True)
    manifest = write_manifest(world["tmp"] / "timeout", timeout=1)
    base, state = new_base(slapd, "faults-timeout"), world["tmp"] / "timeout.db"
    proxy.inject("add", "delay", count=2, dn="uid=", after=3, seconds=60)
    proxy.inject("add", "drop", dn="uid=", after=2, applied=True)
    proxy.inject("add", "drop", dn="uid=", after=2, applied=False)
    code, summary, err = provision_run(manifest, proxy.url, slapd, world["before"], base, state)
    assert code == 0 and failed(summary) == 0, err + json.dumps(summary)
    assert proxy.pending() == 0
    seen = list(proxy.seen)
    lost = [i for i, s in enumerate(seen) if s.action in ("delay", "drop")]
    assert [seen[i].action for i in lost] == ["delay", "delay", "drop", "drop"]
    for i in lost:  # sent again, on another connection (entryAlreadyExists when it had been applied: adopted)
        again = [s for s in seen[i + 1:] if s.kind == "add" and s.dn == seen[i].dn]
        assert again and all(s.connection != seen[i].connection for s in again), (seen[i], again)
    # the groups named the person (by DN) while it did not exist yet: slapo-memberof computes
    # memberOf only when a group is written, so the late entry has none; everything else is the same
    def without_member_of(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {dn: {k: v for k, v in a.items() if k != "memberOf"} for dn, a in entries.items()}

    assert without_member_of(dump(slapd, base)) == without_member_of(world["clean_before"])
    code, again, err = provision_run(manifest, slapd.url, slapd, world["before"], base, state)
    assert code == 0 and changed(again) == 0, err + json.dumps(again)


def test_the_directory_going_away_mid_export_fails_only_what_was_in_flight_and_the_next_run_completes(
        slapd, proxy, world):
    base, state = new_base(slapd, "faults-down"), world["tmp"] / "down.db"
    proxy.inject("add", "drop", dn="uid=", after=PEOPLE // 3, applied=True, down=True)
    code, summary, err = provision_run(world["manifest"], proxy.url, slapd, world["before"], base, state)
    assert code != 0 and summary.get("status") == "failed", err + json.dumps(summary)
    assert "Traceback" not in err, err
    written = len(entries(slapd, base))
    recorded = summary["object_types"]["user"]["added"]
    people = [dn for dn in world["clean_before"] if dn.startswith("uid=")]
    assert 0 < written < len(people), written
    assert recorded <= written <= recorded + 4, "only the in-flight adds (concurrency 4) are in doubt"
    proxy.restore()
    code, summary, err = provision_run(world["manifest"], proxy.url, slapd, world["before"], base, state)
    assert code == 0 and failed(summary) == 0, err + json.dumps(summary)
    # the groups named the person (by DN) while it did not exist yet: slapo-memberof computes
    # memberOf only when a group is written, so the late entry has none; everything else is the same
    def without_member_of(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {dn: {k: v for k, v in a.items() if k != "memberOf"} for dn, a in entries.items()}

    assert without_member_of(dump(slapd, base)) == without_member_of(world["clean_before"])
    code, again, err = provision_run(world["manifest"], proxy.url, slapd, world["before"], base, state)
    assert code == 0 and changed(again) == 0, err + json.dumps(again)


def test_a_permanent_code_in_a_run_fails_only_that_person_with_the_servers_message(slapd, proxy, world):
    base, state = new_base(slapd, "faults-permanent"), world["tmp"] / "permanent.db"
    proxy.inject("add", code=19, dn="uid=", after=5, message="mail: value is not unique (test)")
    code, summary, err = provision_run(world["manifest"], proxy.url, slapd, world["before"], base, state)
    assert summary["object_types"]["user"]["failed"] == 1, err + json.dumps(summary)
    assert code == 1 and summary["status"] == "partial", err + json.dumps(summary)
    log = [json.loads(line) for line in Path(f"{state}.log.jsonl").read_text().splitlines()]
    [failure] = [e for e in log if e["result"] == "failed"]
    assert "PermanentError" in failure["error"] and \
        "constraintViolation (19): mail: value is not unique (test)" in failure["error"], failure
    [refused] = [s.dn for s in proxy.seen if s.action == "answer 19"]
    people = [dn for dn in world["clean_before"] if dn.startswith("uid=")]
    assert len(entries(slapd, base)) == len(people) - 1
    assert refused.lower() not in entries(slapd, base)


def test_a_person_still_busy_after_the_last_retry_fails_alone_and_the_next_run_sends_it(slapd, proxy, world):
    """Retries are bounded: the engine's three in-run retries, then the object waits for the next run."""
    base, state = new_base(slapd, "faults-bounded"), world["tmp"] / "bounded.db"
    person = next(dn for dn in world["clean_before"] if dn.startswith("uid="))
    rdn = person.split(",")[0] + ","
    proxy.inject("add", code=51, count=4, dn=rdn, message="still busy (test)")
    code, summary, err = provision_run(world["manifest"], proxy.url, slapd, world["before"], base, state)
    assert code == 1 and summary["object_types"]["user"]["failed"] == 1, err + json.dumps(summary)
    assert proxy.pending() == 0 and proxy.actions("add").count("answer 51") == 4
    log = [json.loads(line) for line in Path(f"{state}.log.jsonl").read_text().splitlines()]
    [failure] = [e for e in log if e["result"] == "failed"]
    assert failure["error"].startswith("Throttled: ") and "still busy (test)" in failure["error"], failure
    assert person not in [e.split(f",{base.lower()}")[0] for e in entries(slapd, base)]
    code, summary, err = provision_run(world["manifest"], proxy.url, slapd, world["before"], base, state)
    assert code == 0 and failed(summary) == 0, err + json.dumps(summary)
    # the groups named the person (by DN) while it did not exist yet: slapo-memberof computes
    # memberOf only when a group is written, so the late entry has none; everything else is the same
    def without_member_of(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {dn: {k: v for k, v in a.items() if k != "memberOf"} for dn, a in entries.items()}

    assert without_member_of(dump(slapd, base)) == without_member_of(world["clean_before"])
