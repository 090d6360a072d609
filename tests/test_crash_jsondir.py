"""Kill tests against the jsondir plugin: renames, replaces, disables and memberships by name.

The same proof as tests/test_crash.py on another connector: the HR sample data into a jsondir
tree whose names derive from mapped values (a department move renames the entry), one employee's
anchor changing under the same name (a replace: DeleteAddAsReplace), leavers disabled, groups
with members. The run is killed with SIGKILL right after the Nth object file written, at points
across first contact and across the change; one rerun must give exactly the tree an
uninterrupted run gives, compared by name (references by the referenced object's name).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from test_crash import commits_of, run, spread

from runner import sampledata

MANIFEST = """\
version: 1
name: dircrash
state: "sqlite:///${env:PROVISION_TARGET}.state"
connectors:
  hr:
    type: csv
    path: "${env:PROVISION_DATA}"
    objects: {groups: {multi_valued: {members: ";"}}}
  dir:
    type: jsondir
    root: "${env:PROVISION_TARGET}"
    objects: [orgunits, users, groups]
    partitions: [corp]
    concurrency: 2
    fsync: false
object_types:
  - name: orgunit
    source: {connector: hr, object: departments, anchor: name}
    target: {connector: dir, object: orgunits, name: "ou={ou}", partition: corp}
    mapping:
      - {target: ou, source: name}
  - name: user
    source: {connector: hr, object: people, anchor: employee_id}
    target: {connector: dir, object: users, name: "uid={uid},ou={department}", partition: corp, disable: {active: false}}
    scope: {any: [{attribute: status, op: in, value: [active, leave]}]}
    when_out_of_scope: disable
    when_deleted: delete
    safety: {max_deletes: 100%}
    mapping:
      - {target: uid, expression: "lower(split(email, '@')[0])"}
      - {target: cn, expression: "join(' ', [first_name, last_name])"}
      - {target: mail, source: email}
      - {target: title, source: title}
      - {target: department, source: department}
      - {target: manager, source: manager_id, reference: user}
      - {target: active, constant: true}
  - name: group
    source: {connector: hr, object: groups, anchor: group_id}
    target: {connector: dir, object: groups, name: "cn={cn}", partition: corp}
    mapping:
      - {target: cn, source: name}
      - {target: member, source: members, reference: user, multi_valued: true}
"""


def tree(root: Path) -> dict[str, dict]:
    """name -> attributes, references shown as the name of the object they point at."""
    docs = [json.loads(f.read_text()) for f in root.rglob("*.json")]
    names = {d["anchor"]: d["name"] for d in docs}
    out: dict[str, dict] = {}
    for d in docs:
        attributes = dict(d["attributes"])
        if attributes.get("manager"):
            attributes["manager"] = names.get(attributes["manager"], "?dangling")
        if "member" in attributes:
            attributes["member"] = sorted(names.get(m, "?dangling") for m in attributes["member"])
        key = f"{d['object']}:{d['name']}"
        assert key not in out, f"two objects named {key}"
        out[key] = attributes
    return out


def rehire_under_a_new_id(folder: Path) -> None:
    """One person's employee id changes, everything else stays: same name, new anchor (a replace)."""
    path = folder / "people.csv"
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    victim = next(r for r in rows if r["status"] == "active" and not any(o["manager_id"] == r["employee_id"]
                                                                        for o in rows))
    old = victim["employee_id"]
    victim["employee_id"] = "R" + old[1:]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    groups = (folder / "groups.csv").read_text(encoding="utf-8").replace(old, victim["employee_id"])
    (folder / "groups.csv").write_text(groups, encoding="utf-8")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("dircrash")
    manifest = tmp / "dircrash.yaml"
    manifest.write_text(MANIFEST)
    before, after = tmp / "before", tmp / "after"
    sampledata.make(before, 120, 12, 8)
    (before / "departments.csv").write_text("name\n" + "".join(f"{d}\n" for d in sampledata.DEPARTMENTS))
    shutil.copytree(before, after)
    sampledata.mutate(after, 3, 15.0)
    rehire_under_a_new_id(after)
    clean = tmp / "clean"
    first = run(manifest, before, clean)
    assert first.returncode == 0, first.stderr
    tree_before = tree(clean)
    shutil.copytree(clean, tmp / "clean-before")
    shutil.copy(str(clean) + ".state", tmp / "clean-before.state")
    second = run(manifest, after, clean)
    assert second.returncode == 0, second.stderr
    counts = json.loads(second.stdout)["object_types"]["user"]
    assert counts["renamed"] > 0 and counts["added"] > 0 and counts["disabled"] > 0, counts
    return {"tmp": tmp, "manifest": manifest, "before": before, "after": after, "tree_before": tree_before,
            "tree_after": tree(clean), "initial": commits_of(first), "delta": commits_of(second)}


def converges(world: dict, target: Path, data: Path, expected: dict, provision,
              monkeypatch: pytest.MonkeyPatch) -> None:
    """The run after the killed one (in this process: only a run to be killed needs its own)."""
    monkeypatch.setenv("PROVISION_DATA", str(data))
    monkeypatch.setenv("PROVISION_TARGET", str(target))
    rerun = provision("run", world["manifest"], "--output", "json")
    assert rerun.code == 0, rerun.err + rerun.out
    summary = rerun.json()["object_types"]
    assert all(c["failed"] == 0 for c in summary.values()), rerun.out
    assert any(c.get("recovered") for c in summary.values()), "the kill left exports in doubt; the rerun settles them"
    assert tree(target) == expected
    again = provision("run", world["manifest"], "--output", "json").json()["object_types"]
    assert all(c["added"] + c["updated"] + c["renamed"] + c["deleted"] + c["disabled"] == 0
               for c in again.values()), again


@pytest.mark.parametrize("nth", range(5))
def test_killed_during_first_contact_converges(world, nth: int, provision, monkeypatch):
    target = world["tmp"] / f"initial-{nth}"
    killed = run(world["manifest"], world["before"], target, spread(world["initial"], 5)[nth])
    assert killed.returncode == -9, killed.stderr
    converges(world, target, world["before"], world["tree_before"], provision, monkeypatch)


@pytest.mark.parametrize("nth", range(6))
def test_killed_during_renames_replaces_and_membership_changes_converges(world, nth: int, provision,
                                                                         monkeypatch):
    target = world["tmp"] / f"delta-{nth}"
    shutil.copytree(world["tmp"] / "clean-before", target)
    shutil.copy(world["tmp"] / "clean-before.state", str(target) + ".state")
    killed = run(world["manifest"], world["after"], target, spread(world["delta"], 6)[nth])
    assert killed.returncode == -9, killed.stderr
    converges(world, target, world["after"], world["tree_after"], provision, monkeypatch)
