"""The levels of references an export is cut into when a run fans out: first the objects that
name no other pending object of their type, then those naming only objects of earlier levels, and
so on; what a reference cycle holds (and what names it) comes last, where the export leaves those
references out, as one process does.

A fanned-out run cuts every pending export of a name depth this way in its coordinator, so the
work is kept in arrays of positions into the sorted anchors, not in sets and dicts of strings: at a
million objects those held about 200 MB more (bench/distributed.py, docs/distributed.md).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence

_VISITING, _CYCLIC = -1, -2


def reference_levels(anchors: Sequence[str], references: Iterable[tuple[str, str]]) -> list[list[str]]:
    """``anchors`` (sorted) in levels by ``references`` (anchor, the anchor it names; pairs naming
    something not among ``anchors``, or itself, count for nothing). Each level keeps the sorted
    order; ``[anchors]`` when no reference counts."""
    n = len(anchors)
    first = array("q", [-1]) * n  # the position of the one pending object each names (a report's manager)
    more: dict[int, list[int]] = {}  # the others, for the rare object that names several
    for anchor, ref in references:
        i, j = _position(anchors, anchor), _position(anchors, ref)
        if i < 0 or j < 0 or i == j:
            continue
        if first[i] < 0:
            first[i] = j
        elif first[i] != j:
            more.setdefault(i, []).append(j)
    if not more and max(first, default=-1) < 0:
        return [list(anchors)]
    level = array("q", [0]) * n  # 0: not known yet; > 0: the level; _VISITING, _CYCLIC
    for start in range(n):
        if level[start] == 0:
            _place(start, first, more, level)
    deepest = max((v for v in level if v > 0), default=0)
    out: list[list[str]] = [[] for _ in range(deepest)]
    cyclic: list[str] = []
    for i, v in enumerate(level):
        (cyclic if v == _CYCLIC else out[v - 1]).append(anchors[i])
    return [found for found in out if found] + ([cyclic] if cyclic else [])


def _place(start: int, first: array, more: dict[int, list[int]], level: array) -> None:  # type: ignore[type-arg]
    """Give ``start`` and everything it names, depth first, their level: one more than the
    deepest of what it names; _CYCLIC when that leads round a cycle. Iterative: a management chain
    can be longer than Python's recursion limit."""
    stack = [start]
    while stack:
        k = stack[-1]
        if level[k] > 0 or level[k] == _CYCLIC:
            stack.pop()
            continue
        named = ([first[k]] if first[k] >= 0 else []) + more.get(k, [])
        if level[k] == 0:
            level[k] = _VISITING
            todo = [p for p in named if level[p] == 0]
            if todo:
                stack.extend(todo)
                continue
        stack.pop()
        if any(level[p] in (_VISITING, _CYCLIC) for p in named):
            level[k] = _CYCLIC
        else:
            level[k] = 1 + max((level[p] for p in named), default=0)


def _position(anchors: Sequence[str], anchor: str) -> int:
    i = bisect_left(anchors, anchor)
    return i if i < len(anchors) and anchors[i] == anchor else -1
