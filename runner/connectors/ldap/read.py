"""Reading the directory: paged searches, single entries, and changes since a watermark.

* A full read is one paged search (RFC 2696) per partition: memory stays flat whatever the size.
* A delta read asks the accesslog (``cn=accesslog``, OpenLDAP's slapo-accesslog) for the writes
  whose ``entryCSN`` is newer than the watermark — the partition's ``contextCSN`` when the last
  read began — and then reads the changed entries by ``entryUUID``, paged. Deletes come back
  as deleted records with their entryUUID. Where no accesslog exists, ``modifyTimestamp >=``
  finds adds and changes (deletes need a full read; ``source.full_import_every`` schedules one).
  Changes made by overlays themselves (refint, memberof) are not logged: a periodic full import
  catches those too.
* Every record's anchor is its ``entryUUID`` (RFC 4530): it survives renames and moves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ldap3

from runner.connectors.base import ConnectionFailed, Record, WatermarkExpired
from runner.connectors.ldap import dn as dns
from runner.connectors.ldap.connection import PAGED, describe
from runner.connectors.ldap.layout import UUID, Layout, ObjectView, any_of, equality_filter

ENTRY_ATTRIBUTES = ["*", "entryUUID", "entryCSN", "modifyTimestamp"]
CSN = re.compile(r"^\d{14}\.\d{6}Z#[0-9a-f]{6}#[0-9a-f]{3}#[0-9a-f]{6}$")
TIMESTAMP = re.compile(r"^\d{14}Z$")
ACCESSLOG = "cn=accesslog"
Borrow = Callable[[], Any]  # a context manager lending a connection


def _check(conn: ldap3.Connection, what: str, allow_missing: bool = False) -> bool:
    """Whether the last search succeeded; ConnectionFailed when it failed (never silently empty)."""
    code = conn.result.get("result")
    if code == 0:
        return True
    if code == 32 and allow_missing:
        return False
    raise ConnectionFailed(f"{what}: {describe(conn.result)}")


def paged(conn: ldap3.Connection, base: str, search_filter: str, attributes: Sequence[str], page_size: int,
          scope: Any = ldap3.SUBTREE, allow_missing: bool = False) -> Iterator[list[dict[str, Any]]]:
    """The entries of a paged search (RFC 2696), one list per page."""
    cookie: bytes | None = None
    while True:
        conn.search(base, search_filter, scope, attributes=list(attributes), paged_size=page_size,
                    paged_cookie=cookie)
        if not _check(conn, f"search of {base} for {search_filter}", allow_missing):
            return
        yield [e for e in conn.response if e.get("type") == "searchResEntry"]
        control = (conn.result.get("controls") or {}).get(PAGED)
        cookie = control["value"]["cookie"] if control else None
        if not cookie:
            return


def record(layout: Layout, view: ObjectView, entry: dict[str, Any], base: str) -> Record:
    raw = entry["attributes"]
    anchor = _one(raw.get("entryUUID"))
    version = _one(raw.get("entryCSN"))
    return Record(layout.entry_attributes(view, raw, base), anchor=anchor, name=layout.name_of(entry["dn"], base),
                  partition=base, version=version, location=entry["dn"])


def _one(value: Any) -> str | None:
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return str(value) if value is not None else None


def attributes_for(attributes: Sequence[str] | None) -> list[str]:
    if attributes is None:
        return ENTRY_ATTRIBUTES
    return [*attributes, "entryUUID", "entryCSN", "modifyTimestamp"]


def full(conn: ldap3.Connection, layout: Layout, view: ObjectView, base: str, page_size: int,
         attributes: Sequence[str] | None = None, newest: list[Any] | None = None) -> Iterator[list[Record]]:
    """Every entry of the object type below ``base``; ``newest`` (modifyTimestamp deltas) collects
    the latest modifyTimestamp seen and the entries that carry it."""
    for entries in paged(conn, base, view.filter, attributes_for(attributes), page_size):
        records = [record(layout, view, e, base) for e in entries]
        if newest is not None:
            for e, r in zip(entries, records, strict=True):
                track(newest, _stamp(e["attributes"].get("modifyTimestamp")), r.anchor)
        yield records


# ---- single entries --------------------------------------------------------------------------


def by_uuid(conn: ldap3.Connection, layout: Layout, view: ObjectView, anchor: str, bases: Sequence[str],
            attributes: Sequence[str] = ENTRY_ATTRIBUTES) -> Record | None:
    if not UUID.match(anchor or ""):
        return None
    for base in bases:
        conn.search(base, f"(&{view.filter}(entryUUID={anchor}))", ldap3.SUBTREE, attributes=list(attributes))
        if _check(conn, f"search of {base} for entryUUID {anchor}", allow_missing=True):
            for entry in conn.response:
                if entry.get("type") == "searchResEntry":
                    return record(layout, view, entry, base)
    return None


def locate(conn: ldap3.Connection, anchor: str, bases: Sequence[str]) -> str | None:
    """The DN of the entry with this entryUUID (any object class), or None."""
    if not UUID.match(anchor or ""):
        return None
    for base in bases:
        conn.search(base, f"(entryUUID={anchor})", ldap3.SUBTREE, attributes=["1.1"])
        if _check(conn, f"search of {base} for entryUUID {anchor}", allow_missing=True):
            for entry in conn.response:
                if entry.get("type") == "searchResEntry":
                    return entry["dn"]
    return None


def by_name(conn: ldap3.Connection, layout: Layout, view: ObjectView, name: str, bases: Sequence[str]) -> Record | None:
    for base in bases:
        try:
            target = layout.dn(name, base)
        except dns.BadDN:
            return None
        conn.search(target, view.filter, ldap3.BASE, attributes=ENTRY_ATTRIBUTES)
        code = conn.result.get("result")
        if code in (32, 34):  # no such object, invalid DN syntax
            continue
        _check(conn, f"read of {target}")
        for entry in conn.response:
            if entry.get("type") == "searchResEntry":
                return record(layout, view, entry, base)
    return None


def lookup(conn: ldap3.Connection, layout: Layout, view: ObjectView, values: dict[str, Any],
           bases: Sequence[str], page_size: int) -> list[Record]:
    found: list[Record] = []
    for base in bases:
        search_filter = f"(&{view.filter}{equality_filter(values, layout, base)})"
        for entries in paged(conn, base, search_filter, ENTRY_ATTRIBUTES, page_size, allow_missing=True):
            found.extend(record(layout, view, e, base) for e in entries)
    return found


# ---- delta: the accesslog ----------------------------------------------------------------------


def context_csn(conn: ldap3.Connection, base: str) -> str:
    """The newest change CSN of the partition's database (syncprov keeps it on the suffix entry)."""
    conn.search(base, "(objectClass=*)", ldap3.BASE, attributes=["contextCSN"])
    _check(conn, f"read of {base}'s contextCSN")
    values = conn.response[0]["attributes"].get("contextCSN") if conn.response else None
    values = [str(v) for v in (values or [])]
    return max(values) if values else "0"


