"""One monthly assessment's statements: running sums, the network rule, scores and grades, grade lists.

The month loop (`assessments.py`) keeps its state in a few working tables:
- `engine_carry`: every citizen's running sum of ledger points (`raw`), network points this month (`net`),
  score and grade; updated in place where a month changes it (`Executor.update`: DuckDB's UPDATE … FROM,
  a rewrite on Spark), replaced whole when everyone is assessed. A stored table, not a scratch one: after
  the last month it is the end state the next run resumes from, so a month's run neither copies every
  citizen's state in nor writes it out again (at a million citizens the two copies cost 0.10 s a run);
- `grade_stays`: the stays on grade lists (the trigger stays, fixed during the loop, are `trigger_stays`;
  the view `stays` is both);
- `glists`, `glist_grades`, `glist_bars`: the grade lists of the versions in force, small tables.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from sqlglot import exp

from socialcredit.engine.characteristics import rule_table
from socialcredit.engine.context import Context
from socialcredit.engine.sql import case_by_jkey, fill, grade_expr, score_expr, valid_at, value
from socialcredit.rulebook import Rulebook, stay_parts


def _network_points(t: dt.datetime, network: bool) -> exp.Expression:
    """Each citizen's network points given at `t` (none without the network rule)."""
    if not network:
        return fill("SELECT 0 AS ckey, 0 AS pts WHERE FALSE")
    return fill(
        """SELECT ckey, sum(points) AS pts FROM state_ledger WHERE source = 'network' AND valid_from = $t
           GROUP BY ckey""",
        t=t,
    )


def network_share(t: dt.datetime, ended: bool = True) -> exp.Expression:
    """Share of contacts on a blacklist at `t` (before this assessment), for the citizens with a listed contact.

    The contacts are those in force at `t` (relations are dated facts): a tie dropped or made later does not
    change this month's share, so a later change of the graph leaves earlier assessments as they were.
    Only citizens with a listed contact get a share: find them from the few listed, then count all the
    contacts of those alone (grouping every citizen's contacts cost 0.5 s a month at 1M citizens). The
    in-force test is written in both reads, not as a common table: DuckDB materialises a CTE read twice,
    which made a month 3 to 5 times slower at 10M ties.

    `ended`: whether any tie ended at or before `t` (`first_tie_end`). When none did, every tie begun by `t`
    is in force, and the ties are read from their start rows alone: the `relations` view's join to the end
    rows costs as much as the scan even when there are none (at 1M citizens, 10.6M ties, the count of the
    contacts of 193,000 citizens: 0.147 s through the view, 0.060 s from the starts).
    """
    ties = (
        fill("SELECT ckey, other, kind, valid_from, valid_to FROM relations")
        if ended
        else fill(
            """SELECT ckey, other, kind, changed_at AS valid_from, CAST(NULL AS TIMESTAMP) AS valid_to
               FROM relation_changes WHERE change = 'start'"""
        )
    )
    return fill(
        """WITH listed AS (SELECT DISTINCT ckey FROM stays WHERE kind = 'blacklist'
                           AND start <= $t AND ("end" IS NULL OR "end" > $t)),
           hit AS (SELECT r.ckey, count(*) AS n FROM __ties AS r SEMI JOIN listed AS l ON l.ckey = r.other
                   WHERE r.kind = 'contact' AND $in_force GROUP BY r.ckey),
           degree AS (SELECT r.ckey, count(*) AS n FROM __ties AS r SEMI JOIN hit AS h ON h.ckey = r.ckey
                      WHERE r.kind = 'contact' AND $in_force GROUP BY r.ckey)
           SELECT h.ckey, c.jkey, CAST(h.n AS DOUBLE) / d.n AS share
           FROM hit AS h JOIN degree AS d ON d.ckey = h.ckey JOIN citizens AS c ON c.ckey = h.ckey""",
        t=t,
        in_force=valid_at(t, "r"),
        ties=ties,
    )


def first_tie_end() -> exp.Expression:
    """When the first tie ended (NULL while none has): before it, `network_share` reads the ties' starts alone."""
    return fill("SELECT min(changed_at) FROM relation_changes WHERE change = 'end'")


def network_rules(ctx: Context, epochs: dict[int, int]) -> tuple[pa.Table, exp.Expression] | None:
    """The network rules in force, as a small table (`characteristics.rule_table`) and the
    statement that turns `share_t` into their ledger entries for the month in `month_t`; None when no rule
    in force reads the network. Made once per set of segments in force (`Context.epochs_at`): a month only
    loads its own `month_t`, so no statement is rebuilt per month (a condition in several cities is evaluated
    by number, as the compiler's general rules are). By epoch, not by rulebook: a version in force across a
    change point is one object in two epochs, and an entry names the epoch of its month (the one a later
    version leaves as it is)."""
    made = rule_table(ctx, "network", "s", lambda seg: epochs.get(seg.jkey) == seg.epoch)
    if made is None:
        return None
    table, case = made
    query = fill(
        """SELECT s.ckey, s.jkey, n.epoch, 'network' AS source, CAST(NULL AS BIGINT) AS rkey,
                  CAST(NULL AS SMALLINT) AS bkey, 'blacklisted_contacts' AS characteristic, n.piece, n.points,
                  m.t AS valid_from, m.t_next AS valid_to
           FROM share_t AS s JOIN net_rules AS n ON n.jkey = s.jkey CROSS JOIN month_t AS m
           WHERE $case""",
        case=case,
    )
    return table, query


