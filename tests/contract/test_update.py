"""Update and disable: only the attributes sent change; an unknown anchor is NotFound."""

from __future__ import annotations

import pytest

from runner.connectors.base import NotFound

pytestmark = pytest.mark.contract(ops=("add", "update"), read=True)


def test_an_update_changes_only_what_it_sends(driver):
    attributes = driver.sample(0)
    anchor = driver.add(attributes)
    other = driver.add(driver.sample(1))
    text = driver.harness.text
    result = driver.update(anchor, attributes={text: "Changed Name"})
    assert result.ok, result.error
    assert result.anchor == anchor
    found = driver.by_anchor()
    driver.assert_holds(found[anchor], attributes | {text: "Changed Name"})
    driver.assert_holds(found[other], driver.sample(1))


def test_an_update_to_none_clears_the_attribute(driver):
    attributes = driver.sample(0)
    assert attributes[driver.harness.optional] is not None
    anchor = driver.add(attributes)
    assert driver.update(anchor, attributes={driver.harness.optional: None}).ok
    driver.assert_holds(driver.get(anchor), attributes | {driver.harness.optional: None})


@pytest.mark.contract(needs="multi")
def test_a_multi_valued_attribute_set_in_attributes_is_replaced_whole(driver):
    multi, value = driver.harness.multi, driver.harness.multi_value
    attributes = driver.sample(0)
    anchor = driver.add(attributes)
    assert driver.update(anchor, attributes={multi: [value(1), value(2)]}).ok
    driver.assert_holds(driver.get(anchor), attributes | {multi: [value(1), value(2)]})
    assert driver.update(anchor, attributes={multi: []}).ok
    assert not driver.get(anchor).attributes.get(multi), "an empty list leaves no values"


@pytest.mark.contract(caps="multi_valued_deltas", needs="multi")
def test_values_are_added_and_removed_by_difference(driver):
    multi, value = driver.harness.multi, driver.harness.multi_value
    attributes = driver.sample(0) | {multi: [value(1), value(2), value(3)]}
    anchor = driver.add(attributes)
    result = driver.update(anchor, add_values={multi: [value(4), value(5)]}, remove_values={multi: [value(2)]})
    assert result.ok, result.error
    driver.assert_holds(driver.get(anchor), attributes | {multi: [value(1), value(3), value(4), value(5)]})
    # with a scalar change in the same operation
    assert driver.update(anchor, attributes={driver.harness.text: "Both"}, remove_values={multi: [value(1)]}).ok
    driver.assert_holds(driver.get(anchor), attributes | {driver.harness.text: "Both",
                                                          multi: [value(3), value(4), value(5)]})


def test_an_update_of_an_unknown_anchor_is_not_found(driver):
    driver.add(driver.sample(0))
    for missing in ("999999", "no-such-anchor"):
        result = driver.update(missing, attributes={driver.harness.text: "x"})
        assert not result.ok and isinstance(result.error, NotFound), (missing, result.error)


@pytest.mark.contract(ops="delete")
def test_an_update_of_a_deleted_object_is_not_found(driver):
    """The engine drops the link and creates the object again next run."""
    anchor = driver.add(driver.sample(0))
    assert driver.one("delete", anchor=anchor).ok
    result = driver.update(anchor, attributes={driver.harness.text: "x"})
    assert not result.ok and isinstance(result.error, NotFound)


@pytest.mark.contract(caps="multi_valued_deltas", needs="multi")
def test_an_update_of_values_only_for_an_unknown_anchor_is_not_found(driver):
    result = driver.update("999999", add_values={driver.harness.multi: [driver.harness.multi_value(1)]})
    assert not result.ok and isinstance(result.error, NotFound)


@pytest.mark.contract(ops="disable", needs="disable")
def test_disable_sets_its_attributes_and_keeps_the_rest(driver):
    attributes = driver.sample(0)
    anchor = driver.add(attributes)
    result = driver.one("disable", anchor=anchor, attributes=dict(driver.harness.disable))
    assert result.ok and result.anchor == anchor
    driver.assert_holds(driver.get(anchor), attributes | dict(driver.harness.disable))


@pytest.mark.contract(ops="disable", needs="disable")
def test_disable_of_an_unknown_anchor_is_not_found(driver):
    result = driver.one("disable", anchor="999999", attributes=dict(driver.harness.disable))
    assert not result.ok and isinstance(result.error, NotFound)
