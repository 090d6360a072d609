"""Concurrent operations: ``max_concurrency`` threads calling ``apply`` at once, as the engine does.

The engine splits a round's operations into one share per thread (never two operations of one
object in different shares) and records each Result once.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.contract(ops="add", read=True, caps="concurrent")


def apply_in_threads(driver, ops):
    """Apply ``ops`` split over ``max_concurrency`` threads that start together; one Result per op."""
    threads = driver.caps.max_concurrency
    shares = [ops[i::threads] for i in range(threads)]
    start = threading.Barrier(threads)

    def run(share):
        start.wait()
        return list(driver.connector.apply(share))

    with ThreadPoolExecutor(threads) as pool:
        results = [r for share in pool.map(run, shares) for r in share]
    return driver.check_results(ops, results)


def test_concurrent_adds_give_one_result_each_and_every_object(driver):
    objects = [driver.sample(i) for i in range(6 * driver.caps.max_concurrency)]
    results = apply_in_threads(driver, [driver.add_op(o) for o in objects])
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert len({r.anchor for r in results}) == len(objects)
    found = driver.by_anchor()
    for result, o in zip(results, objects, strict=True):
        driver.assert_holds(found[result.anchor], o)


@pytest.mark.contract(ops=("update", "delete"))
def test_concurrent_updates_and_deletes_of_different_objects(driver):
    count = 4 * driver.caps.max_concurrency
    anchors = [driver.add(driver.sample(i)) for i in range(count)]
    text = driver.harness.text
    ops = [driver.op("update", anchor=a, attributes={text: f"changed {i}"}) if i % 2 else driver.op("delete", anchor=a)
           for i, a in enumerate(anchors)]
    results = apply_in_threads(driver, ops)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    found = driver.by_anchor()
    assert sorted(found) == sorted(anchors[1::2])
    for i, anchor in enumerate(anchors):
        if i % 2:
            driver.assert_holds(found[anchor], driver.sample(i) | {text: f"changed {i}"})


@pytest.mark.contract(ops="update", caps="multi_valued_deltas", needs="multi")
def test_concurrent_value_additions_to_one_object_lose_nothing(driver):
    """Members added to one group from several threads at once all stay."""
    multi, value = driver.harness.multi, driver.harness.multi_value
    anchor = driver.add(driver.sample(0) | {multi: []})
    ops = [driver.op("update", anchor=anchor, add_values={multi: [value(i)]}) for i in range(4 * driver.caps.max_concurrency)]
    results = apply_in_threads(driver, ops)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    stored = driver.get(anchor).attributes.get(multi)
    assert sorted(stored) == sorted(value(i) for i in range(len(ops)))
