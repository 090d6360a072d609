"""Ranges: a connector that cuts a full read into ranges (``ranges`` / ``read_range``) returns,
over all of them, every record a full read returns, each exactly once."""

from __future__ import annotations

import json

import pytest

from runner.connectors.base import ConnectionFailed, Ranges

pytestmark = pytest.mark.contract(read=True, can=("ranges",))


def test_the_ranges_of_a_full_read_hold_each_object_exactly_once(driver):
    objects = [driver.sample(i) for i in range(9)]
    driver.seed(objects)
    cut = driver.connector.ranges(driver.object, driver.partition, 3)
    assert isinstance(cut, Ranges) and 2 <= len(cut.tokens) <= 3, cut
    assert all(isinstance(t, str) and json.dumps(t) for t in cut.tokens)
    ranged = [r for token in cut.tokens
              for page in driver.connector.read_range(driver.object, token, driver.partition, page_size=2)
              for r in page.records]
    whole = driver.records()
    assert sorted(driver.by_key(ranged)) == sorted(driver.by_key(whole)) == sorted(o[driver.harness.key] for o in objects)
    assert {r.anchor: dict(r.attributes) for r in ranged} == {r.anchor: dict(r.attributes) for r in whole}


def test_a_token_the_connector_did_not_make_is_refused(driver):
    driver.seed([driver.sample(0)])
    with pytest.raises(ConnectionFailed):
        list(driver.connector.read_range(driver.object, "not a range", driver.partition))
