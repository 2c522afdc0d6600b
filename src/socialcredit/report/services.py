"""Services: what the automated decisions did, and the children reached by their parents' measures.

Decisions are read from the store's `decisions` table — every simulated attempt went through `decide` and
left a row with its outcome and reasons (JSON) — so "tickets blocked" here is what the system answered,
not a model of it. Children reached are counted in SQL with the same rules as `decisions.reaching_measures`
(a parent's stay active at the instant, a measure reaching children, still within its term; a lasting
measure from any earlier stay); the tests check the count against the simulator's own series, which asks
the decision path itself.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from socialcredit import standings as read_model
from socialcredit.catalog import default_catalog
from socialcredit.engine.sql import cst_shift, fill
from socialcredit.report.figures import (
    OUTCOME_COLOURS,
    Figure,
    Section,
    canvas,
    counts,
    distinct,
    empty_note,
    grid,
    headroom,
    legend,
    month_ticks,
    pick,
    png,
)
from socialcredit.report.rundir import CST_OFFSET_HOURS, MONTHS_CTE, PERIODS_CTE, Query, RunDir
from socialcredit.report.sql import statement
from socialcredit.rulebook import duration_parts

DECISIONS_SQL = statement(
    """SELECT p.month, d.service, d.outcome, count(*) AS decisions
       FROM decisions d JOIN periods p ON d.asked_at >= p.since AND d.asked_at < p.until
       GROUP BY ALL ORDER BY d.service, p.month, d.outcome""",
    MONTHS_CTE,
    PERIODS_CTE,
)

REASONS_SHAPE = '[{"measure": "VARCHAR", "effect": "VARCHAR", "via": "VARCHAR"}]'  # a decision's reasons (JSON)

BINDING_SQL = statement(
    """SELECT d.service, d.outcome, r.measure, split_part(r.via, ':', 1) AS via, count(*) AS decisions
       FROM decisions d, unnest(from_json(d.reasons, $shape)) AS u(r)
       WHERE d.outcome <> 'allow' AND d.asked_at < getvariable('as_of')
       GROUP BY ALL ORDER BY decisions DESC, d.service, r.measure""",
    shape=REASONS_SHAPE,
)

# A parent's measure reaches a child while the child is under the measure's `children_under` on the CST
# calendar day (`stays.coming_of_age`, which `decide` uses): the local date is before the birthday that
# ends it, a 29 February birthday falling on 1 March in a common year (DuckDB's date arithmetic would
# give 28 February, so the day is moved on by hand).
COMING_OF_AGE = fill(
    """(c.birth_date + to_years(m.children_under)
        + CASE WHEN month(c.birth_date) = 2 AND day(c.birth_date) = 29
                    AND day(c.birth_date + to_years(m.children_under)) = 28
               THEN INTERVAL 1 DAY ELSE INTERVAL 0 DAY END)"""
)

CHILDREN_SQL = statement(
    """WITH reached AS (
           SELECT p.i, r.ckey AS child, bool_or((p.until + $shift)::DATE < $coming_of_age) AS bound
           FROM periods p
           JOIN list_entries s ON s.start <= p.until
           JOIN citizens parent ON parent.ckey = s.ckey
           JOIN reaching m ON m.i = p.i AND m.city = parent.city AND m.list_id = s.list_id
                AND (m.lasting OR (($not_ended)
                     AND (m.term_months IS NULL
                          OR s.start + to_months(m.term_months) + to_days(m.term_days) > p.until)))
           JOIN relations r ON r.other = s.ckey AND r.kind = 'parent' AND $tie
           JOIN citizens c ON c.ckey = r.ckey
           GROUP BY ALL)
       SELECT p.month, count(x.child) FILTER (WHERE x.bound) AS children, count(x.child) AS any_age
       FROM periods p LEFT JOIN reached x USING (i)
       GROUP BY p.month ORDER BY p.month""",
    MONTHS_CTE,
    PERIODS_CTE,
    shift=cst_shift(),
    coming_of_age=COMING_OF_AGE,
    not_ended=read_model.not_ended("p.until", "s"),
    tie=read_model.valid_at("p.until", "r"),
    why={
        "reached": "sons and daughters (ties in force) of a parent whose stay, at the month's end, carries a measure "
        "that reaches children; bound while the child is under that measure's age"
    },
)

PARENT_BOUND_SQL = statement(
    """SELECT p.month, d.service, d.outcome, count(DISTINCT d.decision_id) AS decisions,
              count(DISTINCT d.ckey) AS children
       FROM decisions d JOIN periods p ON d.asked_at >= p.since AND d.asked_at < p.until,
            unnest(from_json(d.reasons, $shape)) AS u(r)
       WHERE starts_with(r.via, 'parent:') AND r.effect = d.outcome
       GROUP BY ALL ORDER BY p.month, d.service""",
    MONTHS_CTE,
    PERIODS_CTE,
    shape=REASONS_SHAPE,
)


def decisions_over_time(run: RunDir) -> Figure:
    q = run.query("decisions per month, service and outcome", DECISIONS_SQL)
    binding = run.query(
        "decisions other than allow, by the measure that bound them and where it came from", BINDING_SQL
    )
    rows = q.rows
    services = distinct(rows, "service")
    months = run.period_months()
    outcomes = [o for o in OUTCOME_COLOURS if any(r["outcome"] == o for r in rows)]
    outcomes += [o for o in distinct(rows, "outcome") if o not in outcomes]
    fig = canvas(11, 3.0 * max(1, (len(services) + 2) // 3))
    axes = grid(fig, max(1, len(services)), 3)
    if not services:
        empty_note(axes[0], "no service was asked for in this run")
    for ax, service in zip(axes, services, strict=False):
        bottom = [0] * len(months)
        for outcome in outcomes:
            hs = [sum(r["decisions"] for r in pick(rows, service=service, month=m, outcome=outcome)) for m in months]
            ax.bar(
                range(len(months)), hs, 0.7, bottom=bottom, label=outcome, color=OUTCOME_COLOURS.get(outcome, "#999")
            )
            bottom = [b + h for b, h in zip(bottom, hs, strict=True)]
        headroom(ax, bottom)
        month_ticks(ax, [f"{m:%Y-%m}" for m in months])
        counts(ax, "decisions")
        ax.set_title(service, fontsize=10)
        legend(ax, loc="upper left", ncols=min(4, len(outcomes)), fontsize=6)
    parts = []
    for service in services:
        total = sum(r["decisions"] for r in pick(rows, service=service))
        not_allowed = {o: sum(r["decisions"] for r in pick(rows, service=service, outcome=o)) for o in outcomes}
        shown = ", ".join(f"{n} {o}" for o, n in not_allowed.items() if n and o != "allow")
        parts.append(f"{service} {total} asked" + (f" ({shown})" if shown else ""))
    top = binding.rows[:3]
    why = "; ".join(f"{r['measure']} via {r['via']} in {r['decisions']} {r['service']} decisions" for r in top)
    caption = (
        "Every simulated attempt to use a service went through the automated decision and is counted by its "
        "outcome: deny means a ticket not sold, a loan refused, a school place closed. "
        + ("; ".join(parts) + ". " if parts else "")
        + (f"Most frequent reasons: {why}." if why else "No decision other than allow.")
    )
    return Figure(
        "decisions", "Decisions by service and outcome over time", caption, png(fig), [q, binding], drawing=fig
    )


def reaching_table(run: RunDir) -> pa.Table:
    """Per month end and city: the lists whose measures reach children, from the rulebooks then in force."""
    catalog = default_catalog()
    cols: dict[str, list] = {
        k: [] for k in ("i", "city", "list_id", "measure", "term_months", "term_days", "lasting", "children_under")
    }

    def add(i: int, city: str, list_id: str, measure: str, term: str | None, lasting: bool) -> None:
        months = days = None
        if term:
            n, unit = duration_parts(term)
            months, days = (n * 12 if unit == "year" else n if unit == "month" else 0), (n if unit == "day" else 0)
        under = catalog.measures[measure].children_under
        for k, v in zip(cols, (i, city, list_id, measure, months, days, lasting, under), strict=True):
            cols[k].append(v)

    for i in range(run.months):
        local = run.period_months()[i]
        y, m = divmod(local.month, 12)
        end = dt.datetime(local.year + y, m + 1, 1) - dt.timedelta(hours=CST_OFFSET_HOURS)
        for city in run.cities():
            rb = run.rulebook_at(city, end)
            for lst in rb.lists if rb else []:
                for lm in lst.list_measures():
                    if catalog.measures[lm.measure].reach == "children":
                        add(i, city, lst.id, lm.measure, lm.for_, False)
            for mem in rb.memory if rb else []:
                for code in mem.measures:
                    if catalog.measures[code].reach == "children":
                        add(i, city, mem.after, code, None, True)
    types = [pa.int64(), pa.string(), pa.string(), pa.string(), pa.int32(), pa.int32(), pa.bool_(), pa.int32()]
    return pa.table({k: pa.array(v, t) for (k, v), t in zip(cols.items(), types, strict=True)})


def children_reached(run: RunDir) -> Figure:
    reaching = reaching_table(run)
    q = run.query(
        "citizens reached through a parent's measure at each month's end", CHILDREN_SQL, {"reaching": reaching}
    )
    bound = run.query("decisions bound by a parent's measure, per month and service", PARENT_BOUND_SQL)
    distinct_rules = reaching.group_by(
        ["city", "list_id", "measure", "term_months", "term_days", "lasting", "children_under"]
    ).aggregate([("i", "min")])
    inputs = Query(
        "input reaching: lists whose measures reach children (from the rulebooks in force each month)",
        "-- derived from the rulebooks in force each month (one row per month index i; distinct rows shown) and "
        "registered for the query above",
        distinct_rules,
    )
    rows = q.rows
    months = [r["month"] for r in rows]
    fig = canvas(11, 3.2)
    left, right = grid(fig, 2, 2)
    left.plot(
        range(len(months)),
        [r["any_age"] for r in rows],
        marker="o",
        label="sons and daughters, any age",
        color="#d68910",
    )
    left.plot(
        range(len(months)),
        [r["children"] for r in rows],
        marker="s",
        label="reached (under the age bound)",
        color="#c0392b",
    )
    left.set_title("children of listed parents (month's end)", fontsize=10)
    left.set_ylim(0, max([1, *[r["any_age"] for r in rows]]) * 1.1)
    counts(left, "citizens reached")
    legend(left, loc="upper left")
    month_ticks(left, [f"{m:%Y-%m}" for m in months])
    bmonths = run.period_months()
    services = distinct(bound.rows, "service")
    for k, service in enumerate(services):
        right.bar(
            [i + k * 0.8 / max(1, len(services)) - 0.4 for i in range(len(bmonths))],
            [sum(r["decisions"] for r in pick(bound.rows, month=m, service=service)) for m in bmonths],
            0.8 / max(1, len(services)),
            label=service,
            align="edge",
        )
    right.set_title("decisions bound by a parent's measure", fontsize=10)
    month_ticks(right, [f"{m:%Y-%m}" for m in bmonths])
    if services:
        counts(right, "decisions")
        headroom(right, [sum(r["decisions"] for r in pick(bound.rows, month=m)) for m in bmonths])
        legend(right, loc="upper left")
    else:
        empty_note(right, "no decision was bound by a parent's measure")
    measures = ", ".join(sorted({r["measure"] for r in reaching.to_pylist()})) or "none"
    last = rows[-1] if rows else {"children": 0, "any_age": 0, "month": run.first_month}
    bounds = ", ".join(sorted({f"{r['measure']} under {r['children_under']}" for r in reaching.to_pylist()}))
    denied = sum(r["decisions"] for r in bound.rows if r["outcome"] == "deny")
    caption = (
        f"Measures that reach a citizen's children ({measures}): how many sons and daughters listed parents have "
        f"at each month's end, and how many of them a measure reaches — {last['children']} of {last['any_age']} at "
        f"the end of {last['month']:%Y-%m}, because a measure reaches a child only while the child is under its age "
        f"bound ({bounds or 'none'}) — and the decisions they decided ({denied} denials over the run)."
    )
    return Figure(
        "children", "Children reached by their parents' measures", caption, png(fig), [q, bound, inputs], drawing=fig
    )


def section(run: RunDir) -> Section:
    return Section(
        "services",
        "Decisions",
        "What the automated decisions answered when people asked for tickets, loans, rooms and school places.",
        [decisions_over_time(run), children_reached(run)],
    )


__all__ = ["CHILDREN_SQL", "DECISIONS_SQL", "children_reached", "decisions_over_time", "reaching_table", "section"]
