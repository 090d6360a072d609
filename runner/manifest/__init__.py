"""Read a manifest: YAML with positions -> interpolation -> JSON Schema -> mapping files -> model -> checks.

``load_with_checks(path, checks)`` returns the :class:`Manifest` with its connectors or raises
:class:`ManifestError` carrying every problem found, each with file, line, column and JSON path.
The checks that need the mapping layer (expressions, scope filters) come from above, as
``checks``: load a manifest with :func:`runner.mapping.checks.load`, which passes them.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from runner import secrets
from runner.connectors.base import Connector
from runner.errors import ManifestError, Problem
from runner.manifest import schema
from runner.manifest.checks import connector_problems, semantic_problems
from runner.manifest.model import Manifest, build
from runner.manifest.yamlfile import Located, one_line, read_yaml

__all__ = ["Check", "Loaded", "Manifest", "load_with_checks"]


@dataclass(frozen=True)
class Loaded:
    manifest: Manifest
    connectors: dict[str, Connector]
    located: Located


Check = Callable[[Manifest, Located, dict[str, Connector]], list[Problem]]
"""A semantic check a layer above adds (:func:`runner.mapping.checks.mapping_problems`)."""


def load_with_checks(path: str | Path, checks: Iterable[Check]) -> Loaded:
    """Load and check ``path``; raise ManifestError listing every problem.

    Stages: YAML (syntax, duplicate keys, ``${...}``) -> JSON Schema -> mapping files ->
    connector blocks -> semantic checks (:mod:`runner.manifest.checks`, then each of ``checks``).
    A syntax error stops at once (there is no data); the later stages run on whatever the earlier
    ones did not already complain about, so one ``validate`` shows as much as it can. Semantic
    checks need schema-valid data, so they run only when everything before them was clean.
    """
    path = Path(path)
    display = str(path)
    located = Located()
    located.data = read_yaml(path, located, display=display)
    data = located.data
    problems = list(located.problems)
    if data is None and problems:
        raise _error(problems)
    if not isinstance(data, dict):
        problems.append(Problem(display, 1, 1, "", "a manifest is a mapping with version, name, "
                                "connectors and object_types"))
        raise _error(problems)
    problems += _not_under(schema.problems(schema.load_schema(schema.MANIFEST), data, located), problems)
    problems += _include_mapping_files(data, located, path.parent)
    conn_problems, connectors = connector_problems(data, located, path.parent.resolve(),
                                                   skip={p.path for p in problems})
    problems += conn_problems
    if problems:
        raise _error(problems)
    manifest = build(data, path.resolve())
    problems += semantic_problems(manifest, located, connectors)
    for check in checks:
        problems += check(manifest, located, connectors)
    if problems:
        raise _error(problems)
    return Loaded(manifest, connectors, located)


def _under(path: str, prefix: str) -> bool:
    """True when the JSON path ``path`` is ``prefix`` or inside it."""
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def _not_under(found: list[Problem], earlier: list[Problem]) -> list[Problem]:
    """``found`` without problems at places already reported (a missing variable left "" there)."""
    return [p for p in found if not any(e.path and _under(p.path, e.path) for e in earlier)]


MAX_MESSAGE = 500  # characters: a message quoting a whole rejected block says no more than its start


def _error(problems: list[Problem]) -> ManifestError:
    """One ManifestError; each problem one line, secrets masked, exact repeats dropped.

    A mapping file used by two object types would otherwise report its problems twice.
    Secrets are masked before a long message is cut, so a cut never leaves half a secret.
    """
    unique: dict[tuple[str, int, int, str], Problem] = {}
    for p in problems:
        message = one_line(secrets.redact(p.message))
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + "..."
        file, path = one_line(p.file), one_line(p.path)
        unique.setdefault((file, p.line, p.column, message), replace(p, file=file, path=path, message=message))
    return ManifestError(list(unique.values()))


def _not_a_file(file: Path) -> str | None:
    """Why ``file`` cannot be read as a mapping file, or None when it is a file.

    ``Path.is_file()`` raises for some errors (a name too long, a folder we may not enter).
    """
    try:
        mode = file.stat().st_mode
    except OSError as exc:
        return "not found" if exc.errno in (errno.ENOENT, errno.ENOTDIR) else f"cannot be read ({exc.strerror})"
    except ValueError:  # a NUL in the path
        return "not found"
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    return None if stat.S_ISREG(mode) else "is not a regular file"


def _include_mapping_files(data: dict, located: Located, base_dir: Path) -> list[Problem]:
    """Replace ``mapping: path/to/file.yaml`` by the file's entries, keeping the file's positions."""
    problems: list[Problem] = []
    object_types = data.get("object_types")
    if not isinstance(object_types, list):
        return problems
    for i, ot in enumerate(object_types):
        ref = ot.get("mapping") if isinstance(ot, dict) else None
        if not isinstance(ref, str):
            continue
        at = ("object_types", i, "mapping")
        if not ref.strip():
            problems.append(located.problem(at, "empty mapping file path: give a file (relative to the "
                                                "manifest) or a list of mappings"))
            continue
        file = Path(os.path.normpath(base_dir / ref))
        why = _not_a_file(file)
        if why:
            problems.append(located.problem(at, f"mapping file {why}: {file} (paths are relative to the "
                                                "manifest's folder)"))
            continue
        sub = Located()
        sub.data = read_yaml(file, sub, display=str(file))
        if sub.data is not None or not sub.problems:
            sub.problems += _not_under(schema.problems(schema.load_schema(schema.MAPPING), sub.data, sub),
                                       sub.problems)
        if sub.problems:
            problems += sub.problems
            continue
        ot["mapping"] = sub.data["mapping"]
        for table, source in ((located.positions, sub.positions), (located.key_positions, sub.key_positions)):
            for p, pos in source.items():
                if p[:1] == ("mapping",):
                    table[(*at, *p[1:])] = pos
    return problems
