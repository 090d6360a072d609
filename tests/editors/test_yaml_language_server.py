"""What VS Code with the YAML extension shows while a manifest is edited, checked against the language
server that extension runs (yaml-language-server, pinned in tests/servers/node): completion under a
connector and at the top level with the schema's descriptions, hover text, a misspelt key underlined
at its line, and every example file in manifests/ and mappings/ clean, each through the schema named
in its first line, as a fresh clone opens them; then the same through the .vscode/settings.json that
docs/editors.md shows, for files without that line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from runner.manifest import schema

from .lsp import YamlLanguageServer

EDITOR = {"yaml": {"validate": True, "hover": True, "completion": True, "format": {"enable": False},
                   "schemaStore": {"enable": False}}}  # no schemas from the internet: only the modeline's
QUICKSTART = REPO / "manifests" / "quickstart.yaml"
MODELINE = re.compile(r"# yaml-language-server: \$schema=(\S+)\n")


def example_files() -> list[Path]:
    return sorted([*REPO.glob("manifests/*.yaml"), *REPO.glob("mappings/*.yaml")])


def schema_for(path: Path) -> str:
    if path.parent.name == "mappings":
        return schema.MAPPING
    return schema.MAPPING_TESTS if path.name.endswith(".mapping-tests.yaml") else schema.MANIFEST


def described(pointer: str, name: str = schema.MANIFEST) -> dict[str, Any]:
    node: Any = schema.load_schema(name)
    for part in pointer.strip("/").split("/"):
        node = node[part]
    return node


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YamlLanguageServer]:
    log = tmp_path_factory.mktemp("yamlls") / "server.log"
    with YamlLanguageServer.start(REPO, log, EDITOR) as running:
        yield running


def text_of(documentation: str | dict[str, str] | None) -> str:
    """A completion item's documentation: plain text, or MarkupContent."""
    return documentation.get("value", "") if isinstance(documentation, dict) else documentation or ""


def unsaved(name: str) -> Path:
    """An edited buffer's own document in manifests/ (the file need not exist: the first line's
    relative schema path resolves from its folder), so no answer about another buffer is mistaken
    for its own."""
    return REPO / "manifests" / f"{name}.yaml"


def line_of(text: str, start: str) -> int:
    return next(n for n, line in enumerate(text.split("\n")) if line.startswith(start))


def test_every_example_file_names_its_schema_in_its_first_line():
    wrong = []
    for path in example_files():
        found = MODELINE.match(path.read_text(encoding="utf-8"))
        target = (path.parent / found.group(1)).resolve() if found else None
        if target != REPO / "runner" / "schemas" / schema_for(path):
            wrong.append(f"{path.relative_to(REPO)}: first line {found and found.group(0)!r}")
    assert example_files() and not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_every_example_file_is_clean_in_the_editor(server: YamlLanguageServer, path: Path):
    text = path.read_text(encoding="utf-8")
    uri = server.open(path)
    found = server.wait_for_diagnostics(uri)
    assert [(d["range"]["start"]["line"] + 1, d["message"]) for d in found] == []
    # no problem, and not because the server gave up: it knows the file's schema
    shown = server.hover(uri, line_of(text, "version:"), 1)
    assert described("/properties/version", schema_for(path))["description"] in shown


def test_completion_under_a_connector_offers_its_settings_with_their_descriptions(server: YamlLanguageServer):
    text = QUICKSTART.read_text(encoding="utf-8")
    at = line_of(text, "    type: csv") + 1
    lines = text.split("\n")
    lines.insert(at, "    ")  # the cursor on a new line under connectors.hr, as when one starts typing a key
    uri = server.open(unsaved("completion-connector"), "\n".join(lines))
    items = {item["label"]: item for item in server.completion(uri, at, 4)}
    for key in ("delimiter", "encoding", "empty_as_null", "max_cell_lines"):
        assert key in items, sorted(items)
        expected = described(f"/$defs/csv_connector/properties/{key}")["description"]
        assert expected in text_of(items[key].get("documentation")), items[key]
    assert "path" not in items and "type" not in items  # the block has them already


def test_completion_at_the_top_level_offers_the_keys_the_manifest_lacks(server: YamlLanguageServer):
    text = QUICKSTART.read_text(encoding="utf-8") + "\n"
    lines = text.split("\n")
    uri = server.open(unsaved("completion-top"), text)
    items = {item["label"] for item in server.completion(uri, len(lines) - 1, 0)}
    assert {"log_file", "safety", "notify", "tests"} <= items, sorted(items)
    assert not {"version", "name", "connectors"} & items, sorted(items)


def test_hover_shows_the_description_and_an_example(server: YamlLanguageServer):
    text = QUICKSTART.read_text(encoding="utf-8")
    uri = server.open(QUICKSTART)
    shown = server.hover(uri, line_of(text, "state:"), 2)
    assert described("/properties/state")["description"] in shown
    shown = server.hover(uri, line_of(text, "    when_out_of_scope:"), 8)
    assert described("/$defs/object_type/properties/when_out_of_scope")["description"] in shown
    assert "Example" in shown and "disable" in shown.split("Example", 1)[1], shown


def test_a_misspelt_key_is_underlined_at_its_line(server: YamlLanguageServer):
    text = QUICKSTART.read_text(encoding="utf-8").replace("    when_deleted: delete", "    when_delete: delete", 1)
    found = server.wait_for_diagnostics(server.open(unsaved("misspelt"), text))
    assert [(d["range"]["start"]["line"], d["message"]) for d in found] == [
        (line_of(text, "    when_delete:"), "Property when_delete is not allowed.")]


def documented_settings() -> dict[str, Any]:
    """The .vscode/settings.json shown in docs/editors.md (its first ```json block)."""
    doc = (REPO / "docs" / "editors.md").read_text(encoding="utf-8")
    return json.loads(re.search(r"```json\n(.*?)```", doc, re.S).group(1))


def test_the_documented_vscode_settings_give_files_without_the_first_line_their_schema(tmp_path: Path):
    settings = documented_settings()
    editor = {"yaml": {**EDITOR["yaml"], "schemas": settings["yaml.schemas"]}}
    with YamlLanguageServer.start(REPO, tmp_path / "server.log", editor) as server:
        for path in (QUICKSTART, REPO / "manifests" / "quickstart.mapping-tests.yaml",
                     REPO / "mappings" / "group-to-scim-group.yaml"):
            text = MODELINE.sub("", path.read_text(encoding="utf-8"), count=1)
            uri = server.open(path, text)
            assert server.wait_for_diagnostics(uri) == [], path
            shown = server.hover(uri, line_of(text, "version:"), 1)  # each schema says its own thing of it
            assert described("/properties/version", schema_for(path))["description"] in shown, (path, shown)
