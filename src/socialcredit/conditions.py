"""The condition language of rules: a small, allow-listed subset of SQL expressions.

A condition is parsed with sqlglot into a tree, and every node is checked against an allow-list of
node types and against the attributes the behaviour declares. Only the checked tree is ever turned
into SQL (by the generator, never by pasting text), so a rulebook cannot inject anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from socialcredit.sqltemplates import bare

PREDICATES: tuple[type[exp.Expression], ...] = (
    exp.And, exp.Or, exp.Not, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between, exp.Is,
    exp.Boolean,
)  # fmt: skip
ALLOWED_NODES: tuple[type[exp.Expression], ...] = (
    *PREDICATES,
    exp.Paren, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Neg,
    exp.Literal, exp.Null, exp.Column, exp.Identifier,
    exp.Abs, exp.Least, exp.Greatest, exp.Coalesce,
)  # fmt: skip
FUNCTIONS = ("abs", "least", "greatest", "coalesce")


class ConditionError(ValueError):
    """A condition outside the language; the message says which part and why."""


@dataclass(frozen=True)
class Bounds:
    """A condition that is only bounds on one numeric attribute: lo <(=) attr <(=) hi."""

    attribute: str
    lo: float | None
    lo_inclusive: bool
    hi: float | None
    hi_inclusive: bool


def parse_condition(text: str, attributes: dict[str, str]) -> exp.Expression:
    """Parse `text` and check it; `attributes` maps usable names to their types.

    Inherited rules are parsed once per city and version, so results are cached; the tree returned
    is shared and must not be modified (use `qualify`, which copies).
    """
    return _parse(text, tuple(sorted(attributes.items())))


@lru_cache(maxsize=65536)
def _parse(text: str, attribute_items: tuple[tuple[str, str], ...]) -> exp.Expression:
    attributes = dict(attribute_items)
    try:
        trees = sqlglot.parse(text, read="duckdb")
    except (ParseError, TokenError) as e:
        raise ConditionError(f"cannot parse condition {text!r}: {_first_line(e)}") from None
    if len(trees) != 1 or trees[0] is None:
        raise ConditionError(f"condition {text!r} must be a single expression")
    tree = trees[0]
    for node in tree.walk():
        if isinstance(node, exp.Func) and not isinstance(node, ALLOWED_NODES):
            name = node.sql_name().lower() if hasattr(node, "sql_name") else type(node).__name__
            raise ConditionError(f"function {name!r} is not allowed in a condition (allowed: {', '.join(FUNCTIONS)})")
        if not isinstance(node, ALLOWED_NODES):
            raise ConditionError(f"{type(node).__name__.lower()} is not allowed in a condition: {node.sql()!r}")
        if isinstance(node, exp.In) and (node.args.get("query") or node.args.get("unnest")):
            raise ConditionError("IN may only list literal values")
        if isinstance(node, exp.Column):
            if node.table or node.db or node.catalog:
                raise ConditionError(f"qualified name {node.sql()!r} is not allowed; use the attribute name")
            if node.name not in attributes:
                known = ", ".join(sorted(attributes)) or "none"
                raise ConditionError(f"unknown attribute {node.name!r} (this behaviour has: {known})")
    if not _is_predicate(tree):
        raise ConditionError(f"condition {text!r} must be true or false (a comparison), not a value")
    assert isinstance(tree, exp.Expression)
    return bare(tree)  # checked: the parser's positions are no longer needed, and every use copies the tree


def _is_predicate(tree: exp.Expr) -> bool:
    node = tree.unnest() if isinstance(tree, exp.Paren) else tree
    return isinstance(node, PREDICATES)


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def qualify(tree: exp.Expression, table: str, columns: dict[str, str] | None = None) -> exp.Expression:
    """Point every attribute at `table` (optionally renamed through `columns`), on a copy."""

    def fix(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column):
            name = (columns or {}).get(node.name, node.name)
            return exp.column(name, table=table)
        return node

    return tree.copy().transform(fix)


def as_bounds(tree: exp.Expression | None, numeric: set[str]) -> Bounds | None:
    """Recognise conditions that are bounds on one numeric attribute, the shape decision tables index.

    Anything else returns None and is evaluated as a general expression; both give the same answer.
    """
    if tree is None:
        return Bounds("", None, False, None, False)
    parts: list[exp.Expr] = []

    def flatten(node: exp.Expr) -> None:
        node = node.unnest() if isinstance(node, exp.Paren) else node
        if isinstance(node, exp.And):
            flatten(node.left)
            flatten(node.right)
        elif isinstance(node, exp.Between) and isinstance(node.this, exp.Column):
            parts.append(exp.GTE(this=node.this, expression=node.args["low"]))
            parts.append(exp.LTE(this=node.this, expression=node.args["high"]))
        else:
            parts.append(node)

    flatten(tree)
    attr: str | None = None
    lo: float | None = None
    hi: float | None = None
    lo_inc = hi_inc = False
    for p in parts:
        got = _one_bound(p)
        if got is None:
            return None
        name, op, value = got
        if name not in numeric or (attr is not None and name != attr):
            return None
        attr = name
        if op in (">", ">="):
            if lo is None or value > lo or (value == lo and op == ">"):
                lo, lo_inc = value, op == ">="
        elif op in ("<", "<=") and (hi is None or value < hi or (value == hi and op == "<")):
            hi, hi_inc = value, op == "<="
    assert attr is not None
    return Bounds(attr, lo, lo_inc, hi, hi_inc)


_FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">="}
_OPS = {exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}


def _number(node: exp.Expr) -> float | None:
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and node.this.is_number:
        return -float(node.this.this)
    if isinstance(node, exp.Literal) and node.is_number:
        return float(node.this)
    return None


def _one_bound(node: exp.Expr) -> tuple[str, str, float] | None:
    for cls, op in _OPS.items():
        if isinstance(node, cls):
            left, right = node.left, node.right
            if isinstance(left, exp.Column) and (v := _number(right)) is not None:
                return left.name, op, v
            if isinstance(right, exp.Column) and (v := _number(left)) is not None:
                return right.name, _FLIP[op], v
            return None
    return None
