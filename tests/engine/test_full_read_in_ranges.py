"""A full read cut in ranges stamps each object with its range's mark (runner/state/imports.py):
an anchor that two ranges read stops the read as a repeated anchor does; a range read again after
its reader died is not; and what no range read is marked deleted, once, at the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.state.imports import new_read, range_mark
from runner.state.store import DuplicateAnchor, StateStore


def page(*anchors: str) -> list[tuple[str, dict[str, str]]]:
    return [(a, {"id": a}) for a in anchors]


def test_the_marks_of_a_read_in_ranges_tell_a_second_read_of_an_anchor_from_a_range_read_again(tmp_path: Path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}", tmp_path)
    imports, tid = store.imports, store.type_id("ranges", "user")
    imports.begin_full_import(tid)  # an earlier whole read: A, B, C
    imports.import_page(tid, page("A", "B", "C"), full=True)
    imports.finish_full_import(tid)
    store.commit()

    read = new_read()
    first, second = range_mark(read, 0), range_mark(read, 1)
    imports.begin_full_import(tid, first)
    imports.import_page(tid, page("A"), full=True)
    store.commit()  # ... and its reader dies; the range is read again over what it stamped
    imports.begin_full_import(tid, first)
    imports.forget_stamps(tid, first)
    imports.import_page(tid, page("A"), full=True)
    store.commit()

    imports.begin_full_import(tid, second)
    with pytest.raises(DuplicateAnchor):  # A is the first range's: a source with two rows for one anchor
        imports.import_page(tid, page("B", "A"), full=True)
    store.rollback()
    imports.import_page(tid, page("B"), full=True)
    store.commit()

    assert imports.finish_full_import(tid, None, [first, second]) == 1  # C, which no range read
    store.commit()
    assert store.runs.count_present(tid) == 2
    store.close()
