"""Text forms of attribute changes, shared by `provision plan` and `provision preview`."""

from __future__ import annotations

import json
from typing import Any


def show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def change_lines(changes: dict[str, Any]) -> list[str]:
    """One line per attribute: ``attr: old -> new``, ``attr: new``, or ``attr: +added -removed``."""
    lines = []
    for attr, change in changes.items():
        if "add" in change or "remove" in change:
            parts = [f"+{show(v)}" for v in change.get("add", [])] + [f"-{show(v)}" for v in change.get("remove", [])]
            lines.append(f"{attr}: {' '.join(parts)}")
        elif "old" in change:
            lines.append(f"{attr}: {show(change['old'])} -> {show(change['new'])}")
        elif change.get("new") is not None:
            lines.append(f"{attr}: {show(change['new'])}")
    return lines
