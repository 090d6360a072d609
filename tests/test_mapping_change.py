"""A changed mapping or scope re-evaluates every object of its type from the state store."""

from __future__ import annotations

from pathlib import Path

from conftest import read_app

from runner import sampledata


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_mapping_change_reevaluates_without_reading_the_source(quickstart_copy: Path, provision, tmp_path: Path):
    data = tmp_path / "data"
    sampledata.make(data, 120, 8, 5)
    assert provision("run", quickstart_copy).code == 0
    users = read_app(tmp_path / "app.db")["users"]
    active = sum(1 for u in users.values() if u["active"])

    mapping = quickstart_copy.parent.parent / "mappings" / "person-to-app-user.yaml"
    edit(mapping, "expression: \"join(' ', [coalesce(preferred_name, first_name), last_name])\"",
         "expression: \"upper(join(' ', [coalesce(preferred_name, first_name), last_name]))\"")
    (data / "people.csv").rename(data / "people.csv.away")  # the source is not there to read

    result = provision("run", quickstart_copy, "--no-import", "--object-type", "user", "--output", "json")
    assert result.code == 0, result.err
    counts = result.json()["object_types"]["user"]
    assert counts["imported"] == 0
    assert counts["updated"] == active  # every provisioned, in-scope user; disabled ones are left alone
    for user in read_app(tmp_path / "app.db")["users"].values():
        if user["active"]:
            assert user["display_name"] == user["display_name"].upper()

    (data / "people.csv.away").rename(data / "people.csv")
    again = provision("run", quickstart_copy, "--output", "json").json()
    assert again["object_types"]["user"]["updated"] == 0


def test_scope_change_reevaluates_every_object(quickstart_copy: Path, provision, tmp_path: Path):
    data = tmp_path / "data"
    sampledata.make(data, 120, 8, 6)
    assert provision("run", quickstart_copy).code == 0
    on_leave = sum(1 for line in (data / "people.csv").read_text().splitlines() if ",leave," in line)
    assert on_leave > 0

    edit(quickstart_copy, "{attribute: status, op: in, value: [active, leave]}",
         "{attribute: status, op: eq, value: active}")
    out = provision("run", quickstart_copy, "--output", "json").json()
    assert out["object_types"]["user"]["disabled"] == on_leave
    assert out["object_types"]["user"]["updated"] == 0


def test_ignore_flow_and_redact_in_expressions(quickstart_copy: Path, provision, tmp_path: Path):
    """ignore_flow_if_null_or_empty leaves a target value alone; redact() makes an attribute sensitive."""
    import json
    import sqlite3

    from conftest import person, write_hr

    data = write_hr(tmp_path / "data", [person("E1", "Ann", "Lee", phone="+1 555 0100", title="Yak Shaver")], [])
    mapping = quickstart_copy.parent.parent / "mappings" / "person-to-app-user.yaml"
    edit(mapping, "  - target: phone\n    source: phone",
         "  - target: phone\n    expression: \"ignore_flow_if_null_or_empty(phone)\"")
    edit(mapping, "  - target: title\n    source: title", "  - target: title\n    expression: \"redact(title)\"")
    log = tmp_path / "log.jsonl"
    assert provision("run", quickstart_copy, "--log-file", log).code == 0
    assert "Yak Shaver" not in log.read_text()
    [added] = [json.loads(line) for line in log.read_text().splitlines() if '"add"' in line]
    assert added["changes"]["title"] == {"old": None, "new": "***"}

    write_hr(data, [person("E1", "Ann", "Lee", phone="", title="Yak Shaver")], [])  # HR lost the phone number
    out = provision("run", quickstart_copy, "--output", "json").json()
    assert out["object_types"]["user"]["updated"] == 0
    con = sqlite3.connect(tmp_path / "app.db")
    assert con.execute("SELECT phone, title FROM users").fetchone() == ("+1 555 0100", "Yak Shaver")
    con.close()
    assert json.loads(provision("status", quickstart_copy, "--output", "json").out)["pipeline"] == "quickstart"
