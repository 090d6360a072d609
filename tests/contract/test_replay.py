"""Replay: every operation is safe to apply twice, because the engine sends it again after a crash.

The engine marks each operation in flight before ``apply``. One whose Result a crash lost is
settled on the next run (``runner/engine/recovery.py``): looked up, or simply sent again. So the
second application of an operation must be recognisable and harmless: never a second object,
never a second copy of a value, never an error the engine would take for a real failure.

Each test sends an operation, then the same operation again (same key, next attempt), as the
engine does, and checks what the system holds afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest

from runner.connectors.base import AlreadyExists, NotFound, Operation, Result

from .harness import Driver

pytestmark = pytest.mark.contract(ops="add", read=True)

PASSWORD = "Replay-Secret-4c1d8!"


def twice(driver: Driver, op: Operation) -> tuple[Result, Result]:
    """Apply ``op``, then its replay, each in its own ``apply`` call (a new run sends it again)."""
    [first] = driver.apply(op)
    assert first.ok, f"{op.kind} failed the first time: {type(first.error).__name__}: {first.error}"
    [second] = driver.apply(driver.replay(op))
    return first, second


def assert_accepted(result: Result, op: Operation) -> None:
    assert result.ok, f"a replayed {op.kind} is accepted, not {type(result.error).__name__}: {result.error}"


# ---- add ------------------------------------------------------------------------------------------


def test_a_replayed_add_is_already_exists_or_the_same_object_and_never_a_second_one(driver):
    attributes = driver.sample(0)
    op = driver.add_op(attributes)
    first, second = twice(driver, op)
    if second.ok:  # accepted again: then it must be the object the first add made
        assert driver.connector.can("get") or driver.connector.can("lookup"), (
            "a connector that accepts an add twice must let the engine find the object (get or lookup)")
        assert second.anchor == first.anchor, "a replayed add that is accepted names the object the first made"
    else:
        assert isinstance(second.error, AlreadyExists), (
            f"a replayed add is AlreadyExists (the engine adopts the object), not {type(second.error).__name__}: "
            f"{second.error}")
    found = driver.by_anchor()
    assert list(found) == [first.anchor], f"one object after an add sent twice, not {len(found)}"
    driver.assert_holds(found[first.anchor], attributes)


@pytest.mark.contract(can="lookup")
def test_the_object_of_a_replayed_add_is_found_by_its_correlation(driver):
    """After AlreadyExists the engine looks the object up by its correlation and adopts it."""
    attributes = driver.sample(0)
    first, _ = twice(driver, driver.add_op(attributes))
    stored = driver.get(first.anchor).attributes
    values = {a: stored[a] for a in driver.correlation()}
    assert [r.anchor for r in driver.lookup(values)] == [first.anchor]


@pytest.mark.contract(can="get", caps="hierarchical")
def test_the_object_of_a_replayed_add_is_found_by_its_name(driver):
    """Without correlation attributes the engine finds a hierarchical connector's object by its name."""
    attributes = driver.sample(0)
    op = driver.add_op(attributes)
    first, _ = twice(driver, op)
    found = driver.fetch(name=op.name)
    assert found is not None and found.anchor == first.anchor, f"get(name={op.name!r}) found {found}"


# ---- update and its multi-valued deltas ------------------------------------------------------------


