"""Partitions: independent naming contexts with their own objects and their own watermarks."""

from __future__ import annotations

import pytest

from runner.connectors.base import NotFound

pytestmark = pytest.mark.contract(ops="add", read=True, caps="partitions", needs="other_partition")


def test_the_same_name_lives_in_two_partitions_and_each_reads_only_its_own(driver):
    other = driver.harness.other_partition
    here = driver.add(driver.sample(0))
    there = driver.add(driver.sample(0) | {driver.harness.text: "Elsewhere"}, partition=other)
    assert here != there
    assert list(driver.by_anchor()) == [here]
    found = driver.by_anchor(partition=other)
    assert list(found) == [there]
    driver.assert_holds(found[there], driver.sample(0) | {driver.harness.text: "Elsewhere"})


@pytest.mark.contract(ops="update")
def test_an_update_in_the_wrong_partition_is_not_found_and_changes_nothing(driver):
    anchor = driver.add(driver.sample(0))
    result = driver.update(anchor, attributes={driver.harness.text: "x"}, partition=driver.harness.other_partition)
    assert not result.ok and isinstance(result.error, NotFound)
    driver.assert_holds(driver.get(anchor), driver.sample(0))


@pytest.mark.contract(ops="update", caps="delta_read")
def test_each_partition_has_its_own_watermark(driver):
    other = driver.harness.other_partition
    here = driver.add(driver.sample(0))
    there = driver.add(driver.sample(1), partition=other)
    _, mark_here = driver.read()
    _, mark_there = driver.read(partition=other)
    assert driver.update(there, attributes={driver.harness.text: "x"}, partition=other).ok
    assert driver.read(mark_here)[0] == []
    assert [r.anchor for r in driver.read(mark_there, partition=other)[0]] == [there]
    assert driver.update(here, attributes={driver.harness.text: "y"}).ok
    assert [r.anchor for r in driver.read(mark_here)[0]] == [here]
