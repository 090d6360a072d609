"""JMESPath expressions over a whole source record, with provision's function library.

Expressions are compiled once per run (parsing costs ~27 µs, see PERF.md). A plain field
reference (``email``) is turned into a dictionary lookup, which is 40x cheaper than a JMESPath
call; everything else is evaluated by one shared interpreter (no per-call set-up).
:func:`check` walks the parsed tree so unknown functions, wrong argument counts and bad literal
arguments are reported when the manifest is validated, not halfway through a run.

Two conveniences on top of standard JMESPath, so expressions read the way people write them:
a bare number is a number literal (``left(name, 3)``, not ``left(name, `3`)``), and bare
``true``, ``false`` and ``null`` (and Entra's ``vbBinaryCompare``/``vbTextCompare``) are literals
(a field with one of those names can still be read as ``"true"``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jmespath import ast
from jmespath import exceptions as jexc
from jmespath import parser as jparser
from jmespath.visitor import TreeInterpreter

from runner.mapping.functions import NOT_LITERAL, OPTIONS, SPECS, VOLATILE, check_literals, suggest

Getter = Callable[[dict[str, Any]], Any]

_KEYWORDS = {"true": True, "false": False, "null": None,
             # Entra's InStr compare modes, so a pasted InStr(..., vbTextCompare) means what it says
             "vbBinaryCompare": "binary", "vbTextCompare": "text"}
_ARTICLE = {"string": "a string", "number": "a number", "boolean": "a boolean (true or false)",
            "array": "a list", "object": "an object", "null": "null", "expref": "an &expression"}
_PY_TYPES = {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
             dict: "object", type(None): "null"}
# Syntax whose JMESPath type is known before evaluation: [a, b] is a list, {k: v} an object.
_BUILT_TYPES = {"multi_select_list": ("array", "a list [...]"), "multi_select_dict": ("object", "an object {...}")}
REFERENCE = "docs/mapping-functions.md"
_VB_HEX = re.compile(r"[hH][0-9a-fA-F]+")
OUTERMOST_ONLY = frozenset({"ignore_flow_if_null_or_empty", "select_unique_value"})
SENSITIVE = frozenset({"redact"})


class ExpressionError(ValueError):
    """An expression that cannot be compiled; ``position`` is the 0-based offset in its text."""

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class Expression:
    text: str
    evaluate: Getter
    functions: frozenset[str] = frozenset()
    """Names of the functions the expression calls."""
    ignore_flow: bool = False
    """The expression is ``ignore_flow_if_null_or_empty(...)``: a null or empty result means
    "leave the attribute out of the export", not "clear it"."""

    @property
    def sensitive(self) -> bool:
        """The expression calls redact(): treat the attribute as sensitive."""
        return not SENSITIVE.isdisjoint(self.functions)

    @property
    def unique(self) -> bool:
        """The expression is select_unique_value(...): the engine picks a value free in the target."""
        return "select_unique_value" in self.functions

    @property
    def volatile(self) -> bool:
        """The result changes between evaluations (now, guid, random_string): map on create only."""
        return not VOLATILE.isdisjoint(self.functions)


class _Parser(jparser.Parser):
    """JMESPath's parser with bare numbers and true/false/null as literals."""

    _CACHE: dict[str, Any] = {}  # not the base class's: the same text parses differently here

    def _token_nud_number(self, token: dict[str, Any]) -> dict[str, Any]:
        return ast.literal(token["value"])

    def _token_nud_lbracket(self, token: dict[str, Any]) -> dict[str, Any]:
        if self._current_token() == "number" and self._lookahead(1) == "comma":
            return self._parse_multi_select_list()  # [1, 2] is a list, [1] an index
        result: dict[str, Any] = super()._token_nud_lbracket(token)
        return result

    def _token_nud_unquoted_identifier(self, token: dict[str, Any]) -> dict[str, Any]:
        name = token["value"]
        after_dot = self._index >= 2 and self._tokens[self._index - 2]["type"] == "dot"
        if name in _KEYWORDS and not after_dot and self._current_token() != "lparen":
            return ast.literal(_KEYWORDS[name])
        return ast.field(name)


_INTERPRETER = TreeInterpreter(OPTIONS)
_FUNCTIONS = OPTIONS.custom_functions  # the interpreter's functions, called by compiled expressions too


def field_getter(name: str) -> Getter:
    """The fast path for ``source: name`` and for expressions that are a bare field name."""
    return lambda record: record.get(name)


def parse(text: str) -> dict[str, Any]:
    """The checked syntax tree of ``text``; raises ExpressionError."""
    try:
        parsed = _Parser().parse(text)
    except jexc.LexerError as exc:
        raise ExpressionError(f"cannot read expression {text!r}: {exc.msg}", exc.lex_position) from None
    except jexc.ParseError as exc:
        raise ExpressionError(
            f"cannot parse expression {text!r} at character {exc.lex_position + 1}: "
            f"{exc.msg if hasattr(exc, 'msg') else exc}", exc.lex_position) from None
    except jexc.JMESPathError as exc:
        raise ExpressionError(f"cannot parse expression {text!r}: {exc}") from None
    node: dict[str, Any] = parsed.parsed
    return node


def compile_expression(text: str) -> Expression:
    """Parse and check ``text``; raise ExpressionError with a message a person can act on."""
    node = parse(text)
    used: set[str] = set()
    check(node, used=used)
    if node["type"] == "field":
        return Expression(text, field_getter(node["value"]))
    if node["type"] == "literal":
        constant = node["value"]
        return Expression(text, lambda record: constant)
    ignore_flow = node["type"] == "function_expression" and node["value"] == "ignore_flow_if_null_or_empty"
    return Expression(text, _compiled(node), frozenset(used), ignore_flow)


