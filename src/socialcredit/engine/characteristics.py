"""Characteristics and triggers: the records that set states or put citizens on lists, as intervals and stays.

Steps (each a function of the context to sqlglot queries):
- `event_records`: the records (as of the run) that set or clear a characteristic or trigger a list, with
  the epoch they fall in and only the attributes something reads;
- `intervals`: state characteristics as intervals, from a setting record to its clearing record or term;
- `characteristic_entries`: a state rule's points while the characteristic holds (the state ledger);
- `trigger_stays`: the stays a record (for a duration) or a characteristic (while it holds) starts.
State rules are a small table joined once (`rule_table`); a trigger that holds in several (city, epoch)
segments runs once, against the small `segments` table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pyarrow as pa
from sqlglot import exp

from socialcredit.compiler import FAR_FUTURE, Segment, condition_sql, epoch_expr
from socialcredit.conditions import qualify
from socialcredit.engine.context import Context
from socialcredit.engine.sql import fill, interval, isin, pairs_in, union_all, value
from socialcredit.rulebook import duration_parts
from socialcredit.schema import TABLES, characteristic_intervals


def condition(cond: exp.Expression | None, alias: str) -> exp.Expression:
    """A checked rulebook condition over `alias`'s columns (TRUE when there is none), as a tree."""
    return exp.true() if cond is None else exp.paren(qualify(cond, alias))


def event_bkeys(ctx: Context) -> list[int]:
    codes = {b for ch in ctx.catalog.characteristics.values() for b in (*ch.set_by, *ch.cleared_by)}
    codes |= {t.behaviour for s in ctx.compiled.segments for lst in s.rulebook.lists for t in lst.triggers
              if t.behaviour}  # fmt: skip
    return sorted(ctx.bkeys[c] for c in codes) or [-1]


def event_records(ctx: Context, as_of: dt.datetime) -> exp.Expression:
    """The records that set characteristics or trigger lists, with their epoch (the versions then).

    Only the attributes a state characteristic keeps or ends by, or a list's trigger on a behaviour tests
    (`event_attributes`): copying all 20-odd attributes costs more than scoring (and the 17 that rules read
    too, at a million citizens after a year, 0.096 s a run for 116,150 rows, where the count is 0.010 s).
    """
    epoch = epoch_expr(ctx.compiled.change_points, exp.column("occurred_at", table="r"))
    query = fill(
        """SELECT r.rkey, r.ckey, r.jkey, r.bkey, r.occurred_at
           FROM records AS r ANTI JOIN retractions AS x ON x.rkey = r.rkey
           WHERE r.occurred_at <= $as_of AND $events""",
        as_of=as_of,
        events=isin(exp.column("bkey", table="r"), event_bkeys(ctx)),
    )
    assert isinstance(query, exp.Select)
    attrs = [exp.column(exp.to_identifier(a, quoted=True), table="r") for a in event_attributes(ctx)]
    return query.select(*attrs, epoch.as_("epoch"), copy=False)


def event_attributes(ctx: Context) -> list[str]:
    """The attributes the readers of `event_records` read: a state characteristic's (`intervals` keeps them)
    and its term, and those a list's trigger on a behaviour tests (`trigger_stays`)."""
    names: set[str] = set()
    for ch in ctx.catalog.characteristics.values():
        if ch.kind == "state":
            names |= set(ch.attributes) | ({ch.term_attribute} if ch.term_attribute else set())
    for seg in ctx.compiled.segments:
        rb = seg.rulebook
        for lst in rb.lists:
            for i, trig in enumerate(lst.triggers):
                cond = rb.conditions.get(f"trigger:{lst.id}:{i}")
                if trig.behaviour and cond is not None:
                    names |= {col.name for col in cond.find_all(exp.Column)}
    return sorted(names & set(ctx.catalog.attributes))


