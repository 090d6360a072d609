"""Kill tests against a real slapd: a run killed at any LDAP write converges on the next run.

The example manifest (manifests/hr-to-ldap.yaml: people under ou=<department>,ou=people, groups
with member DNs, passwords in the add) provisions hrgen sample data; each scenario gets its own
base DN on the session's slapd. The run is killed with SIGKILL right after the Nth LDAP write
(``tests/faults/killpoint.py`` counts them), at points spread over first contact and over a
change that moves, renames, disables and deletes people and changes memberships. One rerun must
give exactly the directory an uninterrupted run gives (every attribute, members and managers by
DN), nothing failed, no duplicate; a third run changes nothing. Then slapd itself is killed
mid-export: the run fails only what was in flight, and the next run completes it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import ldap3
import pytest

from runner import sampledata

from .helpers import REPO, admin, dump, new_base

KILLPOINT = REPO / "tests" / "faults" / "killpoint.py"
MANIFEST = REPO / "manifests" / "hr-to-ldap.yaml"
PEOPLE, GROUPS = 80, 8
SLAPD_KILLER = """
import os, signal, sys
from runner import cli
from runner.connectors.ldap.write import Writer
point, count = int(sys.argv[1]), [0]
original = Writer.apply
def apply(self, conn, op):
    result = original(self, conn, op)
    count[0] += 1
    if count[0] == point:
        os.kill(int(os.environ["SLAPD_PID"]), signal.SIGKILL)
    return result
