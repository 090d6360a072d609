"""The failures of a SCIM request, as exceptions that each become one SCIM error response.

A store (the in-memory one in tests, the pipeline later) and the protocol layer's own parsers raise
these; the app turns them into RFC 7644 §3.12 error responses in one place, so no handler writes an
error body by hand and every error has the same form::

    {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
     "status": "409", "scimType": "uniqueness", "detail": "..."}

``status`` is a string (§3.12: "The HTTP status code ... expressed as a JSON string") and
``scimType`` is set only where §3.12 defines one for that status (400 and 409).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(Exception):
    """A request that cannot be answered with what it asked for; ``status`` is the HTTP status."""

    status: int = 500
    default_type: str | None = None

    def __init__(self, detail: str, *, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.scim_type = scim_type if scim_type is not None else self.default_type

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer carries besides the body (Retry-After for 503)."""
        return {}

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.detail, self.scim_type)


class NotFound(ScimError):
    """No resource of that type has that id (404)."""

    status = 404


class Conflict(ScimError):
    """A value that must be unique is taken: userName among Users, displayName among Groups
    (409, scimType ``uniqueness``: "One or more of the attribute values are already in use or are
    reserved", RFC 7644 §3.12)."""

    status = 409
    default_type = "uniqueness"


class Invalid(ScimError):
    """A request the endpoint will keep refusing: a bad value (``invalidValue``), filter
    (``invalidFilter``), PATCH path (``invalidPath``), body (``invalidSyntax``), a filter that
    selects nothing to change (``noTarget``), or a read-only attribute (``mutability``). 400."""

    status = 400
    default_type = "invalidValue"


class PreconditionFailed(ScimError):
    """``If-Match`` named a version the resource no longer has (RFC 7644 §3.14: 412)."""

    status = 412


class Retry(ScimError):
    """The target behind the store is busy or unreachable for now: 503 with ``Retry-After``, which
    Entra honours by trying the same request again later instead of failing the object."""

    status = 503

    def __init__(self, detail: str = "the target is busy; try again later", *,
                 retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class TargetRejected(ScimError):
    """The target refused the change; its own message becomes the SCIM ``detail`` so that Entra's
    provisioning log shows the reason where the administrator looks (Microsoft: "Invalid values
    should be rejected with a descriptive, actionable error message"). 400 unless the pipeline
    knows better (``status``)."""

    def __init__(self, detail: str, *, status: int = 400, scim_type: str | None = None) -> None:
        super().__init__(detail, scim_type=scim_type if status in (400, 409) else None)
        self.status = status


def error_body(status: int, detail: str | None = None, scim_type: str | None = None) -> dict[str, Any]:
    """An RFC 7644 §3.12 error response body."""
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status)}
    if scim_type:
        body["scimType"] = scim_type
    if detail:
        body["detail"] = detail
    return body


def lookup(mapping: Mapping[str, Any], name: str) -> Any:
    """``mapping[name]`` with the key compared case-insensitively: SCIM attribute names, message
    attributes (``Operations``) included, are case-insensitive (RFC 7643 §2.1)."""
    if name in mapping:
        return mapping[name]
    lower = name.lower()
    return next((v for k, v in mapping.items() if isinstance(k, str) and k.lower() == lower), None)
