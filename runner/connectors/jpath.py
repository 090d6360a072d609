"""JMESPath over API answers, each expression compiled once (lists call it for every record)."""

from __future__ import annotations

import functools
from typing import Any

import jmespath

#: JSON Schema of a manifest key holding a JMESPath expression
JMESPATH_SCHEMA = {"type": "string", "minLength": 1, "description": "a JMESPath expression (jmespath.org)"}


@functools.lru_cache(maxsize=256)
def _compiled(expression: str) -> Any:
    return jmespath.compile(expression)


def search(expression: str | None, data: Any) -> Any:
    """``expression`` over ``data`` (None: ``data`` itself)."""
    return data if expression is None else _compiled(expression).search(data)
