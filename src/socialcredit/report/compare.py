"""Compare two runs of one population under different rules: who changes grade or list, and why.

Both stores are attached read-only to one in-memory DuckDB (`a` and `b`), so every difference is one
query over both and the reader can run it again: the "How computed" folds start with the same ATTACH
lines. "Why" is read from the ledgers: each entry in force at the comparison time is attributed to the
rule(s) of its piece, and the rules whose points differ most between the runs, over the citizens whose
grade or lists differ, are the ones driving the change.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from matplotlib.ticker import FuncFormatter
from sqlglot import exp

from socialcredit import standings as read_model
from socialcredit.engine.sql import fill
from socialcredit.report import lists, standings
from socialcredit.report.figures import (
    PALETTE,
    Figure,
    Section,
    canvas,
    counts,
    distinct,
    grid,
    headroom,
    legend,
    month_ticks,
    pick,
    png,
)
from socialcredit.report.html import Document, write
from socialcredit.report.rundir import Query, RunDir
from socialcredit.report.sql import attach, cte, in_run, set_variable, statement, use
from socialcredit.yamlio import LocatedError

AS_OF = read_model.AS_OF


def _standing_ctes(x: str) -> tuple[exp.CTE, exp.CTE]:
    """Run `x`'s published standing at the end (the read model's latest assessment) and the lists it is on."""
    on = fill(
        "SELECT ckey, list(DISTINCT list_id ORDER BY list_id) AS lists FROM list_entries WHERE $on GROUP BY ckey",
        on=read_model.in_force(AS_OF),
    )
    return (
        cte(f"{x}_std", read_model.latest_assessments(AS_OF, f"{x}.score_log")),
        cte(f"{x}_on", in_run(on, x, ["list_entries"])),
    )


CHANGED_CTES = (
    *_standing_ctes("a"),
    *_standing_ctes("b"),
    cte(
        "everyone",
        """SELECT c.ckey, c.citizen_id, c.city, sa.grade AS grade_a, sb.grade AS grade_b, sa.score AS score_a,
                  sb.score AS score_b, coalesce(oa.lists, []) AS lists_a, coalesce(ob.lists, []) AS lists_b
           FROM a.citizens c LEFT JOIN a_std sa USING (ckey) LEFT JOIN b_std sb USING (ckey)
           LEFT JOIN a_on oa USING (ckey) LEFT JOIN b_on ob USING (ckey)""",
    ),
    cte("changed", "SELECT * FROM everyone WHERE grade_a IS DISTINCT FROM grade_b OR lists_a <> lists_b"),
)

GRADE_CHANGES_SQL = statement(
    """SELECT city, grade_a, grade_b, count(*) AS citizens, round(avg(score_b - score_a), 1) AS mean_score_change
       FROM everyone GROUP BY ALL ORDER BY city, grade_a, grade_b""",
    *CHANGED_CTES,
)

SCORE_DIFF_SQL = statement(
    """SELECT city, ((score_b - score_a) // 10) * 10 AS difference_from, count(*) AS citizens
       FROM everyone WHERE score_a IS NOT NULL AND score_b IS NOT NULL GROUP BY ALL ORDER BY city, difference_from""",
    *CHANGED_CTES,
)

LIST_CHANGES_SQL = statement(
    """WITH
       stays AS (SELECT 'a' AS run, ckey, list_id, start, "end" FROM a.list_entries
                 UNION ALL SELECT 'b', ckey, list_id, start, "end" FROM b.list_entries),
       scoped AS (SELECT 'on it at the end' AS scope, run, ckey, list_id FROM stays WHERE $on
                  UNION ALL SELECT 'ever during the run', run, ckey, list_id FROM stays
                            WHERE start <= getvariable('as_of')),
       per AS (SELECT scope, ckey, list_id, bool_or(run = 'a') AS in_a, bool_or(run = 'b') AS in_b
               FROM scoped GROUP BY ALL)
       SELECT list_id, scope, count(*) FILTER (WHERE in_a AND NOT in_b) AS only_a,
              count(*) FILTER (WHERE in_b AND NOT in_a) AS only_b, count(*) FILTER (WHERE in_a AND in_b) AS in_both
       FROM per GROUP BY ALL ORDER BY list_id, scope""",
    on=read_model.in_force(AS_OF),
)

OTHER_LISTS_SQL = statement(
    """SELECT city, count(*) FILTER (WHERE lists_a <> lists_b) AS on_other_lists, count(*) AS citizens
       FROM everyone GROUP BY city ORDER BY city""",
    *CHANGED_CTES,
)


def _rule_points_cte(x: str) -> exp.CTE:
    """`x_rules`: each ledger entry of run `x` in force at the comparison time, attributed to its piece's rule(s)."""
    q = fill(
        """SELECT l.ckey, p.rule_ids[k.k] AS rule_id,
                  sum(CASE WHEN len(p.rule_ids) = 1 THEN l.points ELSE p.rule_points[k.k] END) AS points
           FROM ledger l JOIN pieces p USING (piece), unnest(range(1, len(p.rule_ids) + 1)) AS k(k)
           WHERE $in_force
           GROUP BY ALL""",
        in_force=read_model.valid_at(AS_OF, "l"),
    )
    return cte(
        f"{x}_rules",
        in_run(q, x, ["ledger", "pieces"]),
        why="each ledger entry in force, attributed to its piece's rule(s)",
    )


RULE_POINTS_CTES = (_rule_points_cte("a"), _rule_points_cte("b"))

RULES_SQL = statement(
    """SELECT rule_id, count(DISTINCT ckey) AS citizens, coalesce(sum(ra.points), 0)::BIGINT AS points_a,
              coalesce(sum(rb.points), 0)::BIGINT AS points_b,
              (coalesce(sum(rb.points), 0) - coalesce(sum(ra.points), 0))::BIGINT AS difference
       FROM a_rules ra FULL JOIN b_rules rb USING (ckey, rule_id) SEMI JOIN changed USING (ckey)
       GROUP BY rule_id HAVING difference <> 0 ORDER BY abs(difference) DESC, rule_id""",
    *CHANGED_CTES,
    *RULE_POINTS_CTES,
)

WHO_SQL = statement(
    """WITH why AS (SELECT ckey, rule_id, coalesce(rb.points, 0) - coalesce(ra.points, 0) AS difference
                   FROM a_rules ra FULL JOIN b_rules rb USING (ckey, rule_id) WHERE difference <> 0)
       SELECT c.citizen_id, c.city, c.grade_a, c.grade_b, c.score_a, c.score_b,
              array_to_string(c.lists_a, ' ') AS lists_a, array_to_string(c.lists_b, ' ') AS lists_b,
              string_agg(w.rule_id || ' ' || w.difference, ', ' ORDER BY abs(w.difference) DESC, w.rule_id) AS rules
       FROM changed c LEFT JOIN why w USING (ckey)
       GROUP BY c.citizen_id, c.city, c.grade_a, c.grade_b, c.score_a, c.score_b, c.lists_a, c.lists_b
       ORDER BY abs(coalesce(c.score_b, 0) - coalesce(c.score_a, 0)) DESC, c.citizen_id LIMIT 50""",
    *CHANGED_CTES,
    *RULE_POINTS_CTES,
)

DECISION_CHANGES_SQL = """SELECT coalesce(da.service, db.service) AS service,
       coalesce(da.outcome, 'not asked') AS outcome_a, coalesce(db.outcome, 'not asked') AS outcome_b,
       count(*) AS attempts
FROM (SELECT * FROM a.decisions WHERE asked_at <= getvariable('as_of')) da
FULL JOIN (SELECT * FROM b.decisions WHERE asked_at <= getvariable('as_of')) db
  ON da.ckey = db.ckey AND da.service = db.service AND da.asked_at = db.asked_at
GROUP BY ALL ORDER BY service, outcome_a, outcome_b"""

VERSIONS = fill("SELECT string_agg(DISTINCT version, ', ' ORDER BY version) FROM score_log")  # one run's, in_run


@dataclass
class Pair:
    """Two runs attached to one connection, with the calendar of the first and the earlier `as_of`."""

    a: Path
    b: Path
    title_a: str
    title_b: str
    con: duckdb.DuckDBPyConnection
    first_month: dt.date
    months: int
    as_of: dt.datetime
    grades: list[str]  # best to worst, as run A's rulebooks list them

    @classmethod
    def open(cls, run_a: Path, run_b: Path) -> Pair:
        with RunDir.open(run_a) as ra, RunDir.open(run_b) as rb:
            as_of = min(ra.as_of, rb.as_of)
            months = min(ra.months, rb.months)
            first, title_a, title_b = ra.first_month, ra.title, rb.title
            grades = [*ra.grade_order(), *(g for g in rb.grade_order() if g not in ra.grade_order())]
            if rb.first_month != first:
                raise LocatedError(
                    f"{run_b}: starts {rb.first_month:%Y-%m}, {run_a} {first:%Y-%m}; compare runs of the same months"
                )
        con = duckdb.connect()
        pair = cls(Path(run_a), Path(run_b), title_a, title_b, con, first, months, as_of, grades)
        for alias, path in (("a", run_a), ("b", run_b)):
            con.execute(attach(alias), [str(Path(path) / "store.duckdb")])
        for name, value in pair.variables.items():
            con.execute(set_variable(name), [value])
        pair._same_population()
        return pair

    @property
    def variables(self) -> dict[str, dt.date | int]:
        return {"first_month": self.first_month, "months": self.months, "as_of": self.as_of}

    def _same_population(self) -> None:
        differ = self.con.execute(
            """SELECT count(*) FROM a.citizens x FULL JOIN b.citizens y USING (ckey)
               WHERE x.citizen_id IS DISTINCT FROM y.citizen_id"""
        ).fetchall()[0][0]
        if differ:
            self.con.close()
            raise LocatedError(
                f"{self.a} and {self.b} do not hold the same population ({differ} citizens differ); compare runs "
                "of one scenario and seed, or a run and its replay"
            )

    def preamble(self) -> str:
        lines = [attach(x, str(p / "store.duckdb")) for x, p in (("a", self.a), ("b", self.b))]
        lines += [set_variable(k, v) for k, v in self.variables.items()]
        return "-- in an in-memory duckdb session\n" + "".join(line + ";\n" for line in lines).rstrip("\n")

    def query(self, name: str, sql: str) -> Query:
        return Query(name, sql.strip(), self.con.sql(sql).to_arrow_table())

    def query_in(self, alias: str, name: str, sql: str) -> Query:
        """A one-run query (from the run report) executed inside run `alias`."""
        self.con.execute(use(alias))
        try:
            return Query(name, ";\n".join((use(alias), sql.strip())), self.con.sql(sql).to_arrow_table())
        finally:
            self.con.execute(use("memory"))

    def close(self) -> None:
        self.con.close()


def grade_changes(pair: Pair) -> Figure:
    q = pair.query("citizens by grade in A and in B at the comparison time, per city", GRADE_CHANGES_SQL)
    diff = pair.query("score in B minus score in A (10-point bins), per city", SCORE_DIFF_SQL)
    rows = q.rows
    grades = _grade_order(pair, rows)
    fig = canvas(11, 4.2)
    left, right = grid(fig, 2, 2)
    matrix = [[sum(r["citizens"] for r in pick(rows, grade_a=ga, grade_b=gb)) for gb in grades] for ga in grades]
    left.imshow([[min(v, 1) * (1 + v) ** 0.5 for v in row] for row in matrix], cmap="Blues")
    darkest = max((v for row in matrix for v in row), default=1)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            if v:
                dark = (1 + v) ** 0.5 > 0.6 * (1 + darkest) ** 0.5
                colour = "#ffffff" if dark else ("#c0392b" if i != j else "#1c2833")
                left.text(j, i, str(v), ha="center", va="center", fontsize=9, color=colour,
                          fontweight="bold" if i != j else "normal")  # fmt: skip
    left.set_xticks(range(len(grades)), grades)
    left.set_yticks(range(len(grades)), grades)
    left.set_xlabel("grade in B", fontsize=9)
    left.set_ylabel("grade in A", fontsize=9)
    left.set_title("grade in A → grade in B (red: changed)", fontsize=10)
    for k, city in enumerate(distinct(diff.rows, "city")):
        mine = pick(diff.rows, city=city)
        right.plot(  # dots, not bars: a bar on a log scale has no honest base, and empty bins stay empty
            [r["difference_from"] + 5 for r in mine],
            [r["citizens"] for r in mine],
            "o",
            ms=5,
            alpha=0.8,
            label=city,
            color=PALETTE[k % len(PALETTE)],
        )
    right.set_yscale("log")
    right.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    right.set_xlabel("score in B − score in A", fontsize=9)
    right.set_ylabel("citizens (log scale)", fontsize=9)
    right.set_title("how far scores move (10-point bins)", fontsize=10)
    legend(right, loc="upper right")
    total, moved, up = _moves(rows, grades)
    caption = (
        f"Each citizen's grade at {pair.as_of:%Y-%m-%d %H:%M} UTC in run A and in run B: {moved} of {total} citizens "
        f"hold another grade in B ({up} a better one, {moved - up} a worse one). Right: the score difference per "
        f"citizen, B minus A."
    )
    return Figure("grade-changes", "Who changes grade", caption, png(fig), [q, diff], drawing=fig)


def _rank(grade: str | None, order: list[str]) -> int:
    return order.index(grade) if grade in order else len(order)


def _grade_order(pair: Pair, rows: list[dict[str, Any]]) -> list[str]:
    """The grades the rows hold, best first as run A's rulebooks order them (others after, by name)."""
    seen = {r["grade_a"] for r in rows} | {r["grade_b"] for r in rows}
    return [g for g in pair.grades if g in seen] + sorted(g for g in seen - set(pair.grades) if g)


def _moves(rows: list[dict[str, Any]], order: list[str]) -> tuple[int, int, int]:
    """From the grade-changes rows: (citizens, how many hold another grade in B, how many a better one)."""
    total = sum(r["citizens"] for r in rows)
    moved = sum(r["citizens"] for r in rows if r["grade_a"] != r["grade_b"])
    up = sum(
        r["citizens"]
        for r in rows
        if r["grade_a"] != r["grade_b"] and _rank(r["grade_b"], order) < _rank(r["grade_a"], order)
    )
    return total, moved, up


def list_changes(pair: Pair) -> Figure:
    q = pair.query("list membership in A and B: only in A, only in B, in both", LIST_CHANGES_SQL)
    who = pair.query("citizens on other lists in B than in A at the comparison time, per city", OTHER_LISTS_SQL)
    rows = q.rows
    other = sum(r["on_other_lists"] for r in who.rows)
    lists_ = distinct(rows, "list_id")
    fig = canvas(11, 3.4)
    axes = grid(fig, 2, 2)
    for ax, scope in zip(axes, ("on it at the end", "ever during the run"), strict=True):
        mine = [next((r for r in pick(rows, list_id=x, scope=scope)), None) for x in lists_]
        for k, (col, colour) in enumerate((("only_a", "#2e86c1"), ("only_b", "#c0392b"), ("in_both", "#aab7b8"))):
            ax.barh(
                [i + (k - 1) * 0.27 for i in range(len(lists_))],
                [(r or {}).get(col, 0) for r in mine],
                0.27,
                color=colour,
                label=col.replace("_", " "),
            )
        ax.set_yticks(range(len(lists_)), lists_, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"citizens {scope}", fontsize=10)
        counts(ax, "citizens", axis="x")
        headroom(ax, [(r or {}).get(c, 0) for r in mine for c in ("only_a", "only_b", "in_both")], horizontal=True)
        legend(ax, loc="lower right")
    end = pick(rows, scope="on it at the end")
    parts = [
        f"{r['list_id']} {r['only_a']} only in A / {r['only_b']} only in B" for r in end if r["only_a"] or r["only_b"]
    ]
    caption = (
        "Who is on which list in one run and not the other, at the comparison time and at any time during the run. "
        + (f"At the end {other} citizens are on other lists in B: " + "; ".join(parts) + "."
           if parts else "At the end both runs list the same people.")
    )  # fmt: skip
    return Figure("list-changes", "Who changes list", caption, png(fig), [q, who], drawing=fig)


def rules_driving(pair: Pair) -> Figure:
    q = pair.query("rules whose points differ between the runs, over citizens whose grade or lists differ", RULES_SQL)
    who = pair.query("the 50 citizens who change most, with the rules behind their change", WHO_SQL)
    rows = q.rows[:15]
    fig = canvas(11, 1.2 + 0.32 * max(3, len(rows)))
    ax = fig.subplots()
    for more, colour, label in ((True, "#27ae60", "more points in B"), (False, "#c0392b", "fewer points in B")):
        mine = [(i, r) for i, r in enumerate(rows) if (r["difference"] >= 0) == more]
        ax.barh([i for i, _ in mine], [r["difference"] for _, r in mine], color=colour, label=label)
    ax.set_yticks(range(len(rows)), [f"{r['rule_id']} ({r['citizens']} citizens)" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="#1c2833", lw=0.8)
    ax.set_xlabel("points in B − points in A, summed over the citizens who change", fontsize=9)
    if rows:
        legend(ax, loc="lower right")
    else:
        ax.text(0.5, 0.5, "no rule's points differ for anyone who changes", ha="center", transform=ax.transAxes)
    top = "; ".join(f"{r['rule_id']} {r['difference']:+,} points over {r['citizens']} citizens" for r in rows[:3])
    caption = (
        "Why they change: the ledger entries in force at the comparison time, attributed to the rules that gave "
        "them, summed over the citizens whose grade or lists differ; a bar is how many more (green) or fewer (red) "
        "points a rule gives them in B than in A. "
        + (f"Largest: {top}." if top else "")
        + " The numbers fold lists the 50 citizens who change most, with their rules."
    )
    return Figure("rules", "Rules driving the difference", caption, png(fig), [q, who], drawing=fig)


def decision_changes(pair: Pair) -> Figure:
    q = pair.query("the same attempts (citizen, service, time) answered in A and in B", DECISION_CHANGES_SQL)
    rows = q.rows
    services = distinct(rows, "service")
    kinds = [
        ("same answer", lambda r: r["outcome_a"] == r["outcome_b"], "#aab7b8"),
        ("denied only in B", lambda r: r["outcome_b"] == "deny" and r["outcome_a"] != "deny", "#c0392b"),
        ("denied only in A", lambda r: r["outcome_a"] == "deny" and r["outcome_b"] != "deny", "#2e86c1"),
        (
            "other change",
            lambda r: r["outcome_a"] != r["outcome_b"] and "deny" not in (r["outcome_a"], r["outcome_b"]),
            "#d68910",
        ),
    ]
    fig = canvas(11, 3.2)
    ax = fig.subplots()
    left = [0] * len(services)
    for label, test, colour in kinds:
        widths = [sum(r["attempts"] for r in pick(rows, service=s) if test(r)) for s in services]
        ax.barh(range(len(services)), widths, left=left, color=colour, label=label)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    headroom(ax, left, horizontal=True)
    ax.set_yticks(range(len(services)), services, fontsize=8)
    ax.invert_yaxis()
    counts(ax, "attempts", axis="x")
    legend(ax, loc="lower right")
    if not services:
        ax.text(0.5, 0.5, "neither run asked for a service", ha="center", transform=ax.transAxes)
    changed = sum(r["attempts"] for r in rows if r["outcome_a"] != r["outcome_b"])
    total = sum(r["attempts"] for r in rows)
    caption = (
        f"The same service attempts (citizen, service, time) answered under each run's rules: {changed} of {total} "
        "got another answer. An attempt made in one run only (two simulated runs whose citizens reacted "
        "differently) shows as 'not asked' on the other side."
    )
    return Figure("decision-changes", "Decisions answered differently", caption, png(fig), [q], drawing=fig)


def over_time(pair: Pair) -> Figure:
    ga = pair.query_in("a", "run A: citizens per grade, city and assessment", standings.GRADES_SQL)
    gb = pair.query_in("b", "run B: citizens per grade, city and assessment", standings.GRADES_SQL)
    la = pair.query_in("a", "run A: list sizes per month", lists.LISTS_SQL)
    lb = pair.query_in("b", "run B: list sizes per month", lists.LISTS_SQL)
    fig = canvas(11, 3.4)
    left, right = grid(fig, 2, 2)
    months = distinct(ga.rows, "month")
    low = pair.grades[-2:]  # the two lowest grades
    for k, city in enumerate(distinct(ga.rows, "city")):
        for q, ls in ((ga, "-"), (gb, "--")):
            ys = [sum(r["pct"] for r in pick(q.rows, city=city, month=m) if r["grade"] in low) for m in months]
            left.plot(
                range(len(months)),
                ys,
                ls=ls,
                marker="o",
                color=PALETTE[k % len(PALETTE)],
                label=f"{city} {'A' if q is ga else 'B'}",
            )
    month_ticks(left, [f"{m:%Y-%m}" for m in months])
    left.set_title(f"% of citizens in grades {' or '.join(low)} (solid A, dashed B)", fontsize=10)
    left.set_ylim(0, max(1.0, left.get_ylim()[1]) * 1.3)  # from zero, with room for the legend
    left.set_ylabel("% of citizens", fontsize=8)
    legend(left, loc="upper left")
    pmonths = distinct(la.rows, "month")
    for k, list_id in enumerate(sorted(set(distinct(la.rows, "list_id")) | set(distinct(lb.rows, "list_id")))):
        for q, ls in ((la, "-"), (lb, "--")):
            ys = [sum(r["on_list"] for r in pick(q.rows, list_id=list_id, month=m)) for m in pmonths]
            right.plot(
                range(len(pmonths)),
                ys,
                ls=ls,
                marker="o",
                color=PALETTE[k % len(PALETTE)],
                label=f"{list_id} {'A' if q is la else 'B'}",
            )
    month_ticks(right, [f"{m:%Y-%m}" for m in pmonths])
    right.set_title("citizens on each list at the month's end (solid A, dashed B)", fontsize=10)
    right.set_ylim(0, max(1.0, right.get_ylim()[1]) * 1.3)
    counts(right, "citizens")
    legend(right, loc="upper left", fontsize=6, ncols=2)
    caption = (
        "The two runs month by month: the share of each city in the lowest grades, and each list's size. Where the "
        "lines part, the rules differ in what they do to this population."
    )
    return Figure("over-time", "The two runs over time", caption, png(fig), [ga, gb, la, lb], drawing=fig)


def build(pair: Pair) -> Document:
    sections = [
        Section(
            "standing",
            "Who changes, and why",
            "Citizens whose grade or lists differ between the runs, and the rules that make the difference.",
            [grade_changes(pair), list_changes(pair), rules_driving(pair)],
        ),
        Section(
            "consequences",
            "What it changes",
            "The same service attempts under each run's rules, and both runs over time.",
            [decision_changes(pair), over_time(pair)],
        ),
    ]
    facts = [
        ("run A", f"{pair.a} — {pair.title_a}"),
        ("run B", f"{pair.b} — {pair.title_b}"),
        ("compared at", f"{pair.as_of:%Y-%m-%d %H:%M} UTC (the earlier of the two runs' last assessments)"),
        ("months", f"{pair.months} from {pair.first_month:%Y-%m}"),
    ]
    for alias in ("a", "b"):
        versions = pair.con.execute(statement(in_run(VERSIONS, alias, ["score_log"]))).fetchall()[0][0]
        facts.append((f"rulebook versions in {alias.upper()}", str(versions)))
    return Document(
        title=f"Comparison: {pair.title_a} vs {pair.title_b}",
        lede="The same synthetic population under two sets of rules: who ends up with another grade or on "
        "another list, which rules make the difference, and what the decisions do with it.",
        facts=facts,
        sections=sections,
        preamble=pair.preamble(),
        check="open an in-memory DuckDB session, paste the ATTACH and SET VARIABLE lines, then the query",
        command=f"compare {pair.a} {pair.b}",
        source=f"{pair.a} and {pair.b}",
    )


@dataclass
class Summary:
    """The comparison in one sentence, for whoever runs `compare` in a terminal: who changes, and how many
    decisions do. Read from the figures' own query answers, so it says what the page says."""

    citizens: int
    other_grade: int
    better_grade: int
    other_lists: int
    decisions: int
    other_decisions: int

    def __str__(self) -> str:
        return (
            f"{self.other_grade:,} of {self.citizens:,} citizens hold another grade in B ({self.better_grade:,} a "
            f"better one, {self.other_grade - self.better_grade:,} a worse one); {self.other_lists:,} are on other "
            f"lists; {self.other_decisions:,} of {self.decisions:,} decisions answered differently"
        )


@dataclass
class Comparison:
    written: list[Path]  # the HTML page first, then its figures
    summary: Summary


def summarise(pair: Pair, doc: Document) -> Summary:
    figures = {f.id: f for section in doc.sections for f in section.figures}
    grades = figures["grade-changes"].queries[0].rows
    total, moved, up = _moves(grades, _grade_order(pair, grades))
    lists_ = figures["list-changes"].queries[1].rows
    asked = figures["decision-changes"].queries[0].rows
    return Summary(
        citizens=total,
        other_grade=moved,
        better_grade=up,
        other_lists=sum(r["on_other_lists"] for r in lists_),
        decisions=sum(r["attempts"] for r in asked),
        other_decisions=sum(r["attempts"] for r in asked if r["outcome_a"] != r["outcome_b"]),
    )


def compare(run_a: Path, run_b: Path, out: Path | None = None) -> Comparison:
    """Write the comparison of two runs (default RUN_B/compare.html); return the files written and a summary."""
    pair = Pair.open(run_a, run_b)
    try:
        doc = build(pair)
        summary = summarise(pair, doc)
    finally:
        pair.close()
    return Comparison(write(doc, out or Path(run_b) / "compare.html"), summary)


__all__ = [
    "DECISION_CHANGES_SQL", "GRADE_CHANGES_SQL", "OTHER_LISTS_SQL", "RULES_SQL", "Comparison", "Pair", "Summary",
    "build", "compare", "summarise",
]  # fmt: skip
