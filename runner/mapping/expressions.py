"""JMESPath expressions over a whole source record, with provision's function library.

Expressions are compiled once per run (parsing costs ~27 µs, see PERF.md). A plain field
reference (``email``) is turned into a dictionary lookup, which is 40x cheaper than a JMESPath
call. :func:`check` walks the parsed tree so unknown functions and wrong argument counts are
reported when the manifest is validated, not halfway through a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath import exceptions as jexc

from runner.mapping.functions import LIBRARY, OPTIONS

Getter = Callable[[dict[str, Any]], Any]


class ExpressionError(ValueError):
    """An expression that cannot be compiled; ``position`` is the 0-based offset in its text."""

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class Expression:
    text: str
    evaluate: Getter


def field_getter(name: str) -> Getter:
    """The fast path for ``source: name`` and for expressions that are a bare field name."""
    return lambda record: record.get(name)


def compile_expression(text: str) -> Expression:
    """Parse and check ``text``; raise ExpressionError with a message a person can act on."""
    try:
        parsed = jmespath.compile(text)
    except jexc.LexerError as exc:
        raise ExpressionError(f"cannot read expression {text!r}: {exc.msg}", exc.lex_position) from None
    except jexc.ParseError as exc:
        raise ExpressionError(
            f"cannot parse expression {text!r} at character {exc.lex_position + 1}: "
            f"{exc.msg if hasattr(exc, 'msg') else exc}", exc.lex_position) from None
    except jexc.JMESPathError as exc:
        raise ExpressionError(f"cannot parse expression {text!r}: {exc}") from None
    check(parsed.parsed)
    node = parsed.parsed
    if node["type"] == "field":
        return Expression(text, field_getter(node["value"]))
    search = parsed.search
    return Expression(text, lambda record: search(record, options=OPTIONS))


def check(node: dict[str, Any]) -> None:
    """Reject unknown functions and wrong argument counts anywhere in a parsed expression."""
    if node.get("type") == "function_expression":
        name = node["value"]
        spec = LIBRARY.FUNCTION_TABLE.get(name)
        if spec is None:
            known = ", ".join(sorted(LIBRARY.FUNCTION_TABLE))
            raise ExpressionError(f"unknown function {name}(); known functions: {known}")
        signature = spec["signature"]
        given = len(node["children"])
        variadic = bool(signature) and signature[-1].get("variadic")
        required = len([s for s in signature if not s.get("optional")])
        if variadic and given < len(signature) or not variadic and not (required <= given <= len(signature)):
            want = f"at least {len(signature)}" if variadic else (
                str(len(signature)) if required == len(signature) else f"{required} to {len(signature)}")
            raise ExpressionError(f"{name}() takes {want} argument{'s' if want != '1' else ''}, got {given}")
    for child in node.get("children", ()):
        if isinstance(child, dict):
            check(child)


def evaluation_error(exc: Exception) -> str:
    """A short reason for a failed evaluation, for the provisioning log."""
    if isinstance(exc, jexc.JMESPathTypeError):
        return (f"{exc.function_name}() got {exc.actual_type} {exc.current_value!r}, "
                f"expected {' or '.join(exc.expected_types)}")
    return str(exc) or type(exc).__name__
