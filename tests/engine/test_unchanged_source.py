"""A CSV export that has not changed since the last full import is not read again
(Connector.fingerprint, runner/engine/importer.py): the no-op cycle of a cron job that runs every
15 minutes against a nightly export costs a file digest, not a parse of every row. Whatever could
make the same bytes read otherwise, a read that did not finish, and rows that failed to read,
make the next run read the file again."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import read_app

SKIPPED = "the source is unchanged since its last full import"


def run(provision, manifest: Path, *options: str):
    return provision("run", manifest, "-v", "--output", "json", *options)


def counts(result) -> dict[str, dict[str, int]]:
    return json.loads(result.out)["object_types"]


def edit_people(data: Path, change) -> None:
    path = data / "people.csv"
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0])
    rows = change(rows)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def test_an_unchanged_export_is_not_read_again_and_the_summary_stays_whole(provision, quickstart_env, tmp_path):
    quickstart_env(people=200, groups=10)
    manifest = Path("manifests/quickstart.yaml").resolve()
    first = run(provision, manifest)
    assert first.code == 0 and SKIPPED not in first.err

    again = run(provision, manifest)

    assert again.code == 0
    assert f"user: {SKIPPED} (200 records)" in again.err and f"group: {SKIPPED} (10 records)" in again.err
    user = counts(again)["user"]
    assert user["imported"] == 200 and user["unchanged"] + user["out_of_scope"] == 200
    assert not any(user[k] for k in ("added", "updated", "disabled", "deleted", "failed"))


def test_a_changed_row_or_a_person_gone_is_read_and_exported(provision, quickstart_env, tmp_path):
    data = quickstart_env(people=200, groups=10)
    manifest = Path("manifests/quickstart.yaml").resolve()
    assert run(provision, manifest).code == 0
    with open(data / "people.csv", newline="", encoding="utf-8") as f:
        active = [r for r in csv.DictReader(f) if r["status"] == "active"]
    changed, gone = active[0]["employee_id"], active[1]["employee_id"]

    edit_people(data, lambda rows: [dict(r, title="Chief Example Officer") if r["employee_id"] == changed else r
                                    for r in rows if r["employee_id"] != gone])
    result = run(provision, manifest)

    assert result.code == 0 and f"user: {SKIPPED}" not in result.err
    assert counts(result)["user"]["updated"] >= 1 and counts(result)["user"]["deleted"] == 1
    titles = {u["title"] for u in read_app(tmp_path / "app.db")["users"].values()}
    assert "Chief Example Officer" in titles
    assert run(provision, manifest).err.count(SKIPPED) == 2  # and the run after that reads nothing again


def test_the_same_bytes_parsed_otherwise_are_read_again(provision, quickstart_copy, tmp_path):
    from runner import sampledata

    sampledata.make(tmp_path / "data", 100, 5, 1)
    assert run(provision, quickstart_copy).code == 0
    text = quickstart_copy.read_text()
    quickstart_copy.write_text(text.replace('    path: "${env:PROVISION_DATA:-data}"\n',
                                            '    path: "${env:PROVISION_DATA:-data}"\n    empty_as_null: false\n'))

    result = run(provision, quickstart_copy)

    assert result.code == 0 and SKIPPED not in result.err


def test_full_reads_the_export_anyway(provision, quickstart_env):
    quickstart_env(people=50, groups=5)
    manifest = Path("manifests/quickstart.yaml").resolve()
    assert run(provision, manifest).code == 0

    assert SKIPPED not in run(provision, manifest, "--full").err
    assert SKIPPED in run(provision, manifest).err


def test_a_read_that_stopped_halfway_is_not_taken_for_a_whole_one(provision, quickstart_copy, tmp_path):
    """The export changes, its read stops on page 2 (an anchor twice) after page 1 was stored, then
    the export is put back as it was: the next run must read it, or page 1's records of the
    abandoned export would stay in the state and be exported."""
    from runner import sampledata

    data = tmp_path / "data"
    sampledata.make(data, 120, 5, 1)
    text = quickstart_copy.read_text()
    quickstart_copy.write_text(text.replace('    path: "${env:PROVISION_DATA:-data}"\n',
                                            '    path: "${env:PROVISION_DATA:-data}"\n    page_size: 20\n'))
    assert run(provision, quickstart_copy).code == 0
    before = read_app(tmp_path / "app.db")
    original = (data / "people.csv").read_bytes()

    def broken(rows):
        rows = [dict(r, title="Abandoned Title") if i < 20 else r for i, r in enumerate(rows)]
        return rows + [rows[50]]  # the same anchor again, on a later page

    edit_people(data, broken)
    stopped = run(provision, quickstart_copy)
    assert stopped.code != 0 and "appears twice" in stopped.err
    (data / "people.csv").write_bytes(original)

    result = run(provision, quickstart_copy)

    assert result.code == 0 and f"user: {SKIPPED}" not in result.err
    assert read_app(tmp_path / "app.db") == before
    assert "Abandoned Title" not in {u["title"] for u in before["users"].values()}


def test_rows_that_fail_to_read_fail_every_run_until_fixed(provision, quickstart_env):
    data = quickstart_env(people=50, groups=5)
    manifest = Path("manifests/quickstart.yaml").resolve()
    with open(data / "people.csv", "a", encoding="utf-8") as f:
        f.write("E9999999,Too,Few\n")  # fewer cells than the header

    first, second = run(provision, manifest), run(provision, manifest)

    for result in (first, second):
        assert result.code == 1 and f"user: {SKIPPED}" not in result.err
        assert counts(result)["user"]["failed"] == 1
