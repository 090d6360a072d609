"""`provision schema`: the shipped JSON Schemas printed, or written where an editor's settings point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO

SHIPPED = REPO / "runner" / "schemas"


@pytest.mark.parametrize(("args", "name"), [
    ((), "manifest.schema.json"),
    (("--kind", "manifest"), "manifest.schema.json"),
    (("--kind", "mapping"), "mapping.schema.json"),
    (("--kind", "mapping-tests"), "mapping-tests.schema.json"),
    (("--mapping",), "mapping.schema.json"),
    (("--mapping-tests",), "mapping-tests.schema.json"),
])
def test_each_kind_prints_its_shipped_schema(provision, args: tuple[str, ...], name: str):
    result = provision("schema", *args)
    assert result.code == 0, result.err
    assert result.out == (SHIPPED / name).read_text(encoding="utf-8")


def test_out_writes_the_schema_and_the_one_it_refers_to_beside_it(provision, tmp_path: Path):
    out = tmp_path / ".vscode" / "provision" / "manifest.json"
    result = provision("schema", "--out", out)
    assert result.code == 0, result.err
    beside = out.parent / "mapping-tests.schema.json"  # the manifest's tests: is $ref'd by this file name
    assert result.out.splitlines() == [f"wrote {out}", f"wrote {beside}"]
    assert json.loads(out.read_text()) == json.loads((SHIPPED / "manifest.schema.json").read_text())
    assert beside.read_text() == (SHIPPED / "mapping-tests.schema.json").read_text()


def test_a_mapping_schema_brings_the_manifest_schema_it_refers_to(provision, tmp_path: Path):
    result = provision("schema", "--kind", "mapping", "--out", tmp_path / "mapping.schema.json", "--output", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"written": [str(tmp_path / n) for n in (
        "mapping.schema.json", "manifest.schema.json", "mapping-tests.schema.json")]}


def test_out_refuses_the_name_of_a_schema_it_would_write_beside_it(provision, tmp_path: Path):
    result = provision("schema", "--out", tmp_path / "mapping-tests.schema.json")
    assert result.code == 2
    assert "that name is the file the manifest schema refers to" in result.err
    assert not list(tmp_path.iterdir())


def test_out_into_a_folder_that_cannot_be_written_names_it(provision, tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = provision("schema", "--out", blocker / "schema.json")
    assert result.code == 4
    assert str(blocker) in result.err and "Traceback" not in result.err
