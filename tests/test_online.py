"""``provision discover`` and ``provision validate --online``: the manifest checked against what
the systems themselves hold, before a first run fails object by object."""

from __future__ import annotations

import socket
from pathlib import Path

from runner.sampledata import main as sampledata


def _quickstart(quickstart_copy: Path, tmp_path: Path) -> Path:
    sampledata(["make", "--out", str(tmp_path / "data"), "--people", "20", "--groups", "3"])
    return quickstart_copy


def test_discover_lists_each_csv_file_with_its_header(quickstart_copy: Path, tmp_path: Path, provision) -> None:
    manifest = _quickstart(quickstart_copy, tmp_path)
    result = provision("discover", manifest, "--connector", "hr")
    assert result.code == 0, result.err
    assert "object people (complete)" in result.out
    assert "employee_id" in result.out and "members      string, multi" in result.out
    data = provision("discover", manifest, "--output", "json").json()
    hr = next(d for d in data if d["connector"] == "hr")
    people = next(o for o in hr["objects"] if o["name"] == "people")
    assert [a["name"] for a in people["attributes"]][:3] == ["employee_id", "first_name", "last_name"]
    assert {d["connector"] for d in data} == {"hr", "app"}


def test_discover_names_an_unknown_connector(quickstart_copy: Path, tmp_path: Path, provision) -> None:
    result = provision("discover", _quickstart(quickstart_copy, tmp_path), "--connector", "nope")
    assert result.code == 2
    assert "no connector 'nope'" in result.err and "app, hr" in result.err


def test_validate_online_points_at_a_misspelt_source_column(quickstart_copy: Path, tmp_path: Path,
                                                            provision) -> None:
    manifest = _quickstart(quickstart_copy, tmp_path)
    assert provision("validate", "--online", manifest).code == 0
    mapping = manifest.parent.parent / "mappings" / "person-to-app-user.yaml"
    mapping.write_text(mapping.read_text().replace("source: title", "source: titel"))
    assert provision("validate", manifest).code == 0                 # on paper, fine
    result = provision("validate", "--online", manifest)
    assert result.code == 2
    assert "person-to-app-user.yaml:" in result.err
    assert "'titel' is not an attribute of 'people' on connector 'hr'; did you mean 'title'?" in result.err


def test_validate_online_with_an_unreachable_system_exits_5(quickstart_copy: Path, tmp_path: Path, provision) -> None:
    manifest = _quickstart(quickstart_copy, tmp_path)
    with socket.socket() as s:                                        # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = manifest.read_text()
    start = text.index('url: "sqlite:///')
    end = text.index("\n", start)
    manifest.write_text(text[:start] + f'url: "postgresql+psycopg://app:s3cr3t-pw@127.0.0.1:{port}/app"'
                        + text[end:])
    for command in (("validate", "--online"), ("discover",)):
        result = provision(*command, manifest)
        assert result.code == 5, result.out + result.err  # the system could not be reached (exit 5)
        assert "connector 'app'" in result.err
        assert "s3cr3t-pw" not in result.out + result.err
