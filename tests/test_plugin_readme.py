"""The manifest in the example plugin's README validates and runs, as its README says.

A reader copies it to start a plugin of their own: examples/provision-jsondir/README.md, "A
manifest", saved as ``jsondir.yaml`` beside a copy of the sample HR data.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from conftest import REPO

README = REPO / "examples" / "provision-jsondir" / "README.md"


def readme_manifest() -> str:
    found = re.search(r"^## A manifest\n.*?^```yaml\n(.*?)^```", README.read_text(), re.S | re.M)
    assert found, "examples/provision-jsondir/README.md has no ```yaml block under '## A manifest'"
    return found.group(1)


def test_the_readme_manifest_validates_and_runs(provision, tmp_path: Path):
    manifest = tmp_path / "jsondir.yaml"
    manifest.write_text(readme_manifest())
    shutil.copytree(REPO / "manifests" / "data", tmp_path / "data")  # cp -r manifests/data .

    validated = provision("validate", manifest)
    assert validated.code == 0, validated.err
    ran = provision("run", manifest, "--output", "json")
    assert ran.code == 0, ran.err
    people = len((tmp_path / "data" / "people.csv").read_text(encoding="utf-8").splitlines()) - 1
    assert ran.json()["object_types"]["user"]["added"] == people
    assert (tmp_path / "out" / "directory" / "sales" / "uid=E0000001.json").is_file()
