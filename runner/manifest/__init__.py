"""Load a manifest: YAML with positions -> interpolation -> JSON Schema -> mapping files -> model -> checks.

``load(path)`` returns a :class:`Manifest` or raises :class:`ManifestError` carrying every
problem found, each with file, line, column and JSON path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runner.connectors.base import Connector
from runner.errors import ManifestError, Problem
from runner.manifest import schema
from runner.manifest.checks import connector_problems, semantic_problems
from runner.manifest.model import Manifest, build
from runner.manifest.yamlfile import Located, read_yaml

__all__ = ["Loaded", "Manifest", "load", "load_with_connectors"]


@dataclass(frozen=True)
class Loaded:
    manifest: Manifest
    connectors: dict[str, Connector]
    located: Located


def load(path: str | Path) -> Manifest:
    return load_with_connectors(path).manifest


def load_with_connectors(path: str | Path) -> Loaded:
    """Load and check ``path``; raise ManifestError listing every problem."""
    path = Path(path)
    display = str(path)
    located = Located()
    located.data = read_yaml(path, located, display=display)
    if located.problems:
        raise ManifestError(located.problems)
    data = located.data
    if not isinstance(data, dict):
        raise ManifestError([Problem(display, 1, 1, "", "a manifest is a mapping with version, name, "
                                     "connectors and object_types")])
    problems = schema.problems(schema.load_schema(schema.MANIFEST), data, located)
    if problems:
        raise ManifestError(problems)
    problems += _include_mapping_files(data, located, path.parent)
    conn_problems, connectors = connector_problems(data, located, path.parent.resolve())
    problems += conn_problems
    if problems:
        raise ManifestError(problems)
    manifest = build(data, path.resolve())
    problems += semantic_problems(manifest, located, connectors)
    if problems:
        raise ManifestError(problems)
    return Loaded(manifest, connectors, located)


def _include_mapping_files(data: dict, located: Located, base_dir: Path) -> list[Problem]:
    """Replace ``mapping: path/to/file.yaml`` by the file's entries, keeping the file's positions."""
    problems: list[Problem] = []
    for i, ot in enumerate(data["object_types"]):
        ref = ot.get("mapping")
        if not isinstance(ref, str):
            continue
        at = ("object_types", i, "mapping")
        file = base_dir / ref
        if not file.is_file():
            problems.append(located.problem(at, f"mapping file not found: {file}"))
            continue
        sub = Located()
        sub.data = read_yaml(file, sub, display=str(file))
        if not sub.problems:
            sub.problems += schema.problems(schema.load_schema(schema.MAPPING), sub.data, sub)
        if sub.problems:
            problems += sub.problems
            continue
        ot["mapping"] = sub.data["mapping"]
        for table, source in ((located.positions, sub.positions), (located.key_positions, sub.key_positions)):
            for p, pos in source.items():
                if p[:1] == ("mapping",):
                    table[(*at, *p[1:])] = pos
    return problems
