"""What validation says about a rest connector's block before anything is sent: templates that name
attributes no mapping produces, JMESPath that does not compile, paging that cannot work."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "manifests").mkdir()
    shutil.copy(REPO / "manifests" / "hr-to-rest.yaml", tmp_path / "manifests")
    shutil.copytree(REPO / "mappings", tmp_path / "mappings")
    monkeypatch.setenv("REST_URL", "http://127.0.0.1:1/api")
    monkeypatch.setenv("REST_TOKEN", "unused")
    return tmp_path / "manifests" / "hr-to-rest.yaml"


def edit(manifest: Path, old: str, new: str) -> None:
    text = manifest.read_text()
    assert old in text
    manifest.write_text(text.replace(old, new, 1))


def test_the_example_is_valid(provision, example):
    result = provision("validate", example)
    assert result.code == 0, result.err


def test_a_template_naming_an_attribute_no_mapping_produces_is_rejected_with_its_line(provision, example):
    edit(example, 'correlate: {query: {externalId: "{externalId}"}}', 'correlate: {query: {mail: "{mail}"}}')
    edit(example, "      groups:\n", '      groups:\n        body: {name: "{name}", owner: "{owner}"}\n')
    result = provision("validate", example)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    at = next(n for n, row in enumerate(example.read_text().splitlines(), 1) if '{mail: "{mail}"}' in row)
    assert any(f":{at}:" in line and "{mail}" in line and "did you mean {email}?" in line for line in lines), lines
    assert any("objects.groups.body" in line and "{owner}" in line for line in lines), lines


def test_bad_jmespath_and_cursor_paging_without_next_are_named(provision, example):
    edit(example, "paging: {style: page, page_param: _page, size_param: _limit, total_header: X-Total-Count}",
         'paging: {style: cursor, size_param: limit}\n    records: "data[?"')
    result = provision("validate", example)
    assert result.code == 2
    assert "connectors.app.paging: paging style cursor needs next" in result.err
    assert "'data[?' is not a JMESPath expression (Incomplete expression)" in result.err
    assert "Traceback" not in result.err


def test_an_unknown_key_in_an_object_block_is_named(provision, example):
    edit(example, "        path: /users\n", "        path: /users\n        paginng: {style: page}\n")
    result = provision("validate", example)
    assert result.code == 2 and "paginng" in result.err, result.err
