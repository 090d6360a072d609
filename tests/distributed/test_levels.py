"""The levels a fanned-out export is cut into (runner/distributed/levels.py): the same as the set
by set rounds it replaced, cycles last, in a fraction of the memory."""

from __future__ import annotations

import random
import tracemalloc

from runner.distributed.levels import reference_levels


def by_rounds(anchors: list[str], references: list[tuple[str, str]]) -> list[list[str]]:
    """The rounds the coordinator cut levels with before: plain, and plainly right."""
    pending = set(anchors)
    deps: dict[str, list[str]] = {}
    for anchor, ref in references:
        if anchor in pending and ref in pending and ref != anchor:
            deps.setdefault(anchor, []).append(ref)
    if not deps:
        return [anchors]
    levels, remaining = [], set(anchors)
    while remaining:
        ready = sorted(a for a in remaining if not any(d in remaining for d in deps.get(a, ())))
        if not ready:
            levels.append(sorted(remaining))
            break
        levels.append(ready)
        remaining.difference_update(ready)
    return levels


def graph(n: int, seed: int, cycles: int = 0, extra: int = 0) -> tuple[list[str], list[tuple[str, str]]]:
    """A management tree over n people (some without a manager), ``cycles`` small reference
    cycles, ``extra`` second references, references to people not pending, and to oneself."""
    rng = random.Random(seed)
    anchors = [f"E{i:06d}" for i in range(n)]
    refs = [(anchors[i], anchors[rng.randrange(i)]) for i in range(1, n) if rng.random() > 0.05]
    for _ in range(cycles):
        a, b, c = rng.sample(anchors, 3)
        refs += [(a, b), (b, c), (c, a)]
    refs += [(rng.choice(anchors), rng.choice(anchors)) for _ in range(extra)]
    refs += [(anchors[0], "X-not-pending"), (anchors[1], anchors[1])]
    rng.shuffle(refs)
    return anchors, refs


def test_levels_are_those_of_the_rounds_cycles_last():
    for seed in range(20):
        anchors, refs = graph(400, seed, cycles=seed % 3, extra=seed % 5 * 10)
        assert reference_levels(anchors, refs) == by_rounds(anchors, refs), seed


def test_no_reference_that_counts_is_one_level_and_a_long_chain_is_as_long():
    anchors = [f"A{i:05d}" for i in range(5000)]
    assert reference_levels(anchors, [(anchors[0], anchors[0]), (anchors[3], "gone")]) == [anchors]
    chain = [(anchors[i], anchors[i - 1]) for i in range(1, len(anchors))]  # deeper than the recursion limit
    assert reference_levels(anchors, chain) == [[a] for a in anchors]


def test_a_large_run_is_cut_in_a_fraction_of_the_memory():
    anchors, refs = graph(30_000, 7)
    tracemalloc.start()
    try:
        reference_levels(anchors, refs)
        lean = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        by_rounds(anchors, refs)
        sets = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lean < sets / 3, (lean, sets)  # measured: about a tenth
