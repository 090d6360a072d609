"""Compatibility profiles: named deviations from RFC 7644 that real SCIM services are known for.

A manifest names one or several in the connector block (``profile: no-patch-value-filters`` or
``profile: [string-booleans, untyped-conflicts]``). The default, ``rfc7644``, assumes the service
follows the RFC. Each deviation is one field of :class:`Profile`, so the connector asks a plain
question (``profile.patch_value_filters``) instead of checking vendor names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """How a service deviates from RFC 7644. Every field at its default is the RFC's behaviour."""

    names: tuple[str, ...] = ("rfc7644",)
    #: PATCH paths may carry value filters (``members[value eq "id"]``, RFC 7644 §3.5.2). When not,
    #: member removals are a read-modify-write: the member list is read, changed and replaced whole
    #: (with If-Match when the service has ETags, so a concurrent change is not lost).
    patch_value_filters: bool = True
    #: booleans travel as the strings "True"/"False" (some services store them so); sent that way,
    #: and read back as booleans for attributes the schema types as boolean.
    booleans_as_strings: bool = False
    #: a 409 without ``scimType`` is a uniqueness conflict (RFC 7644 §3.12 says to send
    #: ``scimType: uniqueness``; without this profile such an answer is an ordinary object error).
    conflict_without_scim_type: bool = False
    #: the service can filter on ``externalId``; when not, lookups by it read the listing and match here.
    filter_external_id: bool = True


PROFILES: dict[str, dict[str, bool]] = {
    "rfc7644": {},
    "no-patch-value-filters": {"patch_value_filters": False},
    "string-booleans": {"booleans_as_strings": True},
    "untyped-conflicts": {"conflict_without_scim_type": True},
    "no-externalid-filter": {"filter_external_id": False},
}

DESCRIPTIONS: dict[str, str] = {
    "rfc7644": "the service follows RFC 7644",
    "no-patch-value-filters": "PATCH paths cannot filter values: member removals are read-modify-write",
    "string-booleans": 'booleans are the strings "True"/"False"',
    "untyped-conflicts": "a 409 without scimType means the object already exists",
    "no-externalid-filter": "no filter on externalId: lookups by it read the listing",
}


def resolve(names: str | Sequence[str] | None) -> Profile:
    """The profile made of ``names`` (one or several); KeyError lists the known names."""
    if names is None:
        return Profile()
    chosen = [names] if isinstance(names, str) else list(names)
    fields: dict[str, bool] = {}
    for name in chosen:
        if name not in PROFILES:
            raise KeyError(f"unknown SCIM profile {name!r}; known: {', '.join(PROFILES)}")
        fields.update(PROFILES[name])
    return dataclasses.replace(Profile(), names=tuple(chosen) or ("rfc7644",), **fields)
