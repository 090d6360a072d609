"""Reading what a SCIM tenant holds, as comparable data (managers and members by userName)."""

from __future__ import annotations

from typing import Any

import requests
from servers.scim import TOKEN

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def listing(url: str, endpoint: str) -> list[dict[str, Any]]:
    found, start = [], 1
    while True:
        body = requests.get(f"{url}/{endpoint}", params={"startIndex": start, "count": 500},
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).json()
        found += body.get("Resources", [])
        start += len(body.get("Resources", []))
        if not body.get("Resources") or start > body["totalResults"]:
            return found


def tenant_state(url: str) -> dict[str, Any]:
    users = listing(url, "Users")
    by_id = {u["id"]: u["userName"] for u in users}
    people = {}
    for u in users:
        ext = u.get(ENTERPRISE, {})
        people[u["userName"]] = {
            "externalId": u.get("externalId"), "displayName": u.get("displayName"), "active": u.get("active"),
            "title": u.get("title"), "department": ext.get("department"),
            "manager": by_id.get((ext.get("manager") or {}).get("value")),
            "emails": sorted((e.get("type"), e["value"]) for e in u.get("emails", [])),
        }
    groups = {}
    for g in listing(url, "Groups"):
        assert g["displayName"] not in groups, f"group {g['displayName']} twice"
        groups[g["displayName"]] = {"externalId": g.get("externalId"),
                                    "members": sorted(by_id.get(m["value"], "?" + m["value"]) for m in g.get("members", []))}
    assert len({p["externalId"] for p in people.values()}) == len(people), "a user twice"
    return {"users": people, "groups": groups}