def _compiled(node: dict[str, Any]) -> Getter:
    """The expression as nested Python functions, each doing what JMESPath's interpreter does for
    its kind of node (jmespath/visitor.py): fields, literals, calls, indexes and lists, the bulk
    of mappings, no longer walk the tree and look each node's method up on every record (a
    tenth of the time an initial cycle spends mapping). Any other kind of node is handed to the
    interpreter whole."""
    kind, children = node["type"], node.get("children", [])
    if kind == "field":
        name = node["value"]

        def field(value: Any) -> Any:
            try:
                return value.get(name)
            except AttributeError:
                return None
        return field
    if kind == "literal":
        constant = node["value"]
        return lambda value: constant
    if kind == "current":
        return lambda value: value
    if kind == "function_expression" and not any(c["type"] == "expref" for c in children):
        name, args, call = node["value"], [_compiled(c) for c in children], _FUNCTIONS.call_function
        return lambda value: call(name, [arg(value) for arg in args])
    if kind in ("subexpression", "index_expression"):
        steps = [_compiled(c) for c in children]

        def chain(value: Any) -> Any:
            for step in steps:
                value = step(value)
            return value
        return chain
    if kind == "index":
        position = node["value"]

        def index(value: Any) -> Any:
            if not isinstance(value, list):
                return None
            try:
                return value[position]
            except IndexError:
                return None
        return index
    if kind == "multi_select_list":
        items = [_compiled(c) for c in children]
        return lambda value: None if value is None else [item(value) for item in items]
    visit = _INTERPRETER.visit
    return lambda value: visit(node, value)


def _describe(types: tuple[str, ...]) -> str:
    names = list(dict.fromkeys(_ARTICLE.get(t.partition("-")[0], t) for t in types))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _literal_type(value: Any) -> str:
    return _PY_TYPES.get(type(value), "object")


def _shown(value: Any) -> str:
    return "null" if value is None else repr(value) if isinstance(value, str) else str(value).lower() \
        if isinstance(value, bool) else str(value)


def check(node: dict[str, Any], used: set[str] | None = None, outermost: bool = True) -> None:
    """Reject unknown functions, wrong argument counts and bad literal arguments anywhere in a
    parsed expression; add the names of the functions it calls to ``used``."""
    if node.get("type") == "function_expression":
        _check_call(node, outermost)
        if used is not None:
            used.add(node["value"])
    for child in node.get("children", ()):
        if isinstance(child, dict):
            check(child, used, outermost=False)


def _check_call(node: dict[str, Any], outermost: bool) -> None:
    name = node["value"]
    spec = SPECS.get(name)
    if spec is None:
        close = suggest(name)
        hint = f"did you mean {close}()?" if close else "known functions: " + ", ".join(sorted(SPECS))
        raise ExpressionError(f"unknown function {name}(); {hint} (see {REFERENCE})")
    if name in OUTERMOST_ONLY and not outermost:
        raise ExpressionError(f"{name}() must be the outermost function of the expression, e.g. "
                              f"{name}(switch(...)); it decides whether the attribute is exported at all")
    args = node["children"]
    given = len(args)
    if given < spec.min_args or (spec.max_args is not None and given > spec.max_args):
        raise ExpressionError(f"{name}() takes {spec.arity_text()}: {spec.usage()}; got {given}")
    if name == "bit_and":
        _vb_hex_literals(args)
    literals = []
    for i, arg in enumerate(args):
        node_type = arg.get("type")
        if node_type == "literal":
            value = arg["value"]
            literals.append(value)
            kind, shown = _literal_type(value), _shown(value)
        elif node_type in _BUILT_TYPES:
            literals.append(NOT_LITERAL)
            kind, shown = _BUILT_TYPES[node_type]
        else:
            literals.append(NOT_LITERAL)
            continue
        param = spec.param(i)
        if param is None or not param.types:
            continue
        if not any(t.partition("-")[0] == kind for t in param.types):
            raise ExpressionError(f"{name}() argument {i + 1} must be {_describe(param.types)}, "
                                  f"not {shown}; usage: {spec.usage()}")
    try:
        check_literals(spec, literals)
    except ValueError as exc:
        raise ExpressionError(f"{exc}; usage: {spec.usage()}") from None


def _vb_hex_literals(args: list[dict[str, Any]]) -> None:
    """Entra writes hex numbers as VB does, ``BitAnd(&HF, &HF7)``; JMESPath reads ``&HF`` as a
    reference to a field HF. In bit_and's arguments (where a reference means nothing) make it
    the number it is meant to be."""
    for arg in args:
        child = arg.get("children", [None])[0] if arg.get("type") == "expref" else None
        if isinstance(child, dict) and child.get("type") == "field" and _VB_HEX.fullmatch(child["value"]):
            arg.clear()
            arg.update(ast.literal(int(child["value"][1:], 16)))


def evaluation_error(exc: Exception) -> str:
    """A short reason for a failed evaluation, for the provisioning log."""
    if isinstance(exc, jexc.JMESPathTypeError):
        return (f"{exc.function_name}() got {exc.actual_type} {exc.current_value!r}, "
                f"expected {' or '.join(exc.expected_types)}")
    return str(exc) or type(exc).__name__