def month_table(t: dt.datetime, t_next: dt.datetime) -> pa.Table:
    """The month being assessed and the next one's start, for the statements kept across months."""
    return pa.table({"t": pa.array([t], pa.timestamp("us")), "t_next": pa.array([t_next], pa.timestamp("us"))})


def _moved(p: int) -> exp.Expression:
    """The citizens a month must assess when not everyone: whose running sum moves, who have ever had
    network points (the kept state does not carry them apart), and whom a minimum stay keeps on a grade
    list though their grade no longer holds. A superset of those whose running sum or network points change
    this month (those with network points last month have had them), so the others' state stands as it is."""
    return fill(
        """SELECT ckey FROM deltas WHERE p = $p
           UNION SELECT ckey FROM state_ledger WHERE source = 'network'
           UNION SELECT e.ckey FROM grade_stays AS e JOIN engine_carry AS c ON c.ckey = e.ckey
               JOIN glists AS g ON g.jkey = c.jkey AND g.list_id = e.list_id
           WHERE e."end" IS NULL
             AND NOT EXISTS (SELECT 1 FROM glist_grades AS gg WHERE gg.jkey = c.jkey AND gg.list_id = e.list_id
                             AND gg.grade = c.grade)""",
        p=p,
    )


def _who(everyone: bool, alias: str | None = None) -> exp.Expression:
    """Everyone, or the citizens the month assessed (`nxt` holds their rows, and only theirs)."""
    return exp.true() if everyone else fill("$k IN (SELECT ckey FROM nxt)", k=exp.column("ckey", table=alias))


def assessed(segs: dict[int, Rulebook], everyone: bool, p: int, t: dt.datetime, network: bool) -> exp.Expression:
    """Month `p`'s assessment at `t` (`nxt`), for everyone or for the citizens who moved (`_moved`): their running
    sums with the month's deltas, their network points given at `t`, and the rulebooks' scores and grades.

    One statement where a month had three (the running sums updated in place, the movers listed, then scored):
    `engine_carry` keeps the state before the month until `after_assessment` writes these rows back, so the
    score log's changes are read against it as before. A citizen outside `_moved` has no delta this month and
    no network points, now or last month: their running sum and network points are those they had."""
    raw = fill("raw + net")
    score = case_by_jkey(segs, lambda rb: score_expr(rb, raw.copy()))
    grade = case_by_jkey(segs, lambda rb: grade_expr(rb, exp.column("score")))
    version = case_by_jkey(segs, lambda rb: value(rb.version))
    carry = (
        fill("SELECT * FROM engine_carry")
        if everyone
        else fill("SELECT c0.* FROM engine_carry AS c0 SEMI JOIN __moved AS m ON m.ckey = c0.ckey", moved=_moved(p))
    )
    return fill(
        """SELECT ckey, jkey, raw, net, score, $grade AS grade, $version AS version
           FROM (SELECT ckey, jkey, raw, net, $score AS score FROM (
               SELECT c.ckey, c.jkey, CAST(c.raw + coalesce(d.d, 0) AS INT) AS raw,
                      CAST(coalesce(x.pts, 0) AS INT) AS net
               FROM __carry AS c LEFT JOIN (SELECT ckey, d FROM deltas WHERE p = $p) AS d ON d.ckey = c.ckey
               LEFT JOIN __network AS x ON x.ckey = c.ckey) AS b) AS s""",
        grade=grade,
        version=version,
        score=score,
        carry=carry,
        p=p,
        network=_network_points(t, network),
    )


def score_changes(t: dt.datetime) -> exp.Expression:
    """The rows of the score log for the assessment at `t`: whoever's score or grade changed."""
    return fill(
        """SELECT n.ckey, $t AS assessed_at, n.score, n.grade, n.version
           FROM nxt AS n JOIN engine_carry AS c ON c.ckey = n.ckey
           WHERE n.score IS NOT NULL AND (c.score IS DISTINCT FROM n.score OR c.grade IS DISTINCT FROM n.grade)""",
        t=t,
    )


def after_assessment(everyone: bool) -> exp.Expression:
    """The month's state for `engine_carry`: every citizen's row of `nxt` when everyone was assessed (it replaces
    `engine_carry`), else the assessed citizens' (ckey, raw, net, score, grade), which update it in place."""
    if everyone:
        return fill("SELECT ckey, jkey, raw, net, score, grade FROM nxt")
    return fill("SELECT ckey, raw, net, score, grade FROM nxt")


