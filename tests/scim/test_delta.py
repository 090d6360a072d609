"""SCIM as a source: a full read pages with startIndex/count (short pages handled), and with
``delta: true`` a read from a watermark asks for ``meta.lastModified gt`` it and returns only what changed."""

from __future__ import annotations

import pytest

from runner.connectors.base import Operation, WatermarkExpired


def test_a_full_read_pages_through_everything_once(open_scim):
    c = open_scim(page_size=3)
    anchors = [r.anchor for r in c.apply([Operation(i, "add", "Users", attributes={"userName": f"d{i}",
                                                                                   "externalId": f"d{i}"})
                                          for i in range(8)])]
    pages = list(c.read("Users"))
    assert [len(pg.records) for pg in pages] == [3, 3, 2]
    assert sorted(r.anchor for pg in pages for r in pg.records) == sorted(anchors)


def test_a_server_capping_pages_below_the_asked_size_is_read_whole(open_scim):
    c = open_scim(page_size=50)
    c.features = type(c.features)(**{**c.features.__dict__, "max_results": 2})  # as if it announced maxResults 2
    assert all(r.ok for r in c.apply([Operation(i, "add", "Users", attributes={"userName": f"s{i}",
                                                                               "externalId": f"s{i}"})
                                      for i in range(5)]))
    assert sum(len(pg.records) for pg in c.read("Users")) == 5


def test_delta_reads_return_what_changed_since_the_watermark(open_scim):
    c = open_scim(objects={"Users": {"delta": True}, "Groups": {}})
    assert c.capabilities("Users").delta_read
    anchors = [r.anchor for r in c.apply([Operation(i, "add", "Users", attributes={"userName": f"w{i}",
                                                                                   "externalId": f"w{i}"})
                                          for i in range(3)])]
    *_, last = c.read("Users")
    watermark = last.watermark
    assert watermark and [r for pg in c.read("Users", watermark=watermark) for r in pg.records] == []
    assert next(iter(c.apply([Operation(9, "update", "Users", anchor=anchors[1], attributes={"title": "new"})]))).ok
    changed = [r for pg in c.read("Users", watermark=watermark) for r in pg.records]
    assert [(r.anchor, r.attributes.get("title")) for r in changed] == [(anchors[1], "new")]
    with pytest.raises(WatermarkExpired):
        list(c.read("Users", watermark="not-a-time"))
