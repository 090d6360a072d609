"""Delete: the object is gone; deleting it again is NotFound, reported in the Result, not raised."""

from __future__ import annotations

import pytest

from runner.connectors.base import NotFound

pytestmark = pytest.mark.contract(ops=("add", "delete"), read=True)


def test_a_deleted_object_is_gone_and_the_others_stay(driver):
    anchor = driver.add(driver.sample(0))
    other = driver.add(driver.sample(1))
    result = driver.one("delete", anchor=anchor, name=driver.name(driver.sample(0)))
    assert result.ok, result.error
    assert list(driver.by_anchor()) == [other]
    driver.assert_holds(driver.get(other), driver.sample(1))


def test_a_second_delete_is_not_found_in_its_result(driver):
    """The engine treats NotFound on a delete as done."""
    anchor = driver.add(driver.sample(0))
    assert driver.one("delete", anchor=anchor).ok
    again = driver.one("delete", anchor=anchor)
    assert not again.ok and isinstance(again.error, NotFound)
    never = driver.one("delete", anchor="999999")
    assert not never.ok and isinstance(never.error, NotFound)


def test_an_object_can_be_created_again_after_its_delete(driver):
    attributes = driver.sample(0)
    anchor = driver.add(attributes)
    assert driver.one("delete", anchor=anchor).ok
    again = driver.add(attributes | {driver.harness.text: "Second Life"})
    driver.assert_holds(driver.get(again), attributes | {driver.harness.text: "Second Life"})
    assert len(driver.records()) == 1


@pytest.mark.contract(caps="hierarchical", needs="container")
def test_children_deleted_before_their_parent(driver):
    """The engine deletes children first (deepest names first); then the parent goes too."""
    parent_anchor, parent = driver.add_container("sales")
    children = [driver.add(driver.sample(i), parent=parent) for i in range(2)]
    results = driver.apply(*(driver.op("delete", anchor=a) for a in children))
    assert all(r.ok for r in results), [r.error for r in results]
    object, _, _ = driver.harness.container("sales")
    assert driver.one("delete", object=object, anchor=parent_anchor, name=parent).ok
    assert driver.records() == []
    assert driver.records(object=object) == []