def grade_list_tables(segs: dict[int, Rulebook]) -> dict[str, pa.Table]:
    """The grade lists in force, as small tables the two per-month statements join against."""
    lists, grades, bars = [], [], []
    for jkey, rb in segs.items():
        for lst in rb.lists:
            if not lst.grades:
                continue
            months, days = stay_parts(lst.min_stay)
            lists.append((jkey, lst.id, lst.kind, months, days, rb.version))
            grades += [(jkey, lst.id, g) for g in lst.grades]
            bars += [(jkey, lst.id, m.after) for m in rb.memory if lst.id in m.never_lists]

    def table(rows: list[tuple], names: list[str], types: list[pa.DataType]) -> pa.Table:
        cols: list[list] = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in names]
        return pa.table({n: pa.array(c, t) for n, c, t in zip(names, cols, types, strict=True)})

    s, i16, i32 = pa.string(), pa.int16(), pa.int32()
    return {
        "glists": table(
            lists, ["jkey", "list_id", "kind", "stay_months", "stay_days", "version"], [i16, s, s, i32, i32, s]
        ),
        "glist_grades": table(grades, ["jkey", "list_id", "grade"], [i16, s, s]),
        "glist_bars": table(bars, ["jkey", "list_id", "after"], [i16, s, s]),
    }


def left_grade_lists(t: dt.datetime, everyone: bool) -> exp.Expression:
    """`grade_stays` with the stays ended at `t` whose grade no longer holds after the minimum stay (for
    everyone, or the citizens assessed: no one else's grade changed)."""
    return fill(
        """SELECT e.ckey, e.jkey, e.list_id, e.kind, e.start,
                  CASE WHEN e."end" IS NULL AND l.ckey IS NOT NULL THEN $t ELSE e."end" END AS "end",
                  e.cause, e.rkey, e.characteristic, e.grade, e.score, e.version
           FROM grade_stays AS e LEFT JOIN (
               SELECT c.ckey, g.list_id, g.stay_months, g.stay_days
               FROM engine_carry AS c JOIN glists AS g ON g.jkey = c.jkey
               WHERE $who AND NOT EXISTS (SELECT 1 FROM glist_grades AS gg WHERE gg.jkey = c.jkey
                                          AND gg.list_id = g.list_id AND gg.grade = c.grade)) AS l
             ON l.ckey = e.ckey AND l.list_id = e.list_id
            AND e.start + INTERVAL (l.stay_months) MONTH + INTERVAL (l.stay_days) DAY <= $t""",
        t=t,
        who=_who(everyone, "c"),
    )


def entered_grade_lists(t: dt.datetime, everyone: bool) -> exp.Expression:
    """New grade stays at `t`: the grade lists whose grade now holds, unless already on one or barred by memory."""
    return fill(
        """SELECT c.ckey, c.jkey, g.list_id, g.kind, $t AS start, CAST(NULL AS TIMESTAMP) AS "end", 'grade' AS cause,
                  CAST(NULL AS BIGINT) AS rkey, CAST(NULL AS VARCHAR) AS characteristic, c.grade, c.score, g.version
           FROM engine_carry AS c JOIN glists AS g ON g.jkey = c.jkey
           JOIN glist_grades AS gg ON gg.jkey = c.jkey AND gg.list_id = g.list_id AND gg.grade = c.grade
           WHERE NOT EXISTS (SELECT 1 FROM grade_stays AS e WHERE e.ckey = c.ckey AND e.list_id = g.list_id
                             AND e."end" IS NULL) AND $who
             AND NOT EXISTS (SELECT 1 FROM glist_bars AS b JOIN stays AS x ON x.list_id = b.after
                             WHERE b.jkey = c.jkey AND b.list_id = g.list_id AND x.ckey = c.ckey AND x.start <= $t)""",
        t=t,
        who=_who(everyone, "c"),
    )


def grade_stays_after(t: dt.datetime, everyone: bool) -> exp.Expression:
    """`grade_stays` after the assessment at `t`: the stays as left (`left_grade_lists`) and those entered
    (`entered_grade_lists`), in one statement where a month had two (a table replaced, then appended to).

    Both parts read the stays as they were before this month, and the entered ones are those they would be
    if read after the leaving: a stay ends at `t` only for a list whose grade no longer holds for the citizen,
    and a stay is entered only on a list whose grade holds, both judged by the same grade (`engine_carry`'s,
    under the citizen's city), so no (citizen, list) is in both; and memory's bar reads only when stays began,
    which leaving does not change."""
    return exp.union(left_grade_lists(t, everyone), entered_grade_lists(t, everyone), distinct=False)


def minimum_stays_entered(t: dt.datetime) -> exp.Expression:
    """The minimum stays (months, days) of the grade stays entered at `t`: those months are looked at again."""
    return fill(
        """SELECT DISTINCT g.stay_months, g.stay_days FROM grade_stays AS e JOIN glists AS g
           ON g.jkey = e.jkey AND g.list_id = e.list_id
           WHERE e.start = $t AND (g.stay_months > 0 OR g.stay_days > 0)""",
        t=t,
    )


def blacklisted_any() -> exp.Expression:
    return fill("SELECT count(*) FROM stays WHERE kind = 'blacklist'")
