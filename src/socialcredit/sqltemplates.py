"""SQL as sqlglot trees from templates: parsed once, values filled in as sqlglot literals, never pasted.

A statement is written once as a template in the SQL that sqlglot reads (as DuckDB). Values go in through
named placeholders (`$t`), replaced by sqlglot literals or expressions (`fill`), never pasted as text, so a
time, a code or a rulebook condition can never change the statement's shape; a table written `__name`
stands for a query. Identifiers that vary (catalog attributes) are sqlglot identifiers, quoted by the
generator.

Why a module of its own, below the store and the engine: both build their statements this way, and the
engine's package imports the store, so the store could not import these from `socialcredit.engine.sql`
(the engine's own helpers, which re-exports these) without an import circle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache

import sqlglot
from sqlglot import exp

READ = "duckdb"  # the dialect templates are read in; they use only what sqlglot writes for every dialect


@lru_cache(maxsize=512)
def template(text: str) -> exp.Expression:
    """A template's tree, parsed once per process (callers get copies from `fill`)."""
    tree = sqlglot.parse_one(text, read=READ)
    assert isinstance(tree, exp.Expression)
    return bare(tree)


def bare(tree: exp.Expression) -> exp.Expression:
    """The tree without the parser's positions (line, column, offsets: kept for its error messages).

    Why: every `fill` copies its template, and sqlglot copies each node's position dict with `deepcopy`,
    value by value; on a small store that was about half of an engine run's copying. Nothing reads the
    positions once a template has parsed."""
    for node in tree.walk():
        node._meta = None
    return tree


def value(v: object) -> exp.Expression:
    """A sqlglot literal for a value the engine handles (times, days, codes, numbers, flags) or an expression as is."""
    if isinstance(v, exp.Expression):
        return v
    if v is None:
        return exp.null()
    if isinstance(v, bool):
        return exp.Boolean(this=v)
    if isinstance(v, dt.datetime):
        text = v.replace(tzinfo=None).isoformat(sep=" ")  # zero-padded years (0001), microseconds when any
        return exp.cast(exp.Literal.string(text), exp.DataType.Type.TIMESTAMP)
    if isinstance(v, dt.date):
        return exp.cast(exp.Literal.string(v.isoformat()), exp.DataType.Type.DATE)
    if isinstance(v, int | float):
        return exp.Literal.number(v)
    if isinstance(v, str):
        return exp.Literal.string(v)
    raise TypeError(f"no SQL literal for {type(v).__name__}")


def fill(text: str, **values: object) -> exp.Expression:
    """The template with every `$name` replaced by `value(values[name])` and every table `__name` by the query
    `values[name]` as a subquery; a placeholder left unfilled is an error. A `$name` given a list stands
    for its items where the template has a list (a select list, a function's arguments, an EXCLUDE): the
    parts of a statement whose number follows the catalog.

    Expressions given as values become part of the result (copied only where a name is used again): pass
    a tree built for this statement, or a copy of one kept elsewhere."""
    tree = template(text).copy()
    used: set[str] = set()
    # the template's own placeholders given a list, spread after the others are filled (never into a value)
    spread = (
        [n for n in tree.find_all(exp.Placeholder) if isinstance(values.get(n.name), list | tuple)]
        if any(isinstance(v, list | tuple) for v in values.values())
        else []
    )  # (the engine's steps give no lists: they do not pay for the search)
    spread_ids = {id(n) for n in spread}

    def once(name: str) -> exp.Expression:
        """The value for `name`: the caller's tree the first time (it was built for this statement), a copy after."""
        v = value(values[name])
        if name in used:
            return v.copy()
        used.add(name)
        return v

    def put(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.name.startswith("__") and not node.args.get("db"):
            # a table written `__name` stands for a query given as `name`: it becomes that subquery, aliased
            return exp.Subquery(this=once(node.name[2:]), alias=node.args.get("alias"))
        if isinstance(node, exp.Placeholder) and node.name:
            if node.name not in values:
                raise KeyError(f"template placeholder ${node.name} not given")
            return node if id(node) in spread_ids else once(node.name)
        return node

    tree = tree.transform(put, copy=False)
    for node in spread:
        items = values[node.name]
        assert isinstance(items, list | tuple)
        parent, key = node.parent, node.arg_key
        siblings = parent.args.get(key) if parent is not None and key else None
        if parent is None or not key or not isinstance(siblings, list):
            raise TypeError(f"template placeholder ${node.name} is given a list where the template has no list")
        made = [value(v) if node.name not in used else value(v).copy() for v in items]
        used.add(node.name)
        i = next(i for i, s in enumerate(siblings) if s is node)
        parent.set(key, [*siblings[:i], *made, *siblings[i + 1 :]])
    return tree


def create(kind: str, name: str, query: exp.Expression, temporary: bool = False) -> exp.Create:
    """`CREATE OR REPLACE [TEMP] <kind> name AS query` (kind TABLE or VIEW) around a query's tree, the name one
    identifier (quoted where it must be, never split at a dot): the engine's executor and the store's scratch
    tables say it alike."""
    props = exp.Properties(expressions=[exp.TemporaryProperty()]) if temporary else None
    return exp.Create(this=exp.Table(this=exp.to_identifier(name)), kind=kind, replace=True, expression=query,
                      properties=props)  # fmt: skip


def create_temp(kind: str, name: str, query: exp.Expression, dialect: str = "duckdb") -> str:
    """`create(…, temporary=True)` as text: the store's scratch tables and views."""
    return create(kind, name, query, temporary=True).sql(dialect)


def isin(column: exp.Expression, values: Iterable[object]) -> exp.Expression:
    """`column IN (values)`, or FALSE for none (an empty IN list is not SQL)."""
    items = [value(v) for v in values]
    # the node itself: sqlglot's `isin` deep-copies every item, made here for this tree alone
    return exp.In(this=column.copy(), expressions=items) if items else exp.false()


def union_all(parts: list[exp.Expression]) -> exp.Expression:
    """The parts as one UNION ALL (left-deep, as text would have been)."""
    out = parts[0]
    for p in parts[1:]:
        out = exp.Union(this=out, expression=p, distinct=False)
    return out
