"""Replace (DeleteAddAsReplace): one operation instead of delete + add of the same object."""

from __future__ import annotations

import pytest

from runner.connectors.base import NotFound

pytestmark = pytest.mark.contract(ops=("add", "replace"), read=True, caps="delete_add_as_replace")


def test_a_replace_leaves_one_object_with_the_new_attributes(driver):
    attributes = driver.sample(0)
    old = driver.add(attributes)
    new_attributes = driver.sample(0) | {driver.harness.text: "Replaced", driver.harness.optional: None}
    result = driver.one("replace", anchor=old, name=driver.name(attributes), attributes=new_attributes)
    assert result.ok and result.anchor, result.error
    found = driver.by_anchor()
    assert list(found) == [result.anchor], "the engine links the anchor the replace returns; the old one is gone"
    driver.assert_holds(found[result.anchor], new_attributes)


def test_a_replace_of_an_unknown_anchor_is_not_found(driver):
    result = driver.one("replace", anchor="999999", name=driver.name(driver.sample(0)), attributes=driver.sample(0))
    assert not result.ok and isinstance(result.error, NotFound)