def intervals(ctx: Context) -> exp.Expression:
    """State characteristics as intervals: from each setting record to its clearing record or term's end."""
    cat = ctx.catalog
    table = characteristic_intervals(cat)
    attrs = table.columns[6:]
    parts: list[exp.Expression] = []
    for ch in cat.characteristics.values():
        if ch.kind != "state":
            continue
        term: exp.Expression = exp.null()
        if ch.term_attribute:
            days = exp.column(exp.to_identifier(ch.term_attribute, quoted=True), table="s")
            term = fill(
                "CASE WHEN $days > 0 THEN s.occurred_at + $span END",
                days=days,
                span=interval(exp.cast(days.copy(), "INT"), "DAY"),
            )
        head = fill(
            """SELECT s.ckey, s.jkey, $code AS characteristic, s.rkey, s.occurred_at AS start,
                      least((SELECT min(c.occurred_at) FROM recs AS c WHERE c.ckey = s.ckey AND $clears
                             AND c.occurred_at >= s.occurred_at), $term) AS "end"
               FROM recs AS s WHERE $sets""",
            code=ch.code,
            term=term,
            clears=isin(exp.column("bkey", table="c"), [ctx.bkeys[b] for b in ch.cleared_by]),
            sets=isin(exp.column("bkey", table="s"), [ctx.bkeys[b] for b in ch.set_by]),
        )
        assert isinstance(head, exp.Select)
        cols = [
            (
                exp.column(exp.to_identifier(a.name, quoted=True), table="s")
                if a.name in ch.attributes and all(a.name in cat.behaviours[b].attributes for b in ch.set_by)
                else exp.cast(exp.null(), a.type)
            ).as_(exp.to_identifier(a.name, quoted=True))
            for a in attrs
        ]
        parts.append(head.select(*cols, copy=False))
    parts.append(table.empty())
    return union_all(parts)


# a characteristic's intervals clipped to each (city, epoch) segment they overlap, for the state rules and the
# triggers on characteristics (their SELECTs clip start and end with the segment's bounds)
_CLIPPED = """ FROM characteristic_intervals AS ci JOIN segments AS g ON g.jkey = ci.jkey
                    AND ci.start < g.s_end AND coalesce(ci."end", g.s_end) > g.s_start """


def rule_table(
    ctx: Context, kind: str, alias: str, keep: Callable[[Segment], bool] | None = None
) -> tuple[pa.Table, exp.Expression] | None:
    """The rules on characteristics of `kind` (state or network) as a small table, one row per (city, epoch)
    each holds in (those `keep` keeps): jkey, epoch, characteristic, piece, points and the number of its
    condition; and the CASE that evaluates a row's condition by that number over `alias`'s columns (the
    table's alias is `n`). None when there are no such rules.

    Why a table: a statement joins it once, where a branch per rule made a UNION of as many joins (the
    sample's state rules: 35 branches, 41 ms for DuckDB to plan and run on a store of 16 citizens, a stage
    each on Spark). A condition met in several cities is evaluated by number, as the compiler's general
    rules are, and a rule met in one city twice counts once, as `IN (…)` did."""
    rows: set[tuple[int, int, str, int, int, int]] = set()
    conds: dict[str, tuple[int, exp.Expression | None]] = {}
    for seg, rule, cond, piece in ctx.compiled.characteristic_rules:
        code = rule.characteristic or ""
        if ctx.catalog.characteristics[code].kind != kind or (keep is not None and not keep(seg)):
            continue
        n = conds.setdefault(condition_sql(cond, alias), (len(conds), cond))[0]
        rows.add((seg.jkey, seg.epoch, code, piece, rule.points, n))
    if not rows:
        return None
    cols = list(zip(*sorted(rows), strict=True))
    table = pa.table({
        "jkey": pa.array(cols[0], pa.int16()), "epoch": pa.array(cols[1], pa.int32()),
        "characteristic": pa.array(cols[2], pa.string()), "piece": pa.array(cols[3], pa.int32()),
        "points": pa.array(cols[4], pa.int32()), "cond": pa.array(cols[5], pa.int32()),
    })  # fmt: skip
    case = exp.Case(
        this=exp.column("cond", table="n"),
        ifs=[exp.If(this=value(i), true=condition(cond, alias)) for i, cond in conds.values()],
        default=exp.false(),
    )
    return table, case


