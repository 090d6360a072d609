"""The soap connector's block: its JSON Schema, and the same block read once into the description's dataclasses.

A SOAP service is described per object type by the WSDL operations that list, get, create, update,
disable, delete it and change its memberships, each with its arguments as a template over mapped
attributes (complex types as nested mappings), and JMESPath over the answer as zeep serialises it
(``zeep.helpers.serialize_object``, arrays unwrapped). Faults are recognised by their code or a
pattern on the fault string.
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
from runner.connectors.http import AUTH_SCHEMA, HTTP_PROPERTIES
from runner.connectors.jpath import JMESPATH_SCHEMA
from runner.connectors.paging import DEFAULT_PAGE_SIZE, PAGING_SCHEMA, paging_from

_RULE = {"type": "object", "additionalProperties": False, "minProperties": 1,
         "properties": {"code": {"type": "string", "minLength": 1,
                                 "description": "the fault code, with or without its prefix (Client.NotFound)"},
                        "message": {"type": "string", "minLength": 1,
                                    "description": "a regular expression the fault string matches"}}}
_RULES = {"type": "array", "items": _RULE}

CALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["operation"],
    "properties": {
        "operation": {"type": "string", "minLength": 1, "description": "the WSDL operation's name"},
        "args": {"type": "object", "description": "the arguments: a template over mapped attributes ({id} is the "
                                                  "object's id, {member} a member's)"},
        "record": {**JMESPATH_SCHEMA, "description": "where the record is in the answer (default: the answer)"},
        "records": {**JMESPATH_SCHEMA, "description": "where the records are in the answer (list_members)"},
        "values": {**JMESPATH_SCHEMA, "description": "list_members: a member's id in one of them"},
    },
}

FAULTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "exists": {**_RULES, "description": "faults meaning 'already exists' (default: a fault string saying "
                                            "'already exists' or 'duplicate')"},
        "not_found": {**_RULES, "description": "faults meaning 'not there' (default: 'not found', 'does not "
                                               "exist', 'no such')"},
        "retry": {**_RULES, "description": "faults worth trying again later (besides Server faults)"},
    },
}

WSSE = {"type": "object", "additionalProperties": False, "required": ["type", "username", "password"],
        "properties": {"type": {"const": "wsse"}, "username": {"type": "string"}, "password": {"type": "string"},
                       "digest": {"type": "boolean", "default": False,
                                  "description": "PasswordDigest instead of PasswordText"}}}

OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["list"],
    "properties": {
        "id": {**JMESPATH_SCHEMA, "description": "a record's id, what {id} is in arguments (default: id)"},
        "body": {"description": "the record template: which attribute a record's field holds (default: the "
                                "fields themselves, nested ones dotted)"},
        "records": {**JMESPATH_SCHEMA, "description": "the records of a list answer (default: the answer, a list)"},
        "list": CALL_SCHEMA, "get": CALL_SCHEMA, "create": CALL_SCHEMA, "update": CALL_SCHEMA,
        "delete": {"oneOf": [CALL_SCHEMA, {"const": False}]},
        "disable": CALL_SCHEMA,
        "add_member": CALL_SCHEMA, "remove_member": CALL_SCHEMA, "list_members": CALL_SCHEMA,
        "member_attribute": {"type": "string", "minLength": 1,
                             "description": "the multi-valued attribute add_member/remove_member manage"},
        "paging": PAGING_SCHEMA,
        "delta": {"type": "object", "additionalProperties": False, "required": ["arg", "field"],
                  "properties": {"arg": {"type": "string", "minLength": 1,
                                         "description": "the list operation's 'modified since' argument"},
                                 "field": {**JMESPATH_SCHEMA, "description": "a record's change time"},
                                 "overlap": OVERLAP_SCHEMA}},
        "correlate": {**CALL_SCHEMA, "description": "a call that finds an object by mapped values (getUser with "
                                                    "{userName}); a fault meaning 'not found' finds none"},
        "faults": FAULTS_SCHEMA,
        "normalizations": NORMALIZATIONS_SCHEMA,
        "max_scan": MAX_SCAN_SCHEMA,
        "clear_as": {"type": ["string", "null"], "default": None,
                     "description": "what an update sends for a value cleared in the source (default: the "
                                    "argument is left out; '' for services that clear a field given empty)"},
    },
}

_HTTP = {k: v for k, v in HTTP_PROPERTIES.items() if k not in ("url", "auth")}

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["wsdl", "objects"],
    "properties": {
        "type": {"const": "soap"},
        "wsdl": {"type": "string", "minLength": 1, "description": "the WSDL's URL, or a file beside the manifest"},
        "service": {"type": "string", "description": "the WSDL service to use (when it has several)"},
        "port": {"type": "string", "description": "the service's port to use (when it has several)"},
        "address": {"type": "string", "description": "the endpoint URL, instead of the WSDL's soap:address"},
        "auth": {"oneOf": [*AUTH_SCHEMA["oneOf"], WSSE]},
        **_HTTP,
        "page_size": {"type": "integer", "minimum": 1, "default": DEFAULT_PAGE_SIZE},
        "paging": PAGING_SCHEMA,
        "faults": FAULTS_SCHEMA,
        "objects": {"type": "object", "minProperties": 1, "additionalProperties": OBJECT_SCHEMA},
    },
}

DEFAULT_EXISTS = (Rule(message=r"(?i)already exists|duplicate"),)
DEFAULT_NOT_FOUND = (Rule(message=r"(?i)not found|does not exist|no such"),)


def _call(raw: Mapping[str, Any] | None) -> Call | None:
    if not raw:
        return None
    return Call(method="SOAP", path=raw["operation"], body=raw.get("args") or {},
                record=raw.get("record", raw.get("records")), values=raw.get("values"))


def _rules(raw: list[Mapping[str, Any]] | None, default: tuple[Rule, ...]) -> tuple[Rule, ...]:
    if raw is None:
        return default
    return tuple(Rule(code=r.get("code"), message=r.get("message")) for r in raw)


NONE = Call(method="SOAP", path="")  # an operation the manifest does not name


def object_spec(name: str, raw: Mapping[str, Any], config: Mapping[str, Any]) -> ObjectSpec:
    """The object's block with its defaults filled in from the connector's block."""
    faults = {**(config.get("faults") or {}), **(raw.get("faults") or {})}
    delta = raw.get("delta")
    delete = raw.get("delete")
    return ObjectSpec(
        name=name, path="", id=raw.get("id", "id"), body=raw.get("body"), records=raw.get("records"),
        list=_call(raw["list"]) or NONE, get=_call(raw.get("get")) or NONE, create=_call(raw.get("create")) or NONE,
        update=_call(raw.get("update")) or NONE, delete=None if delete is False else _call(delete),
        disable=_call(raw.get("disable")), add_member=_call(raw.get("add_member")),
        remove_member=_call(raw.get("remove_member")), list_members=_call(raw.get("list_members")),
        member_attribute=raw.get("member_attribute"),
        paging=paging_from(raw.get("paging"), config.get("paging"), int(config.get("page_size", DEFAULT_PAGE_SIZE))),
        delta=Delta(delta["arg"], delta["field"], overlap_seconds(delta.get("overlap"))) if delta else None,
        correlate=_call(raw.get("correlate")), idempotency_header=None,
        answers=Answers(_rules(faults.get("exists"), DEFAULT_EXISTS), _rules(faults.get("not_found"), DEFAULT_NOT_FOUND),
                        _rules(faults.get("retry"), ())),
        normalizations={k: tuple(v) for k, v in (raw.get("normalizations") or {}).items()},
        max_scan=int(raw.get("max_scan", DEFAULT_MAX_SCAN)),
    )
