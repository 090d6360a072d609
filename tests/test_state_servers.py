"""The state store on PostgreSQL and MariaDB, as shared by several runners."""

from __future__ import annotations

from pathlib import Path

from conftest import read_app
from quickstart_model import QuickstartModel

from runner import sampledata


def test_quickstart_cycle_with_a_server_state_store(quickstart_copy: Path, provision, tmp_path: Path,
                                                    server_database: str):
    text = quickstart_copy.read_text()
    start = text.index("state: ")
    end = text.index("\n", start)
    quickstart_copy.write_text(text[:start] + f'state: "{server_database}"' + text[end:])
    data = tmp_path / "data"
    sampledata.make(data, 300, 15, 21)
    model = QuickstartModel()

    first = provision("run", quickstart_copy, "--output", "json")
    assert first.code == 0, first.err
    assert first.json()["object_types"] == model.step(data)
    sampledata.mutate(data, 22, 5.0)
    second = provision("run", quickstart_copy, "--output", "json")
    assert second.code == 0, second.err
    assert second.json()["object_types"] == model.step(data)
    assert read_app(tmp_path / "app.db") == model.target()
    status = provision("status", quickstart_copy)
    people = len((data / "people.csv").read_text(encoding="utf-8").splitlines()) - 1
    assert status.code == 0 and f"user: {people} in source" in status.out
