"""The package carries its JSON Schemas, so `pip install .` works outside the repository."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO


def test_wheel_contains_the_schemas(tmp_path: Path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(REPO)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("provision-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "runner/schemas/manifest.schema.json" in names
    assert "runner/schemas/mapping.schema.json" in names


def test_schema_command_prints_the_shipped_schema(provision):
    result = provision("schema")
    schema = json.loads(result.out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert json.loads((REPO / "schema" / "manifest.schema.json").read_text()) == schema
