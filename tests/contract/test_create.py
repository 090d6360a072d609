"""Create: an add returns the object's anchor, and a read gives the object back under it."""

from __future__ import annotations

import pytest

from runner.connectors.base import ConnectionFailed, ObjectError

pytestmark = pytest.mark.contract(ops="add", read=True)


def test_create_then_read_back(driver):
    attributes = driver.sample(0)
    anchor = driver.add(attributes)
    record = driver.get(anchor)
    driver.assert_holds(record, attributes)
    assert record.anchor == anchor
    assert driver.get(anchor).anchor == anchor, "the anchor is stable from one read to the next"


def test_a_batch_of_adds_gets_one_distinct_anchor_each(driver):
    objects = [driver.sample(i) for i in range(5)]
    results = driver.apply(*(driver.add_op(o) for o in objects))
    assert all(r.ok for r in results), [r.error for r in results]
    anchors = [r.anchor for r in results]
    assert len(set(anchors)) == 5 and all(isinstance(a, str) and a for a in anchors)
    found = driver.by_anchor()
    for anchor, o in zip(anchors, objects, strict=True):
        driver.assert_holds(found[anchor], o)


def test_an_add_that_collides_is_refused_in_its_result(driver):
    first = driver.add(driver.sample(0))
    [again] = driver.apply(driver.add_op(driver.sample(0)))
    assert not again.ok and isinstance(again.error, ObjectError) and not isinstance(again.error, ConnectionFailed), \
        "a duplicate is AlreadyExists (or another ObjectError)"
    assert list(driver.by_anchor()) == [first]


def test_a_collision_inside_one_batch_fails_only_the_second(driver):
    results = driver.apply(driver.add_op(driver.sample(1)), driver.add_op(driver.sample(1)),
                           driver.add_op(driver.sample(2)))
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, ObjectError)
    assert sorted(driver.by_anchor()) == sorted([results[0].anchor, results[2].anchor])


@pytest.mark.contract(caps="hierarchical", needs="container")
def test_a_child_is_created_under_its_parent_and_read_with_its_name(driver):
    _, parent = driver.add_container("people")
    attributes = driver.sample(0)
    name = driver.name(attributes, parent)
    anchor = driver.add(attributes, parent=parent)
    record = driver.get(anchor)
    driver.assert_holds(record, attributes)
    assert driver.same_name(record.name, name)


@pytest.mark.contract(caps="hierarchical", needs="container")
def test_an_add_under_a_missing_parent_fails_in_its_result(driver):
    """The engine creates parents first; a connector says so when one is missing."""
    [result] = driver.apply(driver.add_op(driver.sample(0), parent=driver.harness.container("nowhere")[2]))
    assert not result.ok and isinstance(result.error, ObjectError)
    assert driver.records() == []
