"""Results and errors: one Result per Operation, with its id, and errors that say what to do."""

from __future__ import annotations

import pytest

from runner.connectors.base import ConnectionFailed, ConnectorError, NotFound, ObjectError

pytestmark = pytest.mark.contract(ops="add")


def test_an_empty_batch_gives_no_results(driver):
    assert driver.apply() == []


def test_a_mixed_batch_gives_one_result_per_operation_each_with_its_own_error(driver):
    existing = driver.add(driver.sample(0))
    ops = {"new": driver.add_op(driver.sample(1)), "duplicate": driver.add_op(driver.sample(0))}
    if "update" in driver.caps.operations:
        ops["update missing"] = driver.op("update", anchor="999999", attributes={driver.harness.text: "x"})
        ops["update existing"] = driver.op("update", anchor=existing, attributes={driver.harness.text: "y"})
    if "delete" in driver.caps.operations:
        ops["delete missing"] = driver.op("delete", anchor="999998")
    ops["another new"] = driver.add_op(driver.sample(2))
    results = dict(zip(ops, driver.apply(*ops.values()), strict=True))
    assert {k for k, r in results.items() if r.ok} == {"new", "another new"} | (
        {"update existing"} if "update existing" in ops else set())
    for what, result in results.items():
        if not result.ok:
            assert isinstance(result.error, ConnectorError) and not isinstance(result.error, ConnectionFailed), what
    assert isinstance(results["duplicate"].error, ObjectError)
    for what in ("update missing", "delete missing"):
        if what in results:
            assert isinstance(results[what].error, NotFound), (what, results[what].error)


def test_results_can_be_consumed_lazily(driver):
    """``apply`` may be a generator: the engine iterates it to the end; nothing is lost when it does."""
    ops = [driver.add_op(driver.sample(i)) for i in range(3)]
    results = []
    for result in driver.connector.apply(ops):
        results.append(result)
    assert sorted(r.op_id for r in results) == sorted(op.id for op in ops) and all(r.ok for r in results)
