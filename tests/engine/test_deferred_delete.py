"""when_deleted: {disable_then_delete_after: 30d}: a restore window before the final delete.

A person gone from HR is disabled at once and kept; a rehire within the window re-enables the
same account (same id, same memberships back); once the window is over the account is deleted,
and that delete goes through the deletion guard like any other.
"""

from __future__ import annotations

from pathlib import Path

from conftest import read_app

from .helpers import sql


def deferred(quickstart_copy: Path, tmp_path: Path, people: int = 40) -> tuple[Path, list[str]]:
    from runner import sampledata

    sampledata.make(tmp_path / "data", people, 4, 1)
    quickstart_copy.write_text(quickstart_copy.read_text().replace(
        "when_deleted: delete           # people removed from HR are removed from the app",
        "when_deleted: {disable_then_delete_after: 30d}", 1))
    return tmp_path / "data" / "people.csv", (tmp_path / "data" / "people.csv").read_text().splitlines(keepends=True)


def age_departures(tmp_path: Path, days: int) -> None:
    """Move every recorded departure ``days`` into the past, as if that much time had passed."""
    sql(tmp_path / "app.db.state", f"UPDATE source_objects SET gone_at = strftime('%Y-%m-%dT%H:%M:%fZ', gone_at, "
                                   f"'-{days} days') WHERE gone_at IS NOT NULL")


def test_a_leaver_is_disabled_then_deleted_after_the_window_and_a_rehire_keeps_the_account(
        quickstart_copy: Path, provision, tmp_path: Path):
    people, lines = deferred(quickstart_copy, tmp_path)
    assert provision("run", quickstart_copy).code == 0
    db = tmp_path / "app.db"
    before = read_app(db)
    leaver, rehire = lines[3], lines[5]  # two active people (the sample's first rows are active)
    leaver_name = [u for u, v in before["users"].items() if v["email"] and v["email"] in leaver][0]
    rehire_name = [u for u, v in before["users"].items() if v["email"] and v["email"] in rehire][0]
    rehire_id = sql(db, f"SELECT id FROM users WHERE user_name = '{rehire_name}'")[0][0]
    people.write_text("".join(line for line in lines if line not in (leaver, rehire)))

    gone = provision("run", quickstart_copy, "--output", "json")
    assert gone.code == 0, gone.err
    assert gone.json()["object_types"]["user"]["disabled"] == 2 and gone.json()["object_types"]["user"]["deleted"] == 0
    after = read_app(db)
    assert after["users"][leaver_name]["active"] is False and after["users"][rehire_name]["active"] is False
    assert provision("run", quickstart_copy).code == 0  # within the window: nothing more happens
    assert read_app(db)["users"][leaver_name]["active"] is False

    age_departures(tmp_path, 10)
    people.write_text("".join(line for line in lines if line != leaver))  # rehired on day 10
    back = provision("run", quickstart_copy, "--output", "json")
    assert back.code == 0 and back.json()["object_types"]["user"]["updated"] == 1
    assert sql(db, f"SELECT id, active FROM users WHERE user_name = '{rehire_name}'") == [(rehire_id, 1)]
    assert read_app(db)["users"][rehire_name] == before["users"][rehire_name]
    groups_with_rehire = [g["name"] for g in before["groups"] if rehire_name in g["members"]]
    assert groups_with_rehire == [g["name"] for g in read_app(db)["groups"] if rehire_name in g["members"]]

    age_departures(tmp_path, 25)  # the leaver has now been gone 35 days
    final = provision("run", quickstart_copy, "--output", "json")
    assert final.code == 0, final.err
    assert final.json()["object_types"]["user"]["deleted"] == 1
    users = read_app(db)["users"]
    assert leaver_name not in users and users[rehire_name]["active"] is True
    assert all(leaver_name not in g["members"] for g in read_app(db)["groups"])


def test_the_final_deletes_go_through_the_deletion_guard(quickstart_copy: Path, provision, tmp_path: Path):
    people, lines = deferred(quickstart_copy, tmp_path, people=60)
    assert provision("run", quickstart_copy).code == 0
    people.write_text("".join(lines[:41]))  # twenty leave; the guard is told to let the disables through
    assert provision("run", quickstart_copy, "--allow-deletes", "all").code == 0
    age_departures(tmp_path, 31)
    held = provision("run", quickstart_copy, "--output", "json")
    assert held.code == 3, held.out
    assert held.json()["object_types"]["user"]["held"] >= 15
    assert len(read_app(tmp_path / "app.db")["users"]) > 50
    allowed = provision("run", quickstart_copy, "--allow-deletes", "all", "--output", "json")
    assert allowed.code == 0 and allowed.json()["object_types"]["user"]["deleted"] >= 15
