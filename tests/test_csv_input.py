"""Strict CSV input: a broken HR export stops the read (or fails one row) with file:line and what to
do, and never looks like people leaving. See docs/csv-input.md."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import person, read_app, write_hr

from runner import sampledata
from runner.connectors import csvfile
from runner.connectors.base import ConnectionFailed, ConnectorContext, Page, Record
from runner.connectors.csvfile import CsvConnector

HEADER = "employee_id,first_name,last_name,email\n"


def row(n: int) -> str:
    return f"E{n},First{n},Last{n},p{n}@example.org\n"


# ---- the interface without an error slot (interface 1), and with the proposed additions -----------


@dataclass(frozen=True)
class RecordWithoutError:
    """base.Record as interface 1 had it: no way to fail one object."""

    attributes: Any
    anchor: str | None = None
    name: str | None = None
    partition: str | None = None
    deleted: bool = False


@dataclass(frozen=True)
class PageWithoutSourceEmpty:
    records: Any
    watermark: str | None = None


@dataclass(frozen=True)
class ProposedRecord(Record):
    error: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class ProposedPage(Page):
    source_empty: str | None = None


@pytest.fixture
def no_error_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csvfile, "Record", RecordWithoutError)
    monkeypatch.setattr(csvfile, "Page", PageWithoutSourceEmpty)


@pytest.fixture
def proposed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csvfile, "Record", ProposedRecord)
    monkeypatch.setattr(csvfile, "Page", ProposedPage)


# ---- driving the connector directly ---------------------------------------------------------------


def write(tmp_path: Path, content: str | bytes, name: str = "people.csv") -> Path:
    folder = tmp_path / "hr"
    folder.mkdir(exist_ok=True)
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def connector(tmp_path: Path, **config: Any) -> CsvConnector:
    made = CsvConnector({"type": "csv", "path": "hr", **config}, ConnectorContext(name="hr", base_dir=tmp_path))
    made.open()
    return made


def pages(tmp_path: Path, **config: Any) -> list[Any]:
    return list(connector(tmp_path, **config).read("people"))


def records(tmp_path: Path, **config: Any) -> list[Any]:
    return [r for p in pages(tmp_path, **config) for r in p.records]


def failure(tmp_path: Path, **config: Any) -> str:
    with pytest.raises(ConnectionFailed) as caught:
        records(tmp_path, **config)
    return str(caught.value)


def test_a_good_file_reads_every_row_with_its_line(tmp_path: Path, proposed: None):
    write(tmp_path, HEADER + row(1) + '\n' + 'E2,"Ann\nMarie",Lee,a@example.org\n' + row(3))
    found = records(tmp_path)
    assert [r.attributes["employee_id"] for r in found] == ["E1", "E2", "E3"]
    assert found[1].attributes["first_name"] == "Ann\nMarie"
    # physical lines: a blank line and a cell spanning two lines count
    assert [r.location for r in found] == ["hr/people.csv:2", "hr/people.csv:4", "hr/people.csv:6"]
    assert all(r.error is None for r in found)


def test_a_short_row_fails_only_that_object(tmp_path: Path, proposed: None):
    write(tmp_path, HEADER + row(1) + "E2,Bob,bob@example.org\n" + row(3))
    found = records(tmp_path)
    assert [r.attributes["employee_id"] for r in found] == ["E1", "E2", "E3"]
    broken = found[1]
    assert broken.error is not None and broken.error.startswith("hr/people.csv:3: 3 cells where the header")
    assert "4 columns" in broken.error and "missing or extra comma" in broken.error
    assert found[0].error is None and found[2].error is None


def test_a_long_row_fails_only_that_object(tmp_path: Path, proposed: None):
    write(tmp_path, HEADER + "E1,Ada,Love,lace,a@example.org\n" + row(2))
    first, second = records(tmp_path)
    assert first.error is not None and first.error.startswith("hr/people.csv:2: 5 cells")
    assert second.error is None and second.attributes["email"] == "p2@example.org"


def test_without_an_error_slot_a_short_row_stops_the_read(tmp_path: Path, no_error_slot: None):
    """An engine whose Record cannot fail one object: never a record with nulls, the read stops."""
    write(tmp_path, HEADER + row(1) + "E2,Bob,bob@example.org\n")
    message = failure(tmp_path)
    assert message.startswith("hr/people.csv:3: 3 cells where the header (line 1) has 4 columns")
    assert "nothing is marked deleted" in message


def test_a_stray_quote_running_on_stops_the_read_at_the_line_it_opened(tmp_path: Path, no_error_slot: None):
    lines = [row(n) for n in range(1, 100)]
    lines[9] = 'E10,"First10,Last10,p10@example.org\n'  # line 11 of the file
    write(tmp_path, HEADER + "".join(lines))
    message = failure(tmp_path)
    assert message.startswith("hr/people.csv:11: a quoted cell opens on this line")
    assert "max_cell_lines (50 lines)" in message and "stray '\"' on line 11" in message


def test_max_cell_lines_is_configurable(tmp_path: Path, no_error_slot: None):
    lines = [row(n) for n in range(1, 20)]
    lines[2] = 'E3,"First3,Last3,p3@example.org\n'  # line 4
    write(tmp_path, HEADER + "".join(lines))
    assert "still open at line 9, past max_cell_lines (5 lines)" in failure(tmp_path, max_cell_lines=5)


def test_a_stray_quote_at_the_end_of_the_file_is_found(tmp_path: Path, no_error_slot: None):
    write(tmp_path, HEADER + row(1) + row(2) + 'E3,"First3,Last3,p3@example.org\n' + row(4))
    message = failure(tmp_path)
    assert message.startswith("hr/people.csv:4: a quoted cell opens on this line and never closes")


def test_a_stray_quote_that_closes_later_still_names_where_it_opened(tmp_path: Path, no_error_slot: None):
    """The quoted cell ends at another quote three lines on, swallowing two people: the read stops
    (those two would otherwise vanish), naming the line where the cell opened."""
    write(tmp_path, HEADER + row(1) + 'E2,"First2,Last2,p2@example.org\n' + row(3) + row(4)
          + 'E5,First5",Last5,p5@example.org\n' + row(6))
    message = failure(tmp_path)
    assert message.startswith("hr/people.csv:3: a quoted cell opens on this line and runs on to line 6")
    assert "lines 3-6 holds line 4, which splits into the 4 cells of a whole row" in message


def test_a_stray_quote_that_swallows_rows_and_miscounts_stops_the_read(tmp_path: Path, no_error_slot: None):
    """The cell closes on the very next line: no whole row inside it, but E3 would vanish."""
    write(tmp_path, HEADER + row(1) + 'E2,First2,"Last2,p2@example.org\n'
          + 'E3,First3",Last3,p3@example.org\n' + row(4))
    message = failure(tmp_path)
    assert message.startswith("hr/people.csv:3: a quoted cell opens on this line and runs on to line 4")
    assert "has 5 cells where the header (line 1) has 4 columns" in message


def test_an_address_spanning_lines_is_not_taken_for_swallowed_rows(tmp_path: Path, proposed: None):
    write(tmp_path, "employee_id,name,address,email\n"
          + 'E1,Ada,"1 Main St,\nApt 4, Floor 2\nSpringfield, IL",a@example.org\n' + row(2))
    first, second = records(tmp_path)
    assert first.attributes["address"] == "1 Main St,\nApt 4, Floor 2\nSpringfield, IL"
    assert first.error is None and second.location == "hr/people.csv:5"


def test_a_legitimate_multi_line_cell_before_a_stray_quote_is_not_blamed(tmp_path: Path, no_error_slot: None):
    write(tmp_path, HEADER + 'E1,"Ann\nMarie",Lee,"a@\nexample.org\n' + "".join(row(n) for n in range(2, 60)))
    assert failure(tmp_path).startswith("hr/people.csv:3: a quoted cell opens on this line")


def test_a_quote_closing_in_the_middle_of_a_cell_fails_that_row(tmp_path: Path, proposed: None):
    write(tmp_path, HEADER + 'E1,"Bob" Jr,Stone,b@example.org\n' + row(2))
    broken, good = records(tmp_path)
    assert broken.error is not None and broken.error.startswith("hr/people.csv:2:")
    assert "written twice" in broken.error
    assert good.error is None and good.attributes["employee_id"] == "E2"


def test_a_quoted_cell_past_max_cell_bytes_stops_the_read(tmp_path: Path, no_error_slot: None):
    note = "x" * 300
    write(tmp_path, "employee_id,note\n" + 'E1,"' + "\n".join([note] * 4) + '"\n' + "E2,short\n")
    message = failure(tmp_path, max_cell_bytes=1000)
    assert message.startswith("hr/people.csv:2: a quoted cell opens on this line")
    assert "max_cell_bytes (1000 bytes)" in message
    # the same file reads with the default limit
    assert [r.attributes["employee_id"] for r in records(tmp_path)] == ["E1", "E2"]


def test_a_line_past_max_cell_bytes_stops_the_read(tmp_path: Path, no_error_slot: None):
    write(tmp_path, "employee_id,note\n" + "E1," + "é" * 600 + "\n")  # 600 characters, 1200 bytes
    assert failure(tmp_path, max_cell_bytes=1000).startswith(
        "hr/people.csv:2: the line is longer than max_cell_bytes (1000 bytes)")


def test_a_huge_member_cell_reads_with_the_default_limit(tmp_path: Path, no_error_slot: None):
    members = ";".join(f"E{n:07d}" for n in range(400_000))  # 3.6 MB: a big group at scale
    write(tmp_path, f"group_id,members\nG1,{members}\n", name="groups.csv")
    made = connector(tmp_path, objects={"groups": {"multi_valued": {"members": ";"}}})
    (group,) = [r for p in made.read("groups") for r in p.records]
    assert len(group.attributes["members"]) == 400_000


def test_bad_utf8_names_its_line_and_the_encoding_setting(tmp_path: Path, no_error_slot: None):
    body = "".join(row(n) for n in range(1, 700))  # past the decoder's first chunks
    bad = "E700,Ren\u00e9,Roux,r@example.org\n".encode("latin-1")
    write(tmp_path, HEADER.encode() + body.encode() + bad + row(701).encode())
    message = failure(tmp_path)
    assert message.startswith("hr/people.csv:701: not utf-8 (byte 0xE9 at column 9")
    assert "`encoding: cp1252`" in message and "connector 'hr'" in message


def test_the_encoding_setting_reads_a_latin1_export(tmp_path: Path, no_error_slot: None):
    write(tmp_path, (HEADER + "E1,Ren\u00e9,Roux,r@example.org\n").encode("latin-1"))
    (found,) = records(tmp_path, encoding="latin-1")
    assert found.attributes["first_name"] == "Ren\u00e9"


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path, no_error_slot: None):
    write(tmp_path, b"\xef\xbb\xbf" + (HEADER + row(1)).encode())
    (found,) = records(tmp_path)
    assert found.attributes["employee_id"] == "E1"
    assert list(found.attributes)[0] == "employee_id"


def test_a_utf16_export_with_its_byte_order_mark_reads(tmp_path: Path, no_error_slot: None):
    write(tmp_path, (HEADER + row(1)).encode("utf-16"))
    (found,) = records(tmp_path, encoding="utf-16")
    assert found.attributes == {"employee_id": "E1", "first_name": "First1", "last_name": "Last1",
                                "email": "p1@example.org"}


@pytest.mark.parametrize(("text", "setting"), [
    ("employee_id;first_name;email\nE1;Ada;a@example.org\n", '`delimiter: ";"`'),
    ("employee_id\tfirst_name\temail\nE1\tAda\ta@example.org\n", '`delimiter: "\\t"`'),
    ("employee_id|first_name|email\nE1|Ada|a@example.org\n", '`delimiter: "|"`'),
])
def test_a_wrong_delimiter_is_recognised_from_the_header(tmp_path: Path, no_error_slot: None, text: str, setting: str):
    write(tmp_path, text)
    message = failure(tmp_path)
    assert message.startswith("hr/people.csv:1: the header is one column")
    assert setting in message and "splits on commas" in message


def test_a_semicolon_file_reads_with_its_delimiter(tmp_path: Path, no_error_slot: None):
    write(tmp_path, "employee_id;first_name\nE1;Ada\n")
    (found,) = records(tmp_path, delimiter=";")
    assert found.attributes == {"employee_id": "E1", "first_name": "Ada"}


def test_a_column_named_twice_stops_the_read(tmp_path: Path, no_error_slot: None):
    write(tmp_path, "employee_id,email,name,email\nE1,a@x,Ada,b@x\n")
    assert failure(tmp_path).startswith("hr/people.csv:1: column 'email' appears twice in the header "
                                        "(columns 2 and 4)")


def test_an_empty_file_stops_the_read(tmp_path: Path, no_error_slot: None):
    write(tmp_path, b"")
    message = failure(tmp_path)
    assert message.startswith("hr/people.csv is empty (0 bytes)") and "nobody is marked deleted" in message


def test_a_file_of_blank_lines_has_no_header(tmp_path: Path, no_error_slot: None):
    write(tmp_path, "\n\n\n")
    assert failure(tmp_path).startswith("hr/people.csv has no header line")


def test_a_header_only_file_reads_as_no_records_and_says_so(tmp_path: Path, proposed: None):
    write(tmp_path, HEADER)
    (page,) = pages(tmp_path)
    assert list(page.records) == []
    assert page.source_empty == "hr/people.csv has a header (line 1) and no rows"


def test_without_source_empty_a_header_only_file_reads_as_no_records(tmp_path: Path, no_error_slot: None):
    write(tmp_path, HEADER)
    assert pages(tmp_path) == []


def test_validate_reports_an_unknown_encoding(tmp_path: Path):
    made = CsvConnector({"type": "csv", "path": "hr", "encoding": "utf-9"}, ConnectorContext("hr", tmp_path))
    ((path, message),) = made.check()
    assert path == ("encoding",) and "unknown encoding 'utf-9'" in message


# ---- end to end: provision run on a copy of the quickstart -----------------------------------------


def make_data(quickstart_copy: Path, people: int = 60) -> Path:
    data = quickstart_copy.parent.parent.parent / "data"
    sampledata.make(data, people, 4, 1)
    return data


def target(quickstart_copy: Path) -> Path:
    return quickstart_copy.parent.parent.parent / "app.db"


def break_line(path: Path, line: int, old: str, new: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("".join(lines), encoding="utf-8")


def test_run_a_stray_quote_stops_the_user_pass_and_deletes_nobody(provision, quickstart_copy: Path):
    data = make_data(quickstart_copy)
    assert provision("run", quickstart_copy).code == 0
    before = read_app(target(quickstart_copy))["users"]
    break_line(data / "people.csv", 8, ",", ',"')  # E0000007's first name opens a quoted cell

    result = provision("run", quickstart_copy, "--output", "json")
    assert result.code == 1
    out = result.json()
    assert out["status"] == "failed"
    user = out["object_types"]["user"]
    assert "people.csv:8: a quoted cell opens on this line" in user["error"] and "stray" in user["error"]
    assert user["deleted"] == 0
    assert read_app(target(quickstart_copy))["users"] == before

    text = provision("run", quickstart_copy)
    assert text.code == 1
    assert "people.csv:8: a quoted cell opens on this line" in text.out + text.err
    assert "Traceback" not in text.out + text.err


def test_run_a_stray_quote_swallowing_the_rest_deletes_nobody(provision, quickstart_copy: Path):
    """A file without other quotes: the cell runs on to max_cell_lines; before strict input the
    rest of the file was one cell and everyone after line 5 was deleted."""
    data = quickstart_copy.parent.parent.parent / "data"
    people = [person(f"E{n}", "Ann", f"Person{n}") for n in range(1, 80)]
    write_hr(data, people, [])
    assert provision("run", quickstart_copy).code == 0
    assert len(read_app(target(quickstart_copy))["users"]) == 79
    break_line(data / "people.csv", 5, "E4,", 'E4,"')

    out = provision("run", quickstart_copy, "--output", "json").json()
    assert out["status"] == "failed"
    assert "people.csv:5: a quoted cell opens on this line and is still open" in out["object_types"]["user"]["error"]
    assert out["object_types"]["user"]["deleted"] == 0
    assert len(read_app(target(quickstart_copy))["users"]) == 79


def test_run_an_empty_export_deletes_nobody(provision, quickstart_copy: Path):
    data = make_data(quickstart_copy)
    assert provision("run", quickstart_copy).code == 0
    before = read_app(target(quickstart_copy))["users"]
    (data / "people.csv").write_bytes(b"")

    result = provision("run", quickstart_copy, "--output", "json")
    assert result.code == 1
    user = result.json()["object_types"]["user"]
    assert "people.csv is empty (0 bytes)" in user["error"] and user["deleted"] == 0
    assert read_app(target(quickstart_copy))["users"] == before


def test_run_a_short_row_fails_that_person_alone_naming_its_line(provision, quickstart_copy: Path):
    data = make_data(quickstart_copy)
    assert provision("run", quickstart_copy).code == 0
    before = read_app(target(quickstart_copy))["users"]
    break_line(data / "people.csv", 12, ",active,", ",active")  # E0000011: 11 cells, and no null status
    log = quickstart_copy.parent / "prov.log"

    result = provision("run", quickstart_copy, "--output", "json", "--log-file", log)
    assert result.code == 1
    user = result.json()["object_types"]["user"]
    assert user["failed"] == 1 and user["deleted"] == 0 and user["imported"] == 59
    failed = [e for e in map(json.loads, log.read_text().splitlines()) if e["result"] == "failed"]
    assert [(e["anchor"], e["action"]) for e in failed] == [("E0000011", "import")]
    assert "people.csv:12: 11 cells where the header (line 1) has 12 columns" in failed[0]["error"]
    assert read_app(target(quickstart_copy))["users"] == before


def test_run_a_header_only_export_deletes_nobody(provision, quickstart_copy: Path):
    data = make_data(quickstart_copy)
    assert provision("run", quickstart_copy).code == 0
    before = read_app(target(quickstart_copy))["users"]
    (data / "people.csv").write_text(",".join(sampledata.PEOPLE_COLUMNS) + "\n", encoding="utf-8")

    out = provision("run", quickstart_copy, "--output", "json").json()
    assert read_app(target(quickstart_copy))["users"] == before
    assert "has a header (line 1) and no rows" in out["object_types"]["user"].get("guard", "")
    assert out["status"] == "stopped"


def test_run_three_anchor_problems_get_three_messages(provision, quickstart_copy: Path):
    data = make_data(quickstart_copy, people=10)
    people = data / "people.csv"
    good = people.read_text(encoding="utf-8")
    messages = []
    for broken in (good.replace("\nE0000003,", "\n,", 1),                      # an empty anchor cell
                   good.replace("employee_id,", "employee,", 1),               # the anchor column renamed
                   good.replace(",", ";")):                                    # the wrong delimiter
        people.write_text(broken, encoding="utf-8")
        out = provision("run", quickstart_copy, "--output", "json").json()
        messages.append(out["object_types"]["user"]["error"])
    empty, missing, delimiter = messages
    assert "people.csv:4:" in empty and "empty" in empty
    assert "people.csv:2:" in missing and "'employee'" in missing
    assert "people.csv:1:" in delimiter and '`delimiter: ";"`' in delimiter
    assert len(set(messages)) == 3
