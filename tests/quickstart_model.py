"""An independent, in-memory model of what the quickstart pipeline must do, in plain Python.

It reads the same CSV files and says what the target should hold after each run and how many
objects each run must add, update, disable and delete. The engine is checked against it; the
two share no code, so a bug in the engine's mapping, scoping or references shows up as a diff.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

IN_SCOPE = ("active", "leave")


def _read(path: Path, key: str) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return {r[key]: r for r in csv.DictReader(f)}


def _none(value: str) -> str | None:
    return value or None


class QuickstartModel:
    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}   # employee id -> target values (manager as employee id)
        self.groups: dict[str, dict[str, Any]] = {}  # group id -> target values (members as employee ids)

    def step(self, data: Path) -> dict[str, dict[str, int]]:
        """Apply one run over the files in ``data``; return the counts that run must report."""
        people = _read(data / "people.csv", "employee_id")
        groups = _read(data / "groups.csv", "group_id")
        in_scope = {e for e, p in people.items() if p["status"] in IN_SCOPE}
        exists = in_scope | {e for e in self.users if e in people}  # disabled users stay
        counts = {"imported": len(people), "added": 0, "updated": 0, "renamed": 0, "disabled": 0,
                  "deleted": 0, "unchanged": 0, "failed": 0, "out_of_scope": 0}
        users: dict[str, dict[str, Any]] = {}
        for eid, p in people.items():
            before = self.users.get(eid)
            if eid in in_scope:
                now = {
                    "user_name": p["email"].split("@")[0].lower(),
                    "display_name": " ".join(x for x in (p["preferred_name"] or p["first_name"], p["last_name"]) if x),
                    "given_name": _none(p["first_name"]), "family_name": _none(p["last_name"]),
                    "email": _none(p["email"]), "department": _none(p["department"]),
                    "title": _none(p["title"]), "phone": _none(p["phone"]),
                    "manager": p["manager_id"] if p["manager_id"] in exists else None,
                    "active": True,
                }
                key = "added" if before is None else ("updated" if now != before else "unchanged")
                counts[key] += 1
                users[eid] = now
            elif before is not None:  # out of scope: disabled now, or already (counted apart from unchanged)
                counts["disabled" if before["active"] else "out_of_scope"] += 1
                users[eid] = before | {"active": False}
            else:
                counts["out_of_scope"] += 1
        counts["deleted"] = sum(1 for e in self.users if e not in people)
        self.users = users

        gcounts = {"imported": len(groups), "added": 0, "updated": 0, "renamed": 0, "disabled": 0,
                   "deleted": sum(1 for g in self.groups if g not in groups), "unchanged": 0, "failed": 0,
                   "out_of_scope": 0}
        new_groups = {}
        for gid, g in groups.items():
            now = {"name": g["name"], "description": _none(g["description"]),
                   "members": sorted(m for m in g["members"].split(";") if m and m in users)}
            before = self.groups.get(gid)
            gcounts["added" if before is None else ("updated" if now != before else "unchanged")] += 1
            new_groups[gid] = now
        self.groups = new_groups
        return {"user": counts, "group": gcounts}

    def target(self) -> dict[str, Any]:
        """What the target database must hold, in the form tests.conftest.read_app returns."""
        name = {e: u["user_name"] for e, u in self.users.items()}
        users = {}
        for u in self.users.values():
            row = {k: v for k, v in u.items() if k != "manager"}
            row["manager"] = name.get(u["manager"])  # a deleted manager is NULL in the table (ON DELETE SET NULL)
            users[u["user_name"]] = row
        groups = [{"name": g["name"], "description": g["description"], "members": sorted(name[m] for m in g["members"])}
                  for g in self.groups.values()]
        return {"users": users, "groups": sorted(groups, key=lambda g: (g["name"], g["members"]))}