Writer.apply = apply
sys.exit(cli.main(sys.argv[2:]))
"""


def variables(server, data: Path, base: str, state: Path) -> dict[str, str]:
    return {"PROVISION_DATA": str(data), "LDAP_URL": server.url, "LDAP_BIND_DN": server.root_dn,
            "LDAP_PASSWORD": server.root_password, "LDAP_BASE_DN": base, "PROVISION_STATE": str(state)}


def env_for(server, data: Path, base: str, state: Path) -> dict[str, str]:
    return os.environ | variables(server, data, base, state)


def run(server, data: Path, base: str, state: Path, point: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(KILLPOINT), str(point), "KILL", "run", str(MANIFEST), "--output", "json"],
                          capture_output=True, text=True, env=env_for(server, data, base, state), timeout=120, cwd=REPO)


def writes_of(result: subprocess.CompletedProcess[str]) -> int:
    return int(re.search(r"commits: (\d+)", result.stderr).group(1))  # type: ignore[union-attr]


def spread(total: int, count: int) -> list[int]:
    return sorted({1 + round(i * (total - 1) / (count - 1)) for i in range(count)})


@pytest.fixture(scope="module")
def world(slapd, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("ldapcrash")
    before, after = tmp / "before", tmp / "after"
    sampledata.make(before, PEOPLE, GROUPS, 4)
    shutil.copytree(before, after)
    changes = sampledata.mutate(after, 5, 20.0)
    base = new_base(slapd, "clean")
    first = run(slapd, before, base, tmp / "clean.state")
    assert first.returncode == 0, first.stderr + first.stdout
    clean_before = dump(slapd, base)
    second = run(slapd, after, base, tmp / "clean.state")
    assert second.returncode == 0, second.stderr + second.stdout
    counts = json.loads(second.stdout)["object_types"]["user"]
    assert counts["renamed"] > 0 and counts["disabled"] > 0 and counts["deleted"] > 0, counts
    return {"tmp": tmp, "before": before, "after": after, "changes": changes, "clean_before": clean_before,
            "clean_after": dump(slapd, base), "initial": writes_of(first), "delta": writes_of(second)}


def converges(slapd, provision, monkeypatch, data: Path, base: str, state: Path, expected: dict) -> None:
    """The run after the killed one (in this process: only a run to be killed needs its own)."""
    for name, value in variables(slapd, data, base, state).items():
        monkeypatch.setenv(name, value)
    rerun = provision("run", MANIFEST, "--output", "json")
    assert rerun.code == 0, rerun.err + rerun.out
    summary = rerun.json()["object_types"]
    assert all(c["failed"] == 0 for c in summary.values()), summary
    assert dump(slapd, base) == expected
    again = provision("run", MANIFEST, "--output", "json").json()["object_types"]
    assert all(c["added"] + c["updated"] + c["renamed"] + c["deleted"] + c["disabled"] == 0
               for c in again.values()), again


def test_the_example_moves_disables_deletes_and_its_members_follow(slapd, world):
    """What a person sees in the directory after the HR change: DNs moved, members by new DN."""
    after = world["clean_after"]
    people = {dn: a for dn, a in after.items() if "inetOrgPerson" in a["objectClass"]}
    for employee in world["changes"]["removed"]:
        assert not any(a.get("employeeNumber") == [employee] for a in people.values()), employee
    for employee in world["changes"]["terminated"]:
        [entry] = [a for a in people.values() if a.get("employeeNumber") == [employee]]
        assert entry["employeeType"] == ["disabled"]
    for dn, entry in people.items():  # every person sits in the OU of their department
        assert dn.split(",")[1] == "ou=" + entry["ou"][0].casefold(), dn
    groups = {dn: a for dn, a in after.items() if "groupOfNames" in a["objectClass"]}
    for dn, group in groups.items():
        for member in group["member"]:
            assert member in people or member == "cn=admin,dc=example,dc=org", f"{dn}: dangling member {member}"
    assert world["initial"] >= 80 and world["delta"] >= 15


@pytest.mark.parametrize("nth", range(3))
def test_killed_during_first_contact_converges(slapd, world, nth: int, provision, monkeypatch):
    base = new_base(slapd, f"first{nth}")
    state = world["tmp"] / f"first{nth}.state"
    killed = run(slapd, world["before"], base, state, spread(world["initial"], 3)[nth])
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    converges(slapd, provision, monkeypatch, world["before"], base, state, world["clean_before"])


@pytest.mark.parametrize("nth", range(3))
def test_killed_during_moves_disables_deletes_and_membership_changes_converges(slapd, world, nth: int, provision,
                                                                               monkeypatch):
    base = new_base(slapd, f"delta{nth}")
    state = world["tmp"] / f"delta{nth}.state"
    for name, value in variables(slapd, world["before"], base, state).items():
        monkeypatch.setenv(name, value)
    assert provision("run", MANIFEST).code == 0  # the first contact, in this process
    killed = run(slapd, world["after"], base, state, spread(world["delta"], 3)[nth])
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    converges(slapd, provision, monkeypatch, world["after"], base, state, world["clean_after"])


def test_slapd_killed_mid_export_fails_only_what_was_in_flight_and_the_next_run_completes(slapd, world, provision,
                                                                                           monkeypatch):
    base = new_base(slapd, "serverkill")
    state = world["tmp"] / "serverkill.state"
    script = world["tmp"] / "slapd_killer.py"
    script.write_text(SLAPD_KILLER)
    env = env_for(slapd, world["before"], base, state) | {"SLAPD_PID": str(slapd.pid)}
    broken = subprocess.run([sys.executable, str(script), str(world["initial"] // 2), "run", str(MANIFEST),
                             "--output", "json"], capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    slapd.run()  # back on the same port, with the same data
    assert broken.returncode == 5, broken.stderr + broken.stdout  # the directory went away: exit 5, not 1
    assert "Traceback" not in broken.stderr, broken.stderr
    summary = json.loads(broken.stdout)
    assert summary["status"] == "failed", summary
    assert any("stopped" in json.dumps(c) or c.get("error") for c in summary["object_types"].values()), summary
    conn = admin(slapd)
    conn.search(base, "(objectClass=inetOrgPerson)", ldap3.SUBTREE, attributes=["1.1"])
    written = len(conn.response)
    conn.unbind()
    assert 0 < written < PEOPLE, "the run stopped part-way"
    converges(slapd, provision, monkeypatch, world["before"], base, state, world["clean_before"])
