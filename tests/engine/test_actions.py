"""Actions are one closed vocabulary (runner/actions.py): the engine, the state store and the CLI
name them through the enum, so a misspelt action fails where it is written instead of being a
branch that never runs."""

from __future__ import annotations

import ast
from pathlib import Path

from runner.actions import COUNTED_AS, Action

RUNNER = Path(__file__).resolve().parents[2] / "runner"
USERS = ["engine/export/__init__.py", "engine/export/operations.py", "engine/export/flight.py", "engine/export/record.py", "engine/compute.py", "engine/recovery.py", "engine/safety.py", "engine/reconcile.py",
         "engine/check.py", "state/exports.py", "cli.py"]
VALUES = {a.value for a in Action}


def _action_strings(tree: ast.AST) -> list[int]:
    """Lines comparing an ``action`` (a name or an attribute) with action text, or passing it as text."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            names = [n for n in [node.left, *node.comparators]
                     if isinstance(n, ast.Name) and n.id == "action" or isinstance(n, ast.Attribute) and n.attr == "action"]
            consts = [c for n in node.comparators for c in (n.elts if isinstance(n, ast.Tuple) else [n])
                      if isinstance(c, ast.Constant) and c.value in VALUES]
            if names and consts:
                found.append(node.lineno)
    return found


def test_no_module_names_an_action_as_text():
    offenders = {name: lines for name in USERS
                 if (lines := _action_strings(ast.parse((RUNNER / name).read_text())))}
    assert offenders == {}, offenders


def test_every_action_counts_somewhere_and_compares_equal_to_what_the_store_keeps():
    assert set(COUNTED_AS) == set(Action)
    assert Action("delete_first") is Action.DELETE_FIRST and Action.ADD == "add" and f"{Action.REPLACE}" == "replace"
