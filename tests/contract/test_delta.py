"""Delta reads: a watermark on the last page; with it, only what changed since, deletions included."""

from __future__ import annotations

import pytest

from runner.connectors.base import WatermarkExpired

pytestmark = pytest.mark.contract(ops=("add", "update", "delete"), read=True, caps="delta_read")


def test_a_full_read_returns_a_watermark_and_an_unchanged_system_returns_nothing(driver):
    driver.seed([driver.sample(i) for i in range(3)])
    records, watermark = driver.read()
    assert len(records) == 3 and isinstance(watermark, str)
    changes, again = driver.read(watermark)
    assert changes == [] and isinstance(again, str)


def test_after_an_update_only_that_object_comes_back_in_its_new_state(driver):
    anchors = [driver.add(driver.sample(i)) for i in range(3)]
    _, watermark = driver.read()
    text = driver.harness.text
    assert driver.update(anchors[1], attributes={text: "First"}).ok
    assert driver.update(anchors[1], attributes={text: "Second"}).ok
    changes, _ = driver.read(watermark)
    assert [(r.anchor, r.deleted) for r in changes] == [(anchors[1], False)], "each changed object once"
    driver.assert_holds(changes[0], driver.sample(1) | {text: "Second"})


def test_an_add_comes_back(driver):
    driver.add(driver.sample(0))
    _, watermark = driver.read()
    anchor = driver.add(driver.sample(1))
    changes, _ = driver.read(watermark)
    assert [r.anchor for r in changes] == [anchor]
    driver.assert_holds(changes[0], driver.sample(1))


def test_a_delete_comes_back_as_a_deleted_record_with_its_anchor(driver):
    anchors = [driver.add(driver.sample(i)) for i in range(2)]
    _, watermark = driver.read()
    assert driver.one("delete", anchor=anchors[0]).ok
    changes, _ = driver.read(watermark)
    assert [(r.anchor, r.deleted) for r in changes] == [(anchors[0], True)]


def test_watermarks_chain_from_one_delta_read_to_the_next(driver):
    anchors = [driver.add(driver.sample(i)) for i in range(3)]
    _, first = driver.read()
    assert driver.update(anchors[0], attributes={driver.harness.text: "A"}).ok
    changes, second = driver.read(first)
    assert [r.anchor for r in changes] == [anchors[0]]
    assert driver.update(anchors[2], attributes={driver.harness.text: "C"}).ok
    changes, _ = driver.read(second)
    assert [r.anchor for r in changes] == [anchors[2]]


@pytest.mark.contract(needs="page_size")
def test_a_paged_delta_read_returns_each_change_once(connect):
    driver = connect(page_size=2)
    anchors = [driver.add(driver.sample(i)) for i in range(8)]
    _, watermark = driver.read()
    for anchor in anchors[:5]:
        assert driver.update(anchor, attributes={driver.harness.text: "changed"}).ok
    assert driver.one("delete", anchor=anchors[5]).ok
    pages = driver.pages(watermark)
    assert len(pages) >= 3
    changes = [(r.anchor, r.deleted) for p in pages for r in p.records]
    assert sorted(changes) == sorted([(a, False) for a in anchors[:5]] + [(anchors[5], True)])


def test_a_watermark_the_connector_never_returned_is_expired(driver):
    """WatermarkExpired (a pruned change log, a reset journal) makes the engine read everything
    instead; any other error would stop the import every run until someone runs --full."""
    driver.add(driver.sample(0))
    _, watermark = driver.read()
    for unknown in (watermark + "0000", "not-a-watermark"):
        with pytest.raises(WatermarkExpired):
            driver.read(unknown)
    assert len(driver.records()) == 1
