"""get and lookup: single objects found without reading the whole target.

Crash recovery asks them whether an operation sent before a kill was applied, and match rules
use them when only a few objects are unlinked (``runner/engine/recovery.py``). A wrong answer
is costly either way: an object said to be missing is added a second time, and one found
where it is not gets linked to the wrong source object. Generated only for connectors that
implement them (``Connector.can``).
"""

from __future__ import annotations

import pytest

from runner.connectors.base import AlreadyExists

from .test_normalization import spellings

pytestmark = pytest.mark.contract(ops="add", read=True)

MISSING = ("999999", "no-such-anchor")  # an anchor of the right form and one of any form


# ---- get by anchor ----------------------------------------------------------------------------------


@pytest.mark.contract(can="get")
def test_get_by_anchor_returns_the_object_as_a_read_does(driver):
    anchors = [driver.add(driver.sample(i)) for i in range(3)]
    record = driver.fetch(anchors[1])
    assert record is not None and record.anchor == anchors[1]
    driver.assert_holds(record, driver.sample(1))
    read = driver.get(anchors[1])
    assert driver.comparable(record.attributes) == driver.comparable(read.attributes), "get and read agree"
    assert driver.same_name(record.name, read.name)


@pytest.mark.contract(can="get")
def test_get_of_an_anchor_that_is_not_there_is_none(driver):
    driver.add(driver.sample(0))
    for missing in MISSING:
        assert driver.fetch(missing) is None, missing


@pytest.mark.contract(ops="delete", can="get")
def test_get_of_a_deleted_object_is_none(driver):
    """Recovery of a delete in doubt: gone counts as done."""
    anchor = driver.add(driver.sample(0))
    assert driver.one("delete", anchor=anchor).ok
    assert driver.fetch(anchor) is None


@pytest.mark.contract(ops="update", can="get")
def test_get_returns_what_the_object_holds_now(driver):
    """Recovery of an update in doubt records what get returns as the truth."""
    anchor = driver.add(driver.sample(0))
    assert driver.update(anchor, attributes={driver.harness.text: "Since Changed"}).ok
    driver.assert_holds(driver.fetch(anchor), driver.sample(0) | {driver.harness.text: "Since Changed"})


# ---- get by name (connectors whose objects have names) --------------------------------------------------


@pytest.mark.contract(can="get", caps="hierarchical")
def test_get_by_name_finds_the_object_whatever_the_spelling(driver):
    """Names compare the way directories compare DNs: case and spaces around commas do not count."""
    attributes = driver.sample(0)
    name = driver.name(attributes)
    anchor = driver.add(attributes)
    driver.add(driver.sample(1))
    for spelling in (name, name.upper(), name.replace("=", " = ").replace(",", " , ")):
        record = driver.fetch(name=spelling)
        assert record is not None and record.anchor == anchor, spelling
        assert driver.same_name(record.name, name)
    assert driver.fetch(name=driver.name(driver.sample(2))) is None


@pytest.mark.contract(can="get", caps="hierarchical", needs="container")
def test_get_by_name_tells_a_child_from_an_object_of_the_same_leaf_elsewhere(driver):
    _, parent = driver.add_container("sales")
    attributes = driver.sample(0)
    child = driver.add(attributes, parent=parent)
    assert driver.fetch(name=driver.name(attributes, parent)).anchor == child
    assert driver.fetch(name=driver.name(attributes)) is None, "the same leaf at the top is another name"


@pytest.mark.contract(ops="rename", can="get", caps="hierarchical")
def test_get_by_name_follows_a_rename(driver):
    attributes = driver.sample(0)
    old = driver.name(attributes)
    anchor = driver.add(attributes)
    new = driver.name(attributes | {driver.harness.key: "renamed"})
    assert driver.one("rename", anchor=anchor, name=new, old_name=old).ok
    assert driver.fetch(name=new).anchor == anchor
    assert driver.fetch(name=old) is None
    assert driver.fetch(anchor).anchor == anchor, "the anchor survives the rename"


# ---- partitions ------------------------------------------------------------------------------------


@pytest.mark.contract(can="get", caps="partitions", needs="other_partition")
def test_get_looks_only_in_the_partition_it_is_given(driver):
    other = driver.harness.other_partition
    here = driver.add(driver.sample(0))
    there = driver.add(driver.sample(0) | {driver.harness.text: "Elsewhere"}, partition=other)
    assert driver.fetch(here, partition=other) is None
    assert driver.fetch(there, partition=other).anchor == there
    assert driver.fetch(there) is None
    if driver.caps.hierarchical:
        name = driver.name(driver.sample(0))
        assert driver.fetch(name=name).anchor == here
        assert driver.fetch(name=name, partition=other).anchor == there


