"""Rename and move: the name changes, the anchor stays, and (hierarchical) children move along."""

from __future__ import annotations

import pytest

from runner.connectors.base import NotFound, ObjectError

pytestmark = pytest.mark.contract(ops=("add", "rename"), read=True)


def rename(driver, anchor: str, new: str, old: str | None):
    """A rename as the engine sends it: the new name, the old one, no attribute changes."""
    return driver.one("rename", anchor=anchor, name=new, old_name=old)


def test_a_rename_changes_the_name_and_keeps_the_anchor_and_attributes(driver):
    attributes = driver.sample(0)
    old = driver.name(attributes)
    anchor = driver.add(attributes)
    new = driver.name(attributes | {driver.harness.key: "renamed"})
    result = rename(driver, anchor, new, old)
    assert result.ok, result.error
    assert result.anchor == anchor
    record = driver.get(anchor)
    assert driver.same_name(record.name, new)
    driver.assert_holds(record, attributes)
    assert len(driver.records()) == 1


def test_a_rename_to_a_name_that_is_taken_fails_and_changes_nothing(driver):
    first, second = driver.sample(0), driver.sample(1)
    anchor = driver.add(first)
    driver.add(second)
    result = rename(driver, anchor, driver.name(second), driver.name(first))
    assert not result.ok and isinstance(result.error, ObjectError)
    assert driver.same_name(driver.get(anchor).name, driver.name(first))


def test_a_rename_of_an_unknown_anchor_is_not_found(driver):
    result = rename(driver, "999999", driver.name(driver.sample(0)), None)
    assert not result.ok and isinstance(result.error, NotFound)


@pytest.mark.contract(caps="hierarchical", needs="container")
def test_a_move_to_another_parent_keeps_the_anchor(driver):
    _, sales = driver.add_container("sales")
    _, research = driver.add_container("research")
    attributes = driver.sample(0)
    anchor = driver.add(attributes, parent=sales)
    new = driver.name(attributes, research)
    result = rename(driver, anchor, new, driver.name(attributes, sales))
    assert result.ok and result.anchor == anchor, result.error
    record = driver.get(anchor)
    assert driver.same_name(record.name, new)
    driver.assert_holds(record, attributes)


@pytest.mark.contract(caps="hierarchical", needs="container")
def test_renaming_a_parent_moves_its_children(driver):
    parent_anchor, old_parent = driver.add_container("sales")
    children = [driver.sample(i) for i in range(3)]
    anchors = [driver.add(c, parent=old_parent) for c in children]
    object, _, new_parent = driver.harness.container("revenue")
    result = driver.one("rename", object=object, anchor=parent_anchor, name=new_parent, old_name=old_parent)
    assert result.ok and result.anchor == parent_anchor, result.error
    found = driver.by_anchor()
    assert sorted(found) == sorted(anchors), "the children keep their anchors"
    for anchor, attributes in zip(anchors, children, strict=True):
        assert driver.same_name(found[anchor].name, driver.name(attributes, new_parent))
        driver.assert_holds(found[anchor], attributes)
    # the tree is usable under the new name, and the old one is gone
    driver.add(driver.sample(7), parent=new_parent)
    [orphan] = driver.apply(driver.add_op(driver.sample(8), parent=old_parent))
    assert not orphan.ok and isinstance(orphan.error, ObjectError)
