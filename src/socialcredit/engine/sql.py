"""How steps say SQL: portable templates parsed once by sqlglot, values filled in as sqlglot literals.

A step's statement is written once as a template in the subset of SQL that sqlglot reads (as DuckDB) and
writes for every executed dialect (`socialcredit.engine.executors.DIALECTS`): no ASOF, ANTI or SEMI join, no
`UPDATE … FROM`, no `::` casts of DuckDB-only types. Values go in through named placeholders (`$t`),
replaced by sqlglot literals or expressions (`fill`), never pasted as text, so a time, a code or a
rulebook condition can never change the statement's shape. Identifiers that vary (catalog attributes)
are sqlglot identifiers (`exp.to_identifier`), quoted by the generator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlglot import exp

from socialcredit.clock import CST_OFFSET
from socialcredit.rulebook import Rulebook

# the template machinery lives below the store and the engine (socialcredit.sqltemplates); the engine's steps
# import it from here with the engine's own helpers
from socialcredit.sqltemplates import READ, create, create_temp, fill, isin, template, union_all, value

__all__ = [
    "READ",
    "case_by_jkey",
    "create",
    "create_temp",
    "cst_shift",
    "fill",
    "grade_expr",
    "interval",
    "isin",
    "pairs_in",
    "score_expr",
    "template",
    "union_all",
    "valid_at",
    "value",
]


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


def pairs_in(alias: str, pairs: Iterable[tuple[int, int]]) -> exp.Expression:
    """`(alias.jkey, alias.epoch) IN (…)`: the (city, epoch) segments a rule holds in."""
    items = [exp.Tuple(expressions=[value(j), value(e)]) for j, e in sorted(set(pairs))]
    key = exp.Tuple(expressions=[exp.column("jkey", table=alias), exp.column("epoch", table=alias)])
    # the node itself: sqlglot's `isin` copies every item (a third of a month's tree building at 40 rules)
    return exp.In(this=key, expressions=items) if items else exp.false()


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