def replayed_end_state(driver: Driver, op: Operation) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the object holds after ``op``, and after ``op`` replayed."""
    first, second = twice(driver, op)
    after_first = dict(driver.get(first.anchor).attributes)
    assert_accepted(second, op)
    assert second.anchor == first.anchor
    return after_first, dict(driver.get(first.anchor).attributes)


@pytest.mark.contract(ops="update")
def test_a_replayed_update_ends_in_the_same_state(driver):
    attributes = driver.sample(0)
    anchor = driver.add(attributes)
    changes = {driver.harness.text: "Changed Twice", driver.harness.optional: None}
    fields: dict[str, Any] = {"attributes": changes}
    multi, value = driver.harness.multi, driver.harness.multi_value
    if multi and driver.caps.multi_valued_deltas:
        fields |= {"add_values": {multi: [value(7)]}, "remove_values": {multi: attributes[multi][:1]}}
        changes = changes | {multi: [*attributes[multi][1:], value(7)]}
    after_first, after_second = replayed_end_state(driver, driver.op("update", anchor=anchor, **fields))
    assert driver.comparable(after_second) == driver.comparable(after_first)
    driver.assert_holds(driver.get(anchor), attributes | changes)


@pytest.mark.contract(ops="update", caps="multi_valued_deltas", needs="multi")
def test_adding_a_value_already_there_succeeds_and_leaves_one_copy(driver):
    multi, value = driver.harness.multi, driver.harness.multi_value
    anchor = driver.add(driver.sample(0) | {multi: [value(1)]})
    op = driver.op("update", anchor=anchor, add_values={multi: [value(1), value(2)]})  # value(1) is there
    _, after = replayed_end_state(driver, op)
    assert sorted(after[multi]) == sorted([value(1), value(2)]), f"each value once: {after[multi]}"


@pytest.mark.contract(ops="update", caps="multi_valued_deltas", needs="multi")
def test_removing_a_value_already_gone_succeeds(driver):
    multi, value = driver.harness.multi, driver.harness.multi_value
    anchor = driver.add(driver.sample(0) | {multi: [value(1), value(2)]})
    op = driver.op("update", anchor=anchor, remove_values={multi: [value(2), value(3)]})  # value(3) never was
    _, after = replayed_end_state(driver, op)
    assert after[multi] == [value(1)]


# ---- disable, set_password --------------------------------------------------------------------------


@pytest.mark.contract(ops="disable", needs="disable")
def test_a_replayed_disable_ends_in_the_same_state(driver):
    attributes = driver.sample(0)
    anchor = driver.add(attributes)
    op = driver.op("disable", anchor=anchor, name=driver.name(attributes), attributes=dict(driver.harness.disable))
    after_first, after_second = replayed_end_state(driver, op)
    assert driver.comparable(after_second) == driver.comparable(after_first)
    driver.assert_holds(driver.get(anchor), attributes | dict(driver.harness.disable))


@pytest.mark.contract(ops="set_password")
def test_a_replayed_set_password_is_accepted_and_keeps_the_password(driver):
    """Passwords cannot be read back, so the engine always sends a set_password in doubt again."""
    attributes = driver.sample(0)
    anchor = driver.add(attributes)
    op = driver.op("set_password", anchor=anchor, name=driver.name(attributes), password=PASSWORD)
    _, second = twice(driver, op)
    assert_accepted(second, op)
    if driver.harness.verify_password:
        assert driver.harness.verify_password(driver.made, driver.tmp_path, anchor, PASSWORD)
    driver.assert_holds(driver.get(anchor), attributes)


# ---- rename ----------------------------------------------------------------------------------------


@pytest.mark.contract(ops="rename")
def test_a_replayed_rename_succeeds_and_leaves_the_new_name(driver):
    attributes = driver.sample(0)
    old = driver.name(attributes)
    anchor = driver.add(attributes)
    new = driver.name(attributes | {driver.harness.key: "renamed"})
    _, second = twice(driver, driver.op("rename", anchor=anchor, name=new, old_name=old))
    assert second.ok and second.anchor == anchor, second.error
    [record] = driver.records()
    assert record.anchor == anchor and driver.same_name(record.name, new), record
    driver.assert_holds(record, attributes)


@pytest.mark.contract(ops="rename")
def test_a_rename_to_the_current_name_succeeds_and_changes_nothing(driver):
    attributes = driver.sample(0)
    name = driver.name(attributes)
    anchor = driver.add(attributes)
    result = driver.one("rename", anchor=anchor, name=name, old_name=name)
    assert result.ok and result.anchor == anchor, f"{type(result.error).__name__}: {result.error}"
    [record] = driver.records()
    assert record.anchor == anchor and driver.same_name(record.name, name)
    driver.assert_holds(record, attributes)


# ---- delete, replace --------------------------------------------------------------------------------


@pytest.mark.contract(ops="delete")
def test_a_replayed_delete_is_not_found_and_the_others_stay(driver):
    """The engine counts NotFound on a delete as done."""
    anchor = driver.add(driver.sample(0))
    other = driver.add(driver.sample(1))
    _, second = twice(driver, driver.op("delete", anchor=anchor, name=driver.name(driver.sample(0))))
    assert not second.ok and isinstance(second.error, NotFound), (
        f"a replayed delete is NotFound, not {type(second.error).__name__}: {second.error}")
    assert list(driver.by_anchor()) == [other]


@pytest.mark.contract(ops="replace", caps="delete_add_as_replace")
def test_a_replayed_replace_is_not_found_or_leaves_one_object(driver):
    """NotFound tells the engine the replaced object is gone; it then finds the new one by name."""
    attributes = driver.sample(0)
    old = driver.add(attributes)
    replaced = attributes | {driver.harness.text: "Replaced"}
    first, second = twice(driver, driver.op("replace", anchor=old, name=driver.name(attributes), attributes=replaced))
    if not second.ok:
        assert isinstance(second.error, NotFound), (
            f"a replayed replace is NotFound or accepted, not {type(second.error).__name__}: {second.error}")
    found = driver.by_anchor()
    assert len(found) == 1, f"one object after a replace sent twice, not {len(found)}"
    assert list(found) == [second.anchor if second.ok else first.anchor]
    driver.assert_holds(next(iter(found.values())), replaced)
