"""Quarantine: a pipeline whose runs fail wholesale, run after run, stops at a cheap probe of its
targets (exit 3, naming why) until the probe passes or `provision release` lifts it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import REPO

from runner import sampledata
from runner.state.store import StateStore

REFUSE_ALL = """CREATE TRIGGER refuse_all BEFORE INSERT ON users
BEGIN SELECT RAISE(ABORT, 'the application is in read-only maintenance'); END;"""


@pytest.fixture
def nightly(quickstart_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The quickstart with its state store in a fixed place, so the target (PROVISION_TARGET) can
    be pointed elsewhere; 30 people in 3 groups."""
    text = quickstart_copy.read_text()
    start = text.index("state: ")
    text = text[:start] + f'state: "sqlite:///{tmp_path / "state.db"}"' + text[text.index("\n", start):]
    quickstart_copy.write_text(text)
    sampledata.make(tmp_path / "data", 30, 3, 7)

    def configure(safety: str | None = None) -> Path:
        if safety:
            quickstart_copy.write_text(text.replace("version: 1\n", f"version: 1\nsafety: {safety}\n", 1))
        return quickstart_copy

    return configure


def quarantine_of(tmp_path: Path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}", tmp_path)
    try:
        return store.runs.quarantine("quickstart")
    finally:
        store.close()


def test_an_unreachable_target_quarantines_the_pipeline_until_it_answers(nightly, provision, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    manifest = nightly()
    assert provision("run", manifest).code == 0
    broken = tmp_path / "moved"
    broken.mkdir()  # the database path now names a folder: the target cannot be opened
    monkeypatch.setenv("PROVISION_TARGET", str(broken))

    for n in (1, 2, 3):
        result = provision("run", manifest, "--output", "json")
        assert result.code == 1 and result.json()["status"] == "failed"
        assert all("unable to open database file" in c["error"] for c in result.json()["object_types"].values())
        # a pass that stopped says nothing was unchanged (it could not look)
        assert all(c["unchanged"] == 0 for c in result.json()["object_types"].values()), result.json()
        if n < 3:
            assert "quarantine" not in result.json() and quarantine_of(tmp_path) is None
            assert "this run failed wholesale (every object type's pass stopped: " in result.err
            assert f"{n} of safety.quarantine.after_runs (3) in a row" in result.err
    assert result.json()["quarantine"]["failed_runs"] == 3
    assert "is now quarantined after 3 runs in a row" in result.err
    assert quarantine_of(tmp_path).reason.startswith("every object type's pass stopped: connector 'app'")

    # later runs probe the target, stop there and say why: nothing imported, nothing exported
    sampledata.mutate(tmp_path / "data", 3, 10.0)
    for _ in range(2):
        stopped = provision("run", manifest, "--output", "json")
        assert stopped.code == 3, stopped.err
        out = stopped.json()
        assert out["status"] == "quarantined" and out["object_types"] == {}
        assert "unable to open database file" in out["quarantine"]["probe"]
        assert out["quarantine"]["reason"].startswith("every object type's pass stopped")
        assert "is quarantined since" in stopped.err and "provision release FILE" in stopped.err
    text = provision("run", manifest)
    assert text.code == 3 and "The probe of its targets failed" in text.err
    plan = provision("plan", manifest)  # a plan is not stopped, but told
    assert plan.code != 3 and "is quarantined since" in plan.err

    # the database is back: the probe passes, the quarantine lifts and the run catches up
    monkeypatch.setenv("PROVISION_TARGET", str(tmp_path / "app.db"))
    back = provision("run", manifest, "--output", "json")
    assert back.code == 0, back.err
    assert "the quarantine is lifted" in back.err
    assert sum(c["added"] + c["updated"] + c["disabled"] + c["deleted"] for c in back.json()["object_types"].values())
    assert quarantine_of(tmp_path) is None

    monkeypatch.setenv("PROVISION_TARGET", str(broken))  # the count starts again from one
    again = provision("run", manifest)
    assert again.code == 1 and "1 of safety.quarantine.after_runs (3) in a row" in again.err


def test_release_lifts_a_quarantine_by_hand(nightly, provision, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    manifest = nightly("{quarantine: {after_runs: 1}}")
    assert provision("run", manifest).code == 0
    broken = tmp_path / "moved"
    broken.mkdir()
    monkeypatch.setenv("PROVISION_TARGET", str(broken))
    assert provision("run", manifest).code == 1  # one wholesale failure is enough here
    assert provision("run", manifest).code == 3
    shown = provision("status", manifest)
    assert "QUARANTINED: quarantined since" in shown.out and "provision release" in shown.out
    assert provision("status", manifest, "--output", "json").json()["quarantine"].startswith("quarantined since")

    released = provision("release", manifest)
    assert released.code == 0
    assert "pipeline quickstart released" in released.out and "unable to open database file" in released.out
    assert quarantine_of(tmp_path) is None
    assert "QUARANTINED" not in provision("status", manifest).out
    # the next run goes ahead without a probe (and, still failing, is quarantined again)
    assert provision("run", manifest, "--output", "json").json()["status"] == "failed"
    assert provision("release", manifest).code == 0
    assert "is not quarantined" in provision("release", manifest).out


def test_most_objects_failing_quarantines_the_pipeline(nightly, provision, tmp_path: Path):
    manifest = nightly("{quarantine: {after_runs: 2, failure_share: 0.5}}")
    with sqlite3.connect(tmp_path / "app.db") as con:
        con.executescript((REPO / "manifests" / "sql" / "quickstart-target.sql").read_text() + REFUSE_ALL)

    first = provision("run", manifest, "--output", "json")
    assert first.code == 1 and first.json()["object_types"]["user"]["added"] == 0
    assert "objects failing" in first.err and "1 of safety.quarantine.after_runs (2)" in first.err
    second = provision("run", manifest, "--output", "json")  # the failures are retried, and fail again
    assert second.json()["quarantine"]["failed_runs"] == 2
    assert "more than safety.quarantine.failure_share allows (50%)" in second.json()["quarantine"]["reason"]

    # the target answers (it only refuses writes): the probe passes and the run goes on
    third = provision("run", manifest, "--output", "json")
    assert third.code == 1 and "the quarantine is lifted" in third.err
    assert third.json()["status"] == "partial"


def test_a_few_failing_objects_never_quarantine(nightly, provision, tmp_path: Path):
    manifest = nightly("{quarantine: {after_runs: 2, failure_share: 0.5}}")
    first_person = (tmp_path / "data" / "people.csv").read_text().splitlines()[1]
    name = next(cell for cell in first_person.split(",") if "@" in cell).split("@")[0].lower()
    with sqlite3.connect(tmp_path / "app.db") as con:
        con.executescript((REPO / "manifests" / "sql" / "quickstart-target.sql").read_text()
                          + f"CREATE TRIGGER refuse_one BEFORE INSERT ON users WHEN NEW.user_name = '{name}' "
                            "BEGIN SELECT RAISE(ABORT, 'reserved name'); END;")
    for _ in range(4):
        few = provision("run", manifest, "--retry-now", "--output", "json")
        assert few.code == 1 and few.json()["object_types"]["user"]["failed"] == 1
        assert "quarantine" not in few.json() and "wholesale" not in few.err
    assert quarantine_of(tmp_path) is None
