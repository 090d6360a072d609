"""Imports run downhill, with no circles.

The layers, top to bottom (docs/architecture.md, "Layers"):

    cli -> distributed -> engine -> state -> mapping -> manifest -> connectors -> helpers

(runner/distributed/, the Celery tasks and their client, sits between the command line and the
engine: it calls the engine as `provision run` does, and only the command line imports it; the
command line's views, report.py, htmlreport.py and progress_view.py, the SCIM endpoint in
runner/serve/ and provision demo's servers in runner/demo/ are at the cli level). A module may import from its own layer or any layer below it, never above; and no two modules import
each other, directly or round a longer circle. Imports inside functions count; those under
`if TYPE_CHECKING:` do not (they never run).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

RUNNER = Path(__file__).resolve().parent.parent / "runner"

LAYERS = ("helpers", "connectors", "manifest", "mapping", "state", "engine", "distributed", "cli")
RANK = {name: rank for rank, name in enumerate(LAYERS)}
CLI_MODULES = {"runner.cli", "runner.__main__", "runner.report", "runner.htmlreport", "runner.progress_view"}
ENTRY_PACKAGES = ("serve", "demo")  # runner/serve/: the SCIM endpoint; runner/demo/: provision demo's servers


def module_name(path: Path) -> str:
    parts = list(path.relative_to(RUNNER.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    if module in CLI_MODULES:
        return "cli"
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in ENTRY_PACKAGES:
        return "cli"
    if len(parts) >= 2 and parts[1] in ("distributed", "engine", "state", "mapping", "manifest", "connectors"):
        return parts[1]  # the package, its __init__ included, and everything under it
    return "helpers"  # the remaining top-level modules: actions, retries, durations, secrets, errors...


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(tree: ast.AST):
    """Every import node that can run: module and function level, not under `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, modules: set[str]):
    """The runner modules one import statement loads, as named (`from a import b` is a.b when b is a module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
        return [name for name in names if name == "runner" or name.startswith("runner.")]
    base = node.module or ""
    if node.level:
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    if base != "runner" and not base.startswith("runner."):
        return []
    found = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        found.append(sub if sub in modules else base)
    return found


@cache
def graph():
    """module -> file, and {module: [(line, imported module), ...]}, for every module under runner/ (read once)."""
    files = {module_name(path): path for path in sorted(RUNNER.rglob("*.py"))}
    modules = set(files)
    edges: dict[str, list[tuple[int, str]]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        out = []
        for node in runtime_imports(tree):
            for target in imported_modules(node, module, path.name == "__init__.py", modules):
                if target != module:
                    out.append((node.lineno, target))
        edges[module] = sorted(set(out))
    return files, edges


def test_imports_never_go_up_a_layer():
    files, edges = graph()
    offenders = []
    for module, imports in edges.items():
        for line, target in imports:
            here, there = layer(module), layer(target)
            if RANK[there] > RANK[here]:
                where = files[module].relative_to(RUNNER.parent).as_posix()
                offenders.append(f"{where}:{line} imports {target} (layer {there} above layer {here})")
    assert not offenders, "imports going up a layer:\n" + "\n".join(sorted(offenders))


def find_cycles(edges: dict[str, list[tuple[int, str]]]) -> list[list[str]]:
    """One circle per strongly connected component of more than one module (Tarjan)."""
    succ = {module: sorted({target for _, target in imports if target in edges}) for module, imports in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0

    for root in sorted(succ):
        if root in index:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(succ[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))

    cycles = []
    for component in components:
        members = set(component)
        start = component[0]
        # shortest path back to start, inside the component (breadth first)
        previous = {start: None}
        queue = [start]
        closing = None
        while queue and closing is None:
            node = queue.pop(0)
            for child in succ[node]:
                if child == start:
                    closing = node
                    break
                if child in members and child not in previous:
                    previous[child] = node
                    queue.append(child)
        path = []
        node = closing
        while node is not None:
            path.append(node)
            node = previous[node]
        path.reverse()
        cycles.append([*path, start])
    return cycles


def test_no_import_cycles():
    files, edges = graph()
    cycles = find_cycles(edges)
    lines = []
    for cycle in cycles:
        steps = []
        for module, target in zip(cycle, cycle[1:], strict=False):
            line = min(line for line, to in edges[module] if to == target)
            steps.append(f"{files[module].relative_to(RUNNER.parent).as_posix()}:{line} imports {target}")
        lines.append(" -> ".join(cycle) + "\n    " + "\n    ".join(steps))
    assert not cycles, "import cycles:\n" + "\n".join(lines)


def test_the_checker_sees_what_it_should():
    """The walk itself: function-level imports count, TYPE_CHECKING ones do not, layers are as documented."""
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from runner.engine import run\n"
        "def f():\n    import runner.state.store\n"
        "    from runner.mapping import names, scope\n"
    )
    modules = {"runner.engine.run", "runner.state.store", "runner.mapping.names", "runner.mapping"}
    found = [
        target
        for node in runtime_imports(tree)
        for target in imported_modules(node, "runner.x", False, modules)
    ]
    assert sorted(found) == ["runner.mapping", "runner.mapping.names", "runner.state.store"]
    assert [layer(m) for m in ("runner.cli", "runner.report", "runner.engine.run", "runner.state",
                               "runner.connectors.ldap.dn", "runner.secrets", "runner", "runner.distributed.tasks")] == [
        "cli", "cli", "engine", "state", "connectors", "helpers", "helpers", "distributed"]
    assert find_cycles({"a": [(1, "b")], "b": [(2, "c")], "c": [(3, "a")], "d": [(1, "a")]}) == [
        ["a", "b", "c", "a"]]
