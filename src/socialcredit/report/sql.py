"""How a report says its queries: sqlglot trees put together, never text pasted into text (SPEC §4).

A report's query is shared pieces (the run's months and periods, a run's standing at the end), read-model
questions (`socialcredit.standings`: a stay in force, the latest assessment) and its own SQL. Pasting
them together as text let a fragment change the shape of the query around it and hid where a value came
in; here each piece is a sqlglot tree: a common table expression (`cte`), a condition or a subquery filled
into a template's `$name` or `__name` (`engine.sql.fill`), a join added to a select. The text a report
runs, shows and lets the reader paste into DuckDB is the tree generated once, as DuckDB SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlglot import exp

from socialcredit.engine.sql import fill, value

DIALECT = "duckdb"  # reports run on DuckDB only (ASOF joins, GROUP BY ALL, getvariable), unlike engine steps


def cte(name: str, q: str | exp.Expression, /, why: str | None = None, **parts: object) -> exp.CTE:
    """`name AS (q)`: a common table expression, a query's tree or a template with its `$…`/`__…` parts filled;
    `why`, a comment shown at its head for the reader of the SQL."""
    body = fill(q, **parts) if isinstance(q, str) else q.copy()
    if why:
        body.add_comments([why])
    return exp.CTE(this=body, alias=exp.TableAlias(this=exp.to_identifier(name)))


def select(text: str, /, **parts: object) -> exp.Select:
    """A template that is a plain SELECT, filled (to add a join to, or use as a common table expression)."""
    q = fill(text, **parts)
    assert isinstance(q, exp.Select), text
    return q


def tree(
    q: str | exp.Expression, /, *ctes: exp.CTE, why: dict[str, str] | None = None, **parts: object
) -> exp.Expression:
    """The query (a template with its parts filled, or a tree) with the shared `ctes` put before its own
    `WITH` list; `why` comments its own common table expressions by name (a parser drops SQL comments there)."""
    q = fill(q, **parts) if isinstance(q, str) else q.copy()
    own = q.args.get("with_")
    listed = [*(c.copy() for c in ctes), *(own.expressions if own else [])]
    for c in listed:
        if why and c.alias in why:
            c.this.add_comments([why[c.alias]])
    q.set("with_", exp.With(expressions=listed))
    return q


def statement(q: str | exp.Expression, /, *ctes: exp.CTE, why: dict[str, str] | None = None, **parts: object) -> str:
    """A report's query as the DuckDB text it runs and shows (see `tree`)."""
    return tree(q, *ctes, why=why, **parts).sql(DIALECT, pretty=True)


def in_run(q: exp.Expression, alias: str, tables: Iterable[str]) -> exp.Expression:
    """`q` reading `tables` from the attached run `alias` (`ledger` → `a.ledger`), for a comparison of two."""
    names = set(tables)

    def qualify(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.name in names and not node.args.get("db"):
            node.set("db", exp.to_identifier(alias))
        return node

    return q.transform(qualify, copy=True)


def literal(v: dt.date | dt.datetime | int) -> exp.Expression:
    """One of the run's calendar values (a date, a time, a count) as a sqlglot literal."""
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return exp.cast(exp.Literal.string(v.isoformat()), exp.DataType.Type.DATE)
    return value(v)


def set_variable(name: str, v: dt.date | dt.datetime | int | None = None) -> str:
    """`SET VARIABLE name = v`: with a value, the line a report shows (a literal); without, the statement it
    runs, the value bound as `?`."""
    to = exp.Placeholder() if v is None else literal(v)
    item = exp.SetItem(this=exp.EQ(this=exp.column(name), expression=to), kind="VARIABLE")
    return exp.Set(expressions=[item], unset=False, tag=False).sql(DIALECT)


def attach(alias: str, path: str | None = None) -> str:
    """`ATTACH path AS alias (READ_ONLY)`: with a path, the line a comparison shows (a literal); without, the
    statement it runs, the path bound as `?`."""
    where = exp.Placeholder() if path is None else exp.Literal.string(path)
    option = exp.AttachOption(this=exp.var("READ_ONLY"))
    return exp.Attach(this=exp.alias_(where, alias), exists=False, expressions=[option]).sql(DIALECT)


def use(alias: str) -> str:
    """`USE alias`: make an attached run the one unqualified tables are read from."""
    return exp.Use(this=exp.to_table(alias)).sql(DIALECT)


__all__ = ["DIALECT", "attach", "cte", "in_run", "literal", "select", "set_variable", "statement", "tree", "use"]