def accesslog_delta(conn: ldap3.Connection, layout: Layout, view: ObjectView, base: str, since: str,
                    page_size: int, attributes: Sequence[str] | None) -> Iterator[list[Record]]:
    """Records changed (or deleted) in ``base`` after CSN ``since``, each once, in its current state."""
    last: dict[str, str] = {}  # entryUUID -> the last kind of write (delete or not)
    log_filter = f"(&(objectClass=auditWriteObject)(reqResult=0)(entryCSN>={since}))"
    for entries in paged(conn, ACCESSLOG, log_filter, ["reqType", "reqDN", "reqEntryUUID", "entryCSN"], page_size):
        for e in entries:
            a = e["attributes"]
            if str(_one(a.get("entryCSN"))) <= since:
                continue
            uuid, target = _one(a.get("reqEntryUUID")), _one(a.get("reqDN")) or ""
            if not uuid or not dns.is_under(target, base):
                continue
            last.pop(uuid, None)  # keep the order of the last write
            last[uuid] = str(_one(a.get("reqType")))
    deleted = [u for u, kind in last.items() if kind == "delete"]
    changed = [u for u, kind in last.items() if kind != "delete"]
    for start in range(0, len(deleted), page_size):
        yield [Record({}, anchor=u, partition=base, deleted=True) for u in deleted[start:start + page_size]]
    chunk = max(1, min(page_size, 200))  # filters of a few hundred alternatives at most
    for start in range(0, len(changed), chunk):
        wanted = any_of("entryUUID", changed[start:start + chunk])
        records: list[Record] = []
        for entries in paged(conn, base, f"(&{view.filter}{wanted})", attributes_for(attributes), page_size):
            records.extend(record(layout, view, e, base) for e in entries)
        for at in range(0, len(records), page_size):
            yield records[at:at + page_size]


