"""The rest connector's block: its JSON Schema, and the same block read once into plain dataclasses.

An API is described per object type (a collection such as ``users``): where it lives (``path``),
how a record maps to attributes (``body``, a template, see :mod:`.template`), where a record's id
is (``id``, JMESPath), and one call per operation (``list``, ``get``, ``create``, ``update``,
``delete``, optional ``disable``, ``add_member``/``remove_member``). Every call has defaults
derived from ``path`` in the usual REST way (``GET /users``, ``POST /users``, ``PATCH
/users/{id}``, ``DELETE /users/{id}``), so an ordinary API is a few lines. ``paging`` and
``answers`` may be set for the whole connector and overridden per object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.connectors.described import (
    DEFAULT_MAX_SCAN,
    MAX_SCAN_SCHEMA,
    NORMALIZATIONS_SCHEMA,
    OVERLAP_SCHEMA,
    Answers,
    Call,
    Delta,
    ObjectSpec,
    Rule,
    overlap_seconds,
)
from runner.connectors.http import HTTP_PROPERTIES
from runner.connectors.jpath import JMESPATH_SCHEMA
from runner.connectors.paging import DEFAULT_PAGE_SIZE, PAGING_SCHEMA, paging_from

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

_TEMPLATES = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
_STATUSES = {"oneOf": [{"type": "integer", "minimum": 100, "maximum": 599},
                       {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 100, "maximum": 599}}]}
_RULE = {"type": "object", "additionalProperties": False, "minProperties": 1,
         "properties": {"status": _STATUSES,
                        "when": {**JMESPATH_SCHEMA, "description": "true (JMESPath truthy) over the answer's JSON body"}}}
_RULES = {"type": "array", "items": _RULE}

CALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "method": {"enum": list(METHODS)},
        "path": {"type": "string", "minLength": 1,
                 "description": "path template below url: /users/{id}; {attribute} takes a mapped value"},
        "query": {**_TEMPLATES, "description": "query parameters (templates)"},
        "headers": {**_TEMPLATES, "description": "extra headers (templates)"},
        "body": {"description": "the JSON body template (default: the object's body)"},
        "record": {**JMESPATH_SCHEMA, "description": "where the record is in the answer (default: the whole body)"},
        "read_first": {"type": "boolean",
                       "description": "update by PUT: read the record and send it whole with the changes laid over"},
    },
}

DELTA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["param", "field"],
    "properties": {
        "param": {"type": "string", "minLength": 1, "description": "the 'changed since' query parameter"},
        "field": {**JMESPATH_SCHEMA, "description": "a record's change time (ISO 8601 or a number)"},
        "overlap": OVERLAP_SCHEMA,
    },
}

ANSWERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "exists": {**_RULES, "description": "answers meaning 'already exists' (default: 409)"},
        "not_found": {**_RULES, "description": "answers meaning 'not there' (default: 404, 410)"},
        "retry": {**_RULES, "description": "answers worth trying again later (besides 429, 5xx)"},
    },
}

OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "path": {"type": "string", "minLength": 1, "description": "the collection's path (default: /<object>)"},
        "id": {**JMESPATH_SCHEMA, "description": "a record's id (default: id)"},
        "body": {"description": "the record template: where each attribute goes ({attribute} placeholders)"},
        "records": {**JMESPATH_SCHEMA, "description": "the records of a list answer (default: the body, an array)"},
        "list": CALL_SCHEMA, "get": CALL_SCHEMA, "create": CALL_SCHEMA, "update": CALL_SCHEMA,
        "delete": {"oneOf": [CALL_SCHEMA, {"const": False}]},
        "disable": CALL_SCHEMA,
        "add_member": CALL_SCHEMA, "remove_member": CALL_SCHEMA,
        "list_members": {**CALL_SCHEMA, "properties": {
            **CALL_SCHEMA["properties"],
            "records": {**JMESPATH_SCHEMA, "description": "the members in the answer (default: the body, an array)"},
            "values": {**JMESPATH_SCHEMA, "description": "a member's id in one of them (default: the item itself)"}}},
        "member_attribute": {"type": "string", "minLength": 1,
                             "description": "the multi-valued attribute add_member/remove_member manage"},
        "paging": PAGING_SCHEMA,
        "delta": DELTA_SCHEMA,
        "correlate": {"type": "object", "additionalProperties": False, "required": ["query"],
                      "properties": {"path": {"type": "string"}, "query": _TEMPLATES},
                      "description": "a list query that finds an object by mapped values: {email: '{email}'}"},
        "idempotency_header": {"type": "string", "minLength": 1,
                               "description": "send each create's key in this header (Idempotency-Key)"},
        "answers": ANSWERS_SCHEMA,
        "normalizations": NORMALIZATIONS_SCHEMA,
        "max_scan": MAX_SCAN_SCHEMA,
    },
}

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url", "objects"],
    "properties": {
        "type": {"const": "rest"},
        **HTTP_PROPERTIES,
        "page_size": {"type": "integer", "minimum": 1, "default": DEFAULT_PAGE_SIZE},
        "paging": PAGING_SCHEMA,
        "answers": ANSWERS_SCHEMA,
        "idempotency_header": {"type": "string", "minLength": 1},
        "records": {**JMESPATH_SCHEMA, "description": "the records of a list answer, for every object (e.g. data)"},
        "objects": {"type": "object", "minProperties": 1, "additionalProperties": OBJECT_SCHEMA},
    },
}


def _call(raw: Mapping[str, Any] | None, method: str, path: str, body: Any = None) -> Call:
    raw = raw or {}
    chosen = raw.get("method", method)
    return Call(method=chosen, path=raw.get("path", path), query=dict(raw.get("query") or {}),
                headers=dict(raw.get("headers") or {}), body=raw.get("body", body),
                record=raw.get("record", raw.get("records")),
                read_first=bool(raw.get("read_first", chosen == "PUT")), values=raw.get("values"))


def _rules(raw: list[Mapping[str, Any]] | None, default: tuple[Rule, ...]) -> tuple[Rule, ...]:
    if raw is None:
        return default
    out = []
    for r in raw:
        status = r.get("status")
        statuses = frozenset([status] if isinstance(status, int) else status or [])
        out.append(Rule(statuses, r.get("when")))
    return tuple(out)


def _answers(raw: Mapping[str, Any] | None, outer: Mapping[str, Any] | None) -> Answers:
    merged = {**(outer or {}), **(raw or {})}
    return Answers(_rules(merged.get("exists"), (Rule(frozenset({409})),)),
                   _rules(merged.get("not_found"), (Rule(frozenset({404, 410})),)),
                   _rules(merged.get("retry"), ()))


def object_spec(name: str, raw: Mapping[str, Any], config: Mapping[str, Any]) -> ObjectSpec:
    """The object's block with every default filled in from ``path`` and the connector's block."""
    path = str(raw.get("path") or f"/{name}").rstrip("/") or "/"
    item = f"{path}/{{id}}"
    body = raw.get("body")
    delete = raw.get("delete")
    delta = raw.get("delta")
    members = raw.get("member_attribute")
    correlate = raw.get("correlate")
    return ObjectSpec(
        name=name, path=path, id=raw.get("id", "id"), body=body, records=raw.get("records", config.get("records")),
        list=_call(raw.get("list"), "GET", path), get=_call(raw.get("get"), "GET", item),
        create=_call(raw.get("create"), "POST", path, body), update=_call(raw.get("update"), "PATCH", item, body),
        delete=None if delete is False else _call(delete, "DELETE", item),
        disable=_call(raw["disable"], "PATCH", item, body) if "disable" in raw else None,
        add_member=_call(raw["add_member"], "PUT", f"{item}/members/{{member}}") if "add_member" in raw else None,
        remove_member=_call(raw["remove_member"], "DELETE", f"{item}/members/{{member}}")
        if "remove_member" in raw else None,
        list_members=_call(raw["list_members"], "GET", f"{item}/members") if "list_members" in raw else None,
        member_attribute=members,
        paging=paging_from(raw.get("paging"), config.get("paging"), int(config.get("page_size", DEFAULT_PAGE_SIZE))),
        delta=Delta(delta["param"], delta["field"], overlap_seconds(delta.get("overlap"))) if delta else None,
        correlate=_call(correlate, "GET", path) if correlate else None,
        idempotency_header=raw.get("idempotency_header", config.get("idempotency_header")),
        answers=_answers(raw.get("answers"), config.get("answers")),
        normalizations={k: tuple(v) for k, v in (raw.get("normalizations") or {}).items()},
        max_scan=int(raw.get("max_scan", DEFAULT_MAX_SCAN)),
    )
