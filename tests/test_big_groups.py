"""A big group changes by difference: one member more is one row, not a rewritten list.

Measured before spine v2: a one-member change to a 50,000-member group wrote a 521 KB pending
export and a 1 MB log entry. Here a 5,000-member group gains one member and loses one; the
references compute records for it change by those two rows too (SQLite's rowids show a row
deleted and written again).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import QUICKSTART, group, person, read_app, write_hr

MEMBERS = 5000


def test_one_member_more_in_a_big_group_is_a_small_change_everywhere(provision, tmp_path: Path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("PROVISION_DATA", str(data))
    monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
    people = [person(f"E{i:05d}", "P", f"N{i}") for i in range(MEMBERS + 1)]
    everyone = [p["employee_id"] for p in people[:MEMBERS]]
    write_hr(data, people, [group("G1", "Everyone", everyone)])
    assert provision("run", QUICKSTART).code == 0
    state = sqlite3.connect(str(tmp_path / "app.db") + ".state")
    rows_before = state.execute("SELECT count(*) FROM target_values").fetchone()[0]
    assert rows_before == MEMBERS
    group_data = state.execute("SELECT data FROM target_objects WHERE data LIKE '%Everyone%'").fetchone()[0]
    assert len(group_data) < 200, "the member list is kept as rows, not inside the object"
    refs = "SELECT ref_anchor, rowid FROM refs WHERE anchor = 'G1'"  # the references compute records
    refs_before = dict(state.execute(refs).fetchall())
    assert sorted(refs_before) == everyone

    write_hr(data, people, [group("G1", "Everyone", everyone[1:] + [people[MEMBERS]["employee_id"]])])
    plan = provision("plan", QUICKSTART, "--output", "json")
    # the plan is read from the pending export compute stored (on the plan's copy of the state)
    change = next(c for c in plan.json()["changes"] if c["object_type"] == "group")
    assert change["changes"]["members"] == {"add": [people[MEMBERS]["employee_id"]], "remove": ["E00000"],
                                            "rule": change["changes"]["members"]["rule"]}
    assert len(json.dumps(change)) < 400, change
    assert not state.execute("SELECT count(*) FROM pending_exports").fetchone()[0], "the plan staged nothing"

    log = tmp_path / "log.jsonl"
    assert provision("run", QUICKSTART, "--log-file", log).code == 0
    entry = next(json.loads(line) for line in log.read_text().splitlines() if '"object_type": "group"' in line
                 or '"object_type":"group"' in line)
    assert len(json.dumps(entry)) < 600, entry
    assert state.execute("SELECT count(*) FROM target_values").fetchone()[0] == MEMBERS
    refs_after = dict(state.execute(refs).fetchall())
    assert sorted(refs_after) == everyone[1:] + [people[MEMBERS]["employee_id"]]
    rewritten = [a for a in everyone[1:] if refs_after[a] != refs_before[a]]
    assert not rewritten, f"{len(rewritten)} unchanged references were deleted and written again"
    app = read_app(tmp_path / "app.db")
    assert len(app["groups"][0]["members"]) == MEMBERS and "p.n0" not in app["groups"][0]["members"]
    again = provision("run", QUICKSTART, "--output", "json").json()["object_types"]["group"]
    assert again["updated"] == 0 and again["unchanged"] == 1

    # most members leave at once (more than a page's worth of references: rewritten in bulk)
    write_hr(data, people, [group("G1", "Everyone", everyone[:100])])
    assert provision("run", QUICKSTART).code == 0
    assert sorted(dict(state.execute(refs).fetchall())) == everyone[:100]
    assert len(read_app(tmp_path / "app.db")["groups"][0]["members"]) == 100


CHUNKED = """
version: 1
name: chunks
connectors:
  hr: {{type: csv, path: "{tmp}/hr", objects: {{groups: {{multi_valued: {{members: ";"}}}}}}}}
  dir:
    type: jsondir
    root: "{tmp}/dir"
    objects: [users, groups]
    partitions: [corp]
    max_values_per_operation: 10
object_types:
  - name: user
    source: {{connector: hr, object: people, anchor: employee_id}}
    target: {{connector: dir, object: users, name: "uid={{uid}}", partition: corp}}
    mapping:
      - {{target: uid, expression: "lower(employee_id)"}}
  - name: group
    source: {{connector: hr, object: groups, anchor: group_id}}
    target: {{connector: dir, object: groups, name: "cn={{cn}}", partition: corp}}
    mapping:
      - {{target: cn, source: name}}
      - {{target: member, source: members, reference: user, multi_valued: true}}
"""


def test_a_target_that_takes_few_values_at_once_gets_membership_changes_in_chunks(provision, tmp_path: Path):
    """A SaaS API caps one group change (Miro: 8,000 members a PATCH): the engine sends chunks,
    records each one, and the group ends complete; a change later goes by difference, chunked too."""
    people = [person(f"E{i:03d}", "P", f"N{i}") for i in range(35)]
    ids = [p["employee_id"] for p in people]
    write_hr(tmp_path / "hr", people, [group("G1", "Everyone", ids[:25])])
    manifest = tmp_path / "chunks.yaml"
    manifest.write_text(CHUNKED.format(tmp=tmp_path))
    log = tmp_path / "log.jsonl"
    first = provision("run", manifest, "--output", "json", "--log-file", log)
    assert first.code == 0, first.out
    assert first.json()["object_types"]["group"]["added"] == 1
    steps = [json.loads(line) for line in log.read_text().splitlines() if '"G1"' in line]
    assert [s["action"] for s in steps] == ["add", "update", "update"]   # 10 + 10 + 5 members

    def members() -> list[str]:
        docs = [json.loads(f.read_text()) for f in (tmp_path / "dir").rglob("*.json")]
        names = {d["anchor"]: d["name"] for d in docs}
        g = next(d for d in docs if d["object"] == "groups")
        return sorted(names[m] for m in g["attributes"]["member"])

    assert members() == sorted(f"uid={i.lower()}" for i in ids[:25])
    write_hr(tmp_path / "hr", people, [group("G1", "Everyone", ids[12:])])  # 12 leave, 10 join
    second = provision("run", manifest, "--output", "json")
    assert second.code == 0 and second.json()["object_types"]["group"]["updated"] == 1, second.out
    assert members() == sorted(f"uid={i.lower()}" for i in ids[12:])
    again = provision("run", manifest, "--output", "json").json()["object_types"]["group"]
    assert again["updated"] == 0 and again["unchanged"] == 1