@pytest.mark.contract(can="lookup", caps="partitions", needs="other_partition")
def test_lookup_looks_only_in_the_partition_it_is_given(driver):
    other = driver.harness.other_partition
    key = driver.harness.key
    here = driver.add(driver.sample(0))
    there = driver.add(driver.sample(0), partition=other)
    assert [r.anchor for r in driver.lookup({key: driver.sample(0)[key]})] == [here]
    assert [r.anchor for r in driver.lookup({key: driver.sample(0)[key]}, partition=other)] == [there]


# ---- lookup ----------------------------------------------------------------------------------------


@pytest.mark.contract(can="lookup")
def test_lookup_by_the_key_finds_the_one_object_with_it(driver):
    key = driver.harness.key
    anchors = [driver.add(driver.sample(i)) for i in range(3)]
    [record] = driver.lookup({key: driver.sample(1)[key]})
    assert record.anchor == anchors[1]
    driver.assert_holds(record, driver.sample(1))


@pytest.mark.contract(can="lookup")
def test_lookup_by_several_attributes_needs_every_one_to_match(driver):
    key, text = driver.harness.key, driver.harness.text
    anchor = driver.add(driver.sample(1))
    driver.add(driver.sample(2))
    wanted = {key: driver.sample(1)[key], text: driver.sample(1)[text]}
    assert [r.anchor for r in driver.lookup(wanted)] == [anchor]
    assert driver.lookup(wanted | {text: driver.sample(2)[text]}) == []


@pytest.mark.contract(can="lookup")
def test_lookup_of_a_value_nobody_has_is_empty(driver):
    driver.add(driver.sample(0))
    assert driver.lookup({driver.harness.key: "nobody-has-this"}) == []


@pytest.mark.contract(can="lookup")
def test_lookup_finds_every_object_that_matches(driver):
    """Recovery refuses to adopt when several objects match: it must see all of them."""
    text = driver.harness.text
    anchors = [driver.add(driver.sample(i, **{text: "Shared Name"})) for i in range(3)]
    driver.add(driver.sample(3))
    assert sorted(r.anchor for r in driver.lookup({text: "Shared Name"})) == sorted(anchors)


@pytest.mark.contract(ops="update", can="lookup")
def test_lookup_follows_an_update(driver):
    key, text = driver.harness.key, driver.harness.text
    anchor = driver.add(driver.sample(0))
    assert driver.update(anchor, attributes={text: "Now Different"}).ok
    assert driver.lookup({key: driver.sample(0)[key], text: driver.sample(0)[text]}) == []
    assert [r.anchor for r in driver.lookup({key: driver.sample(0)[key], text: "Now Different"})] == [anchor]


@pytest.mark.contract(ops="delete", can="lookup")
def test_lookup_of_a_deleted_object_is_empty(driver):
    key = driver.harness.key
    anchor = driver.add(driver.sample(0))
    assert driver.one("delete", anchor=anchor).ok
    assert driver.lookup({key: driver.sample(0)[key]}) == []


@pytest.mark.contract(can="lookup", caps="!hierarchical")
def test_lookup_compares_the_key_as_the_system_itself_does(driver):
    """Recovery adopts what lookup finds. Where the system keeps ``user000`` and ``USER000`` apart,
    a lookup that matched both would adopt a stranger for an add that never landed; where the
    system holds them the same (refusing the second), lookup must find the one it refused for.
    (Hierarchical connectors collide on the name first: they are found by name.)"""
    key = driver.harness.key
    first = driver.add(driver.sample(0))
    other_spelling = driver.sample(0)[key].upper()
    [second] = driver.apply(driver.add_op(driver.sample(1) | {key: other_spelling}))
    found = [r.anchor for r in driver.lookup({key: other_spelling})]
    if second.ok:
        assert found == [second.anchor], f"the system keeps {other_spelling!r} apart from the first; lookup must too"
    else:
        assert isinstance(second.error, AlreadyExists), second.error
        assert found == [first], "the system holds the two spellings the same; lookup must find the first"


@pytest.mark.contract(can="lookup", caps="correlation")
def test_lookup_by_the_declared_correlation_finds_the_object(driver):
    """What the engine uses without target.correlate in the manifest."""
    anchor = driver.add(driver.sample(0))
    stored = driver.get(anchor).attributes
    assert [r.anchor for r in driver.lookup({a: stored[a] for a in driver.caps.correlation})] == [anchor]


@pytest.mark.contract(can="lookup")
def test_lookup_compares_values_the_way_the_system_stores_them(driver, normalization):
    """A value sent in another spelling finds the object whose stored value it normalizes to."""
    declared, steps = normalization
    attribute = driver.harness.text if declared == "*" else declared
    base, sent = spellings(driver.harness, attribute, tuple(steps))
    anchor = driver.add(driver.sample(0, **{attribute: base}))
    driver.add(driver.sample(1))
    assert [r.anchor for r in driver.lookup({attribute: sent})] == [anchor], (attribute, sent)