def characteristic_entries(ctx: Context) -> tuple[pa.Table, exp.Expression] | None:
    """A state rule gives its points while the characteristic holds and the rule is in force (clipped): the
    state rules' table (`rule_table`, to be loaded as `state_rules`) and the entries' query over it."""
    made = rule_table(ctx, "state", "ci")
    if made is None:
        return None
    table, case = made
    query = fill(
        """SELECT ci.ckey, ci.jkey, g.epoch, 'characteristic' AS source, ci.rkey, CAST(NULL AS SMALLINT) AS bkey,
                  ci.characteristic, n.piece, n.points, greatest(ci.start, g.s_start) AS valid_from,
                  nullif(least(coalesce(ci."end", g.s_end), g.s_end), $far) AS valid_to"""
        + _CLIPPED
        + """JOIN state_rules AS n ON n.jkey = g.jkey AND n.epoch = g.epoch AND n.characteristic = ci.characteristic
           WHERE $case""",
        far=FAR_FUTURE,
        case=case,
    )
    return table, query


def trigger_stays(ctx: Context) -> exp.Expression:
    """Stays that a record (for a duration) or a characteristic (while it holds) puts a citizen on; a stay
    that spans a rulebook change is one stay (the pieces the clipping made are joined)."""
    groups: dict[tuple, tuple[list[tuple[int, int]], exp.Expression | None]] = {}
    for seg in ctx.compiled.segments:
        rb = seg.rulebook
        for lst in rb.lists:
            for i, trig in enumerate(lst.triggers):
                cond = rb.conditions.get(f"trigger:{lst.id}:{i}")
                alias = "r" if trig.behaviour else "ci"
                key = (lst.id, lst.kind, trig.behaviour, trig.characteristic, trig.duration, condition_sql(cond, alias))
                groups.setdefault(key, ([], cond))[0].append((seg.jkey, seg.epoch))
    branches: list[exp.Expression] = []
    for (list_id, kind, behaviour, characteristic, duration, _), (pairs, cond) in groups.items():
        if behaviour is not None:
            n, unit = duration_parts(duration)
            branches.append(
                fill(
                    """SELECT r.ckey, r.jkey, $list_id AS list_id, $kind AS kind, r.occurred_at AS start,
                          r.occurred_at + $span AS "end", 'behaviour' AS cause, r.rkey,
                          CAST(NULL AS VARCHAR) AS characteristic, CAST(NULL AS VARCHAR) AS grade,
                          CAST(NULL AS INT) AS score, s.version
                   FROM recs AS r JOIN segments AS s ON s.jkey = r.jkey AND s.epoch = r.epoch
                   WHERE r.bkey = $bkey AND $segments AND $cond""",
                    list_id=list_id,
                    kind=kind,
                    span=interval(n, unit),
                    bkey=ctx.bkeys[behaviour],
                    segments=pairs_in("r", pairs),
                    cond=condition(cond, "r"),
                )
            )
        else:
            branches.append(
                fill(
                    """SELECT ci.ckey, ci.jkey, $list_id AS list_id, $kind AS kind,
                          greatest(ci.start, g.s_start) AS start,
                          nullif(least(coalesce(ci."end", g.s_end), g.s_end), $far) AS "end",
                          'characteristic' AS cause, ci.rkey, ci.characteristic, CAST(NULL AS VARCHAR) AS grade,
                          CAST(NULL AS INT) AS score, g.version"""
                    + _CLIPPED
                    + "WHERE ci.characteristic = $code AND $segments AND $cond",
                    list_id=list_id,
                    kind=kind,
                    far=FAR_FUTURE,
                    code=characteristic,
                    segments=pairs_in("g", pairs),
                    cond=condition(cond, "ci"),
                )
            )
    stays = union_all([*branches, TABLES["list_entries"].empty()])
    return fill(
        """SELECT ckey, jkey, list_id, kind, min(start) AS start,
                  CASE WHEN bool_or("end" IS NULL) THEN NULL ELSE max("end") END AS "end",
                  cause, rkey, characteristic, grade, score, arg_min(version, start) AS version
           FROM __stays AS t GROUP BY ckey, jkey, list_id, kind, cause, rkey, characteristic, grade, score""",
        stays=stays,
    )
