"""Read: a connector that implements ``read`` returns what the system holds, in pages."""

from __future__ import annotations

import pytest

from runner.connectors.base import ConnectionFailed

pytestmark = pytest.mark.contract(read=True)


def test_read_returns_every_object_with_its_attributes(driver):
    objects = [driver.sample(i) for i in range(6)]
    driver.seed(objects)
    found = driver.by_key(driver.records())
    key = driver.harness.key
    assert sorted(found) == sorted(o[key] for o in objects)
    for o in objects:  # multi-valued attributes come back as lists, empty values as None
        driver.assert_holds(found[o[key]], o)


def test_an_object_with_nothing_in_it_reads_as_no_records(driver):
    driver.seed([])
    assert driver.records() == []


def test_reading_twice_returns_the_same_objects(driver):
    driver.seed([driver.sample(i) for i in range(3)])
    first, second = driver.records(), driver.records()
    assert [(r.anchor, dict(r.attributes)) for r in first] == [(r.anchor, dict(r.attributes)) for r in second]


@pytest.mark.contract(needs="page_size")
def test_pages_hold_every_object_exactly_once(connect):
    driver = connect(page_size=2)
    objects = [driver.sample(i) for i in range(7)]
    driver.seed(objects)
    pages = driver.pages()
    assert len(pages) >= 4, "7 objects in pages of 2"
    assert all(len(p.records) <= 2 for p in pages)
    keys = [r.attributes.get(driver.harness.key) for p in pages for r in p.records]
    assert sorted(keys) == sorted(o[driver.harness.key] for o in objects)


def test_a_page_size_given_to_read_bounds_every_page(driver):
    """Interface 2: the engine asks for smaller pages (match rules, memory), whatever the configuration."""
    objects = [driver.sample(i) for i in range(5)]
    driver.seed(objects)
    pages = list(driver.connector.read(driver.object, driver.partition, None, page_size=2))
    assert len(pages) >= 3 and all(len(p.records) <= 2 for p in pages), [len(p.records) for p in pages]
    keys = [r.attributes.get(driver.harness.key) for p in pages for r in p.records]
    assert sorted(keys) == sorted(o[driver.harness.key] for o in objects)


def test_read_for_some_attributes_carries_those_with_their_values(driver):
    """Interface 2: the engine may read only a few attributes (a match rule's). A connector may
    carry more than it is asked for (csv and sql do), never fewer."""
    key, text = driver.harness.key, driver.harness.text
    objects = [driver.sample(i) for i in range(3)]
    driver.seed(objects)
    pages = driver.connector.read(driver.object, driver.partition, None, attributes=[key, text])
    found = driver.by_key(r for p in pages for r in p.records)
    assert sorted(found) == sorted(o[key] for o in objects)
    for o in objects:
        assert (found[o[key]].attributes.get(key), found[o[key]].attributes.get(text)) == (o[key], o[text])


@pytest.mark.contract(needs="break_source")
def test_a_source_that_cannot_be_read_raises_connection_failed(driver):
    """An unreadable source must never look empty: the engine would mark everyone deleted."""
    driver.seed([driver.sample(0)])
    assert len(driver.records()) == 1
    driver.harness.break_source(driver.made, driver.tmp_path)
    with pytest.raises(ConnectionFailed):
        driver.records()
