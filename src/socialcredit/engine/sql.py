"""How steps say SQL: portable templates parsed once by sqlglot, values filled in as sqlglot literals.

A step's statement is written once as a template in the subset of SQL that sqlglot reads (as DuckDB) and
writes for every executed dialect (`socialcredit.engine.executors.DIALECTS`): no ASOF, ANTI or SEMI join, no
`UPDATE … FROM`, no `::` casts of DuckDB-only types. Values go in through named placeholders (`$t`),
replaced by sqlglot literals or expressions (`fill`), never pasted as text, so a time, a code or a
rulebook condition can never change the statement's shape. Identifiers that vary (catalog attributes)
are sqlglot identifiers (`exp.to_identifier`), quoted by the generator.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from functools import lru_cache

import sqlglot
from sqlglot import exp

from socialcredit.clock import CST_OFFSET
from socialcredit.rulebook import Rulebook

READ = "duckdb"  # the dialect templates are read in; they use only what sqlglot writes for every dialect


@lru_cache(maxsize=512)
def template(text: str) -> exp.Expression:
    """A template's tree, parsed once per process (callers get copies from `fill`)."""
    tree = sqlglot.parse_one(text, read=READ)
    assert isinstance(tree, exp.Expression)
    return tree


def value(v: object) -> exp.Expression:
    """A sqlglot literal for a value the engine handles (times, codes, numbers, flags) or an expression as is."""
    if isinstance(v, exp.Expression):
        return v
    if v is None:
        return exp.null()
    if isinstance(v, bool):
        return exp.Boolean(this=v)
    if isinstance(v, dt.datetime):
        text = v.replace(tzinfo=None).isoformat(sep=" ")  # zero-padded years (0001), microseconds when any
        return exp.cast(exp.Literal.string(text), exp.DataType.Type.TIMESTAMP)
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


def create_temp(kind: str, name: str, query: exp.Expression, dialect: str = "duckdb") -> str:
    """`CREATE OR REPLACE TEMP <kind> name AS query` (kind TABLE or VIEW) as text: the store's scratch tables and
    views, the name an identifier sqlglot quotes where it must."""
    temporary = exp.Properties(expressions=[exp.TemporaryProperty()])
    create = exp.Create(this=exp.to_table(name), kind=kind, replace=True, expression=query, properties=temporary)
    return create.sql(dialect)


def valid_at(t: object, alias: str | None = None) -> exp.Expression:
    """A dated row — a ledger entry, a tie between citizens — in force at `t`: begun at or before it and not
    yet ended (`valid_to` is exclusive, NULL while open). Said once for the engine, the read model and the
    reports."""
    return fill(
        "$since <= $t AND ($until IS NULL OR $until > $t)",
        since=exp.column("valid_from", table=alias),
        until=exp.column("valid_to", table=alias),
        t=t,
    )


def isin(column: exp.Expression, values: Iterable[object]) -> exp.Expression:
    """`column IN (values)`, or FALSE for none (an empty IN list is not SQL)."""
    items = [value(v) for v in values]
    return column.copy().isin(*items) if items else exp.false()


def pairs_in(alias: str, pairs: Iterable[tuple[int, int]]) -> exp.Expression:
    """`(alias.jkey, alias.epoch) IN (…)`: the (city, epoch) segments a rule holds in."""
    items = [exp.Tuple(expressions=[value(j), value(e)]) for j, e in sorted(set(pairs))]
    key = exp.Tuple(expressions=[exp.column("jkey", table=alias), exp.column("epoch", table=alias)])
    return key.isin(*items) if items else exp.false()


def union_all(parts: list[exp.Expression]) -> exp.Expression:
    """The parts as one UNION ALL (left-deep, as text would have been)."""
    out = parts[0]
    for p in parts[1:]:
        out = exp.Union(this=out, expression=p, distinct=False)
    return out


def case_by_jkey(
    segs: dict[int, Rulebook], f: Callable[[Rulebook], exp.Expression], col: str = "jkey"
) -> exp.Expression:
    """A per-city expression: `CASE WHEN jkey = j THEN f(rulebook of j) … END` (NULL without cities)."""
    if not segs:
        return exp.null()
    column = exp.column(col.split(".")[-1], table=col.split(".")[0] if "." in col else None)
    return exp.paren(
        exp.Case(
            ifs=[exp.If(this=column.copy().eq(value(j)), true=f(rb)) for j, rb in segs.items()], default=exp.null()
        )
    )


def score_expr(rb: Rulebook, points: exp.Expression) -> exp.Expression:
    """The rulebook's score formula (`Scale.score`) over a points expression."""
    return rb.scale.score_expr(points)


def grade_expr(rb: Rulebook, score: exp.Expression) -> exp.Expression:
    """The rulebook's grade (`Rulebook.grade_of`) of a score expression."""
    return rb.grade_expr(score)


def cst_shift() -> exp.Expression:
    """The clock's CST offset as an interval: UTC + this is CST wall time (calendar months and years in SQL)."""
    return interval(int(CST_OFFSET.total_seconds()) // 3600, "HOUR")


def interval(n: exp.Expression | int, unit: str) -> exp.Expression:
    """A duration of `n` units (DAY, MONTH, YEAR, HOUR) to add to a time, in sqlglot's own node."""
    return exp.Interval(this=value(n) if not isinstance(n, exp.Expression) else n, unit=exp.var(unit.upper()))
