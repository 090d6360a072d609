"""Paging of list calls: page numbers, offset/limit, cursor tokens, RFC 8288 Link headers, for the
connectors that describe an API in the manifest (rest: query parameters; soap: operation arguments).

A read that stops early loses records, and for a target that the engine reconciles a lost record
looks missing and is created again: so the loop stops only on evidence. An empty page ends it, so
does the total (a body field or a header such as ``X-Total-Count``) once reached, a cursor or next
URL that is absent, empty or seen before. A short page alone does not (many APIs cap the page
size below what was asked). An API that ignores the paging parameters and answers the same page
again is caught (the same first id twice) instead of read forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from runner.connectors.base import ConnectionFailed
from runner.connectors.jpath import JMESPATH_SCHEMA, search

DEFAULT_PAGE_SIZE = 100
PAGING_STYLES = ("none", "page", "offset", "cursor", "link")

PAGING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "style": {"enum": list(PAGING_STYLES), "description": "page number, offset/limit, a cursor token, "
                                                              "RFC 8288 Link headers, or one answer"},
        "size": {"type": "integer", "minimum": 1, "description": "records asked per page"},
        "size_param": {"type": "string", "description": "parameter of the page size (limit, per_page)"},
        "page_param": {"type": "string", "default": "page"},
        "first_page": {"type": "integer", "minimum": 0, "default": 1},
        "offset_param": {"type": "string", "default": "offset"},
        "cursor_param": {"type": "string", "default": "cursor"},
        "next": {**JMESPATH_SCHEMA, "description": "the next page's cursor token, or its URL (style link)"},
        "total": {**JMESPATH_SCHEMA, "description": "the total count in the body"},
        "total_header": {"type": "string", "description": "a header holding the total count (X-Total-Count)"},
    },
}



@dataclass(frozen=True)
class Paging:
    style: str = "none"
    size: int = DEFAULT_PAGE_SIZE
    size_param: str | None = None
    page_param: str = "page"
    first_page: int = 1
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    next: str | None = None
    total: str | None = None
    total_header: str | None = None



def paging_from(raw: Mapping[str, Any] | None, outer: Mapping[str, Any] | None, page_size: int) -> Paging:
    """An object's paging: its own block over the connector's, the connector's page size by default."""
    merged = {**(outer or {}), **(raw or {})}
    return Paging(
        style=merged.get("style", "none"), size=int(merged.get("size", page_size)),
        size_param=merged.get("size_param"), page_param=merged.get("page_param", "page"),
        first_page=int(merged.get("first_page", 1)), offset_param=merged.get("offset_param", "offset"),
        cursor_param=merged.get("cursor_param", "cursor"), next=merged.get("next"), total=merged.get("total"),
        total_header=merged.get("total_header"))



class Answer(Protocol):
    """What the loop reads of an answer besides its body: headers (a total count) and RFC 8288 links."""

    headers: Mapping[str, str]
    links: Mapping[str, Mapping[str, str]]


#: fetch(where, parameters, what) -> (body, answer): ``where`` is a path or the next page's URL (rest),
#: or an operation (soap); parameters are None when ``where`` is a next URL that carries them
GetJson = Callable[[str, Mapping[str, Any] | None, str], tuple[Any, Answer]]

#: where list answers commonly hold their records, tried when the manifest names no ``records``
COMMON_RECORDS = ("data", "items", "results", "records", "value", "Resources", "users", "groups")


def pages(get_json: GetJson, path: str, params: Mapping[str, Any], paging: Paging, records: str | None,
          size: int, *, what: str, first_only: bool = False) -> Iterator[list[Any]]:
    """The records of each page, in order."""
    query = dict(params)
    if paging.size_param:
        query[paging.size_param] = size
    number, offset, seen_total = paging.first_page, 0, 0
    tokens: set[str] = set()
    next_url: str | None = None
    first_ids: set[str] = set()
    while True:
        if paging.style == "page":
            query[paging.page_param] = number
        elif paging.style == "offset":
            query[paging.offset_param] = offset
        body, response = get_json(next_url or path, None if next_url else query, what)
        found = _records(body, records, what)
        yield found
        if first_only or not found or paging.style == "none":
            return
        seen_total += len(found)
        total = _total(body, response, paging)
        if total is not None and seen_total >= total:
            return
        first = repr(found[0])[:200]
        if first in first_ids:
            raise ConnectionFailed(f"{what}: the API answered the same page twice (paging {paging.style!r}): check "
                                   "the paging settings (page_param, offset_param, size_param)")
        first_ids.add(first)
        if paging.style == "page":
            number += 1
        elif paging.style == "offset":
            offset += len(found)
        elif paging.style == "cursor":
            token = search(paging.next, body) if paging.next else None
            if token in (None, "") or str(token) in tokens:
                return
            tokens.add(str(token))
            query[paging.cursor_param] = token
        elif paging.style == "link":
            url = search(paging.next, body) if paging.next else response.links.get("next", {}).get("url")
            if not url or url in tokens:
                return
            tokens.add(url)
            next_url = url


def _records(body: Any, records: str | None, what: str) -> list[Any]:
    if records is not None:
        found = search(records, body)
        if found is None:
            return []
        if not isinstance(found, list):
            raise ConnectionFailed(f"{what}: records {records!r} found no list in the answer: check records")
        return found
    if isinstance(body, list):
        return body
    if isinstance(body, Mapping):
        lists = [k for k in COMMON_RECORDS if isinstance(body.get(k), list)]
        if len(lists) == 1:
            return body[lists[0]]
    keys = ", ".join(list(body)[:8]) if isinstance(body, Mapping) else type(body).__name__
    raise ConnectionFailed(f"{what}: the answer is not a list of records (it holds {keys}): set records, a "
                           "JMESPath to the list (e.g. data)")


def _total(body: Any, response: Answer, paging: Paging) -> int | None:
    value: Any = None
    if paging.total_header:
        value = response.headers.get(paging.total_header)
    elif paging.total:
        value = search(paging.total, body)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