def check_csn(conn: ldap3.Connection, suffix: str, watermark: str, now: str) -> None:
    """WatermarkExpired when the directory no longer holds what follows ``watermark``.

    The watermark is ``suffix``'s contextCSN when the last read began. A contextCSN now older
    than it means the database went back in time (restored from an older backup, or recreated);
    and when the suffix changed since, the accesslog must still hold a write logged at or before
    the watermark, or the writes between the watermark and its oldest entry were purged unread.
    Either way an accesslog delta would miss changes; a full read does not."""
    if watermark == "0":
        return  # the suffix had no contextCSN at the last read: nothing to compare with
    if not CSN.match(watermark):
        raise WatermarkExpired(f"the stored watermark {watermark!r} for {suffix} is not an OpenLDAP CSN, so not one "
                               "this connector's accesslog reads made")
    if watermark > now:
        raise WatermarkExpired(f"{suffix}'s contextCSN is {now}, older than the stored watermark {watermark}: the "
                               "directory was restored from an older backup or its database recreated")
    if watermark < now and not _log_reaches(conn, watermark):
        raise WatermarkExpired(f"{ACCESSLOG} holds no write logged at or before the stored watermark {watermark}, "
                               f"yet {suffix} changed since (contextCSN {now}): the accesslog was purged past the "
                               "watermark (olcAccessLogPurge, or entries deleted) or started after it, so the "
                               "changes in between cannot be read from it (keep the log longer than the time "
                               "between two runs)")


def _log_reaches(conn: ldap3.Connection, watermark: str) -> bool:
    """Whether the accesslog still holds a write logged at or before ``watermark``. The log keeps
    its entries oldest first, so a search for one (size limit 1) stops at the log's first entry
    when the log reaches back that far: cheap, whatever the log holds."""
    conn.search(ACCESSLOG, f"(&(objectClass=auditWriteObject)(entryCSN<={watermark}))", ldap3.SUBTREE,
                attributes=["1.1"], size_limit=1)
    if conn.result.get("result") not in (0, 4):  # 4: size limit exceeded, an entry was found
        raise ConnectionFailed(f"search of {ACCESSLOG} for writes up to {watermark}: {describe(conn.result)}")
    return any(e.get("type") == "searchResEntry" for e in conn.response)


# ---- delta: modifyTimestamp ------------------------------------------------------------------


def timestamp_delta(conn: ldap3.Connection, layout: Layout, view: ObjectView, base: str, since: str,
                    seen: set[str], page_size: int, attributes: Sequence[str] | None,
                    newest: list[Any]) -> Iterator[list[Record]]:
    """Entries whose modifyTimestamp is at or after ``since``, except those already returned at
    exactly ``since`` (``seen``); ``newest`` collects [timestamp, anchors at it] for the watermark."""
    search_filter = f"(&{view.filter}(modifyTimestamp>={since}))"
    for entries in paged(conn, base, search_filter, attributes_for(attributes), page_size):
        records = []
        for e in entries:
            r = record(layout, view, e, base)
            stamp = _stamp(e["attributes"].get("modifyTimestamp"))
            if stamp == since and r.anchor in seen:
                continue
            track(newest, stamp, r.anchor)
            records.append(r)
        yield records


def track(newest: list[Any], stamp: str | None, anchor: str | None) -> None:
    if not stamp or not anchor:
        return
    if not newest or stamp > newest[0]:
        newest[:] = [stamp, {anchor}]
    elif stamp == newest[0]:
        newest[1].add(anchor)


def _stamp(value: Any) -> str | None:
    value = value[0] if isinstance(value, list | tuple) and value else value
    if value is None:
        return None
    if hasattr(value, "strftime"):
        return value.strftime("%Y%m%d%H%M%SZ")
    return str(value)[:14] + "Z"
