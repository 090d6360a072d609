"""Partitions: the same tables in several schemas (PostgreSQL), databases (MariaDB) or attached
files (SQLite), served by one connector; each read, watermark and write stays in its own."""

from __future__ import annotations

import sqlalchemy as sa

from runner.connectors.base import NotFound

from .conftest import Database, apply, op, read_all

DDL = "CREATE TABLE {p}.people (pid VARCHAR(16) NOT NULL PRIMARY KEY, name VARCHAR(64), version INTEGER)"


def test_each_partition_is_read_and_written_on_its_own(db: Database):
    config: dict = {"partitions": ["eu", "us"]}
    if db.dialect == "sqlite":
        config |= {"attach": {"eu": "eu.db", "us": "us.db"}, "create": True}
        for name in ("eu", "us"):
            engine = sa.create_engine(f"sqlite:///{db.tmp_path / f'{name}.db'}")
            with engine.begin() as conn:
                conn.exec_driver_sql(DDL.replace("{p}.", ""))
            engine.dispose()
    else:
        for name in ("eu", "us"):
            db.make_partition(name)
            db.execute(DDL.format(p=name))
    objects = {"people": {"table": "people", "key": "pid", "delta": {"watermark": "version"}}}
    with db.connector(objects, **config) as connector:
        assert connector.capabilities("people").partitions
        for partition in ("eu", "us"):  # the same key in both
            [added] = apply(connector, _op("add", partition, attributes={"pid": "P1", "name": f"in {partition}",
                                                                         "version": 1}))
            assert added.ok, added.error
        marks = {}
        for partition in ("eu", "us"):
            records, marks[partition], _ = read_all(connector, "people", partition=partition)
            assert [(r.anchor, r.attributes["name"], r.partition) for r in records] == [("P1", f"in {partition}",
                                                                                         partition)]
        [moved] = apply(connector, _op("update", "eu", anchor="P1", attributes={"name": "changed", "version": 2}))
        assert moved.ok
        assert [r.attributes["name"] for r in read_all(connector, "people", marks["eu"], partition="eu")[0]] == ["changed"]
        assert read_all(connector, "people", marks["us"], partition="us")[0] == []  # a watermark per partition
        [wrong] = apply(connector, _op("delete", "us", anchor="P2"))
        assert isinstance(wrong.error, NotFound)
        [unknown] = apply(connector, _op("delete", "asia", anchor="P1"))
        assert not unknown.ok and "no partition 'asia'" in str(unknown.error)
        [info] = [o for o in connector.discover() if o.name == "people"]
        assert list(info.partitions) == ["eu", "us"]


def _op(kind: str, partition: str, **fields):
    return op(kind, "people", partition=partition, **fields)
