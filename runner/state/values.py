"""Multi-valued attributes of target objects, one row per value (``target_values``).

A group of 50,000 members changes by the members added and removed: a few row inserts and
deletes, never a rewrite of a 50,000-item list. What the rest of the engine sees is unchanged:
:meth:`Values.with_values` puts the lists back into an object's data when it is read.
Values are stored as JSON text, so a number stays a number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runner.jsontext import loads
from runner.state import tables as t
from runner.state.base import Part, chunks, dumps

Lists = dict[str, list[Any]]


MAX_VALUE = 255  # longer values (rare in multi-valued attributes) keep their list in the object's data


def as_rows(value: Any) -> bool:
    return isinstance(value, list) and all(len(dumps(v)) <= MAX_VALUE for v in value)


def split(data: Mapping[str, Any]) -> tuple[dict[str, Any], Lists]:
    """(what stays in the object's data, multi-valued attributes kept as rows). One pass, and
    only lists looked into: it runs for every object an export records."""
    kept: dict[str, Any] = {}
    lists: Lists = {}
    for k, v in data.items():
        if isinstance(v, list) and as_rows(v):
            lists[k] = v
        else:
            kept[k] = v
    return kept, lists


class Values(Part):
    """``store.values``: the values of multi-valued target attributes, one row each."""

    def load_values(self, type_id: int, anchors: Sequence[str]) -> dict[str, Lists]:
        """target anchor -> attribute -> its values (sorted), for the objects that have any."""
        found: dict[str, Lists] = {}
        for anchor, attribute, value in self.store.rows_in(t.target_values, ("target_anchor", "attribute", "value"),
                                                           "target_anchor", sorted(set(anchors)), type_id=type_id):
            found.setdefault(anchor, {}).setdefault(attribute, []).append(loads(value))
        for lists in found.values():
            for values in lists.values():
                values.sort(key=str)
        return found

    def with_values(self, type_id: int, objects: dict[str, dict[str, Any]], attributes: Sequence[str] = ()) -> None:
        """Put the stored lists back into each object's data (in place); ``attributes`` named
        here are empty lists when no value is stored."""
        lists = self.load_values(type_id, list(objects))
        for anchor, data in objects.items():
            for attr in attributes:
                data.setdefault(attr, [])
            data.update(lists.get(anchor, {}))

    def replace_values(self, type_id: int, lists: Mapping[str, Lists], fresh: bool = False) -> None:
        """Set the named attributes of each target anchor to exactly these values (``fresh``: the
        objects have no stored values yet, nothing to delete first)."""
        tv = t.target_values.c
        for anchor, attrs in lists.items():
            if attrs and not fresh:
                self.conn.execute(t.target_values.delete().where(tv.type_id == type_id, tv.target_anchor == anchor,
                                                                 tv.attribute.in_(list(attrs))))
        self._insert_values(type_id, [(a, attr, v) for a, attrs in lists.items() for attr, vs in attrs.items()
                                      for v in vs])

    def change_values(self, type_id: int, anchor: str, added: Lists, removed: Lists) -> None:
        """Values added to and removed from the multi-valued attributes of one target object."""
        tv = t.target_values.c
        for attr, values in removed.items():
            for part in chunks([dumps(v) for v in values]):
                self.conn.execute(t.target_values.delete().where(tv.type_id == type_id, tv.target_anchor == anchor,
                                                                 tv.attribute == attr, tv.value.in_(part)))
        rows = [(anchor, attr, v) for attr, values in added.items() for v in values]
        if rows:
            for attr, values in added.items():  # a value already there stays one row
                for part in chunks([dumps(v) for v in values]):
                    self.conn.execute(t.target_values.delete().where(
                        tv.type_id == type_id, tv.target_anchor == anchor, tv.attribute == attr, tv.value.in_(part)))
            self._insert_values(type_id, rows)

    def move_values(self, type_id: int, old: str, new: str) -> None:
        """The target object's anchor changed (a key rewritten): its values follow."""
        tv = t.target_values.c
        self.conn.execute(t.target_values.update().where(tv.type_id == type_id, tv.target_anchor == old)
                          .values(target_anchor=new))

    def drop_values(self, type_id: int, anchors: Sequence[str]) -> None:
        tv = t.target_values.c
        for part in chunks(list(anchors)):
            self.conn.execute(t.target_values.delete().where(tv.type_id == type_id, tv.target_anchor.in_(part)))

    def _insert_values(self, type_id: int, rows: Sequence[tuple[str, str, Any]]) -> None:
        unique = {(a, attr, dumps(v)) for a, attr, v in rows}
        self.store.bulk_insert(t.target_values, ("type_id", "target_anchor", "attribute", "value"),
                               [(type_id, a, attr, v) for a, attr, v in unique])
