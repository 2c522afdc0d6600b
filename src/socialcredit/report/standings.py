"""Standings over time: how scores spread in each city, and what share of people holds each grade.

Both figures read the engine's `score_log`, which keeps a row only when a citizen's score or grade
changes at a monthly assessment; a citizen's standing at any assessment is therefore their last logged
row at or before it (an ASOF join), exactly as the simulator's own per-month series reads it.
"""

from __future__ import annotations

import math

from socialcredit import standings as read_model
from socialcredit.report.figures import Figure, Section, canvas, distinct, grid, legend, month_ticks, pick, png
from socialcredit.report.interactive import hover_at
from socialcredit.report.rundir import MONTHS_CTE, RunDir
from socialcredit.report.sql import cte, select, statement

STANDING_CTE = cte(
    "standing",
    select(
        """SELECT x.i, x.month, x.city, x.ckey, s.score, s.grade
           FROM (SELECT m.i, m.month, m.instant, c.ckey, c.city FROM months m CROSS JOIN citizens c) x"""
    ).join(read_model.assessed_asof_join("x", "instant", "s")),
    why="each citizen at each assessment: the last score change logged at or before it",
)

QUANTILES_SQL = statement(
    """SELECT city, month, count(*) AS citizens, count(score) AS assessed, round(avg(score), 1) AS mean,
              quantile_disc(score, 0.05) AS p5, quantile_disc(score, 0.25) AS p25, quantile_disc(score, 0.5) AS median,
              quantile_disc(score, 0.75) AS p75, quantile_disc(score, 0.95) AS p95, min(score) AS min, max(score) AS max
       FROM standing GROUP BY city, month ORDER BY city, month""",
    MONTHS_CTE,
    STANDING_CTE,
)

HISTOGRAM_SQL = statement(
    """SELECT city, month, (score // 10) * 10 AS score_from, count(*) AS citizens
       FROM standing WHERE score IS NOT NULL GROUP BY ALL ORDER BY city, month, score_from""",
    MONTHS_CTE,
    STANDING_CTE,
)

GRADES_SQL = statement(
    """SELECT city, month, coalesce(grade, 'not assessed') AS grade, count(*) AS citizens,
              round(100.0 * count(*) / sum(count(*)) OVER (PARTITION BY city, month), 2) AS pct
       FROM standing GROUP BY city, month, 3 ORDER BY city, month, grade""",
    MONTHS_CTE,
    STANDING_CTE,
)

# best to worst (AAA … D in the shipped rulebooks); grades beyond six, and "not assessed", are grey
GRAPH_NOTE = (
    " In this run citizens dropped blacklisted contacts; the store keeps only the final contact graph and the "
    "engine scores every month with it, so the network rule's points in earlier months are those of the final "
    "graph, not of the graph each month saw (the simulator's scores.parquet keeps what each month saw)."
)

GRADE_COLOURS = ("#1e8449", "#58d68d", "#a9dfbf", "#f7dc6f", "#eb984e", "#c0392b", "#7b241c", "#566573")


def score_distribution(run: RunDir) -> Figure:
    quant = run.query("score quantiles per city and assessment", QUANTILES_SQL)
    hist = run.query("score histogram (10-point bins) per city and assessment", HISTOGRAM_SQL)
    rows, bins = quant.rows, hist.rows
    cities = distinct(rows, "city")
    months = distinct(rows, "month")
    fig = canvas(11, 1.2 + 0.45 * len(months) * math.ceil(len(cities) / 3))
    for ax, city in zip(grid(fig, len(cities), 3, sharey=True, sharex=True), cities, strict=True):
        mine = pick(bins, city=city)
        peak = max((r["citizens"] for r in mine), default=1)
        for k, month in enumerate(months):
            ridge = pick(mine, month=month)
            xs = [r["score_from"] + 5 for r in ridge]
            hs = [0.9 * math.log1p(r["citizens"]) / math.log1p(peak) for r in ridge]
            base = len(months) - 1 - k
            ax.fill_between(
                xs,
                base,
                [base + h for h in hs],
                step="mid",
                alpha=0.75,
                color="#2e86c1",
                lw=0.6,
                edgecolor="#1b4f72",
                label="citizens per 10-point bin" if k == 0 else None,
            )
        for k, r in enumerate(pick(rows, city=city)):
            if r["median"] is not None:
                hover_at(
                    ax,
                    r["median"],
                    len(months) - 1 - k,
                    f"{r['month']:%Y-%m-%d}: median {r['median']} (5th–95th percentile {r['p5']}–{r['p95']}, "
                    f"lowest {r['min']}, highest {r['max']}); {r['assessed']:,} assessed",
                )
        ax.set_yticks(range(len(months)))
        ax.set_yticklabels([f"{m:%Y-%m}" for m in reversed(months)], fontsize=8)
        ax.set_title(city, fontsize=10)
        ax.set_xlabel("score (10-point bins; height ∝ log(1 + citizens))", fontsize=8)
        ax.tick_params(axis="x", labelsize=8, labelbottom=True)
        legend(ax, loc="upper left")
    last = months[-1]
    summary = "; ".join(
        f"{r['city']} median {r['median']} (5th–95th percentile {r['p5']}–{r['p95']}, lowest {r['min']})"
        for r in pick(rows, month=last)
    )
    caption = (
        f"How scores spread in each city at every monthly assessment, one ridge per assessment (the first is the "
        f"starting point, before any record counted). Heights are on a log scale, so the few people far from the "
        f"base score stay visible next to the many at it. At the last assessment ({last:%Y-%m-%d}): {summary}."
    ) + (GRAPH_NOTE if run.has_table("contact_changes") else "")
    return Figure("scores", "Score distribution per city over time", caption, png(fig), [quant, hist], drawing=fig)


def grade_shares(run: RunDir) -> Figure:
    q = run.query("citizens per grade, city and assessment", GRADES_SQL)
    rows = q.rows
    cities = distinct(rows, "city")
    months = distinct(rows, "month")
    order = run.grade_order()
    grades = [g for g in order if any(r["grade"] == g for r in rows)]
    grades += [g for g in distinct(rows, "grade") if g not in grades]
    fig = canvas(11, 3.4 * math.ceil(len(cities) / 3))
    axes = grid(fig, len(cities), 3, sharey=True, sharex=True)
    for ax, city in zip(axes, cities, strict=True):
        stack = [
            [next((r["pct"] for r in pick(rows, city=city, month=m, grade=g)), 0.0) for m in months] for g in grades
        ]
        colours = [GRADE_COLOURS[order.index(g)] if g in order else GRADE_COLOURS[-1] for g in grades]
        ax.stackplot(range(len(months)), stack, labels=grades, colors=colours, alpha=0.9)
        for i, month in enumerate(months):
            below = 0.0
            for g, layer in zip(grades, stack, strict=True):
                if layer[i]:
                    hover_at(ax, i, below + layer[i] / 2, f"{month:%Y-%m-%d}: {g} {layer[i]:.2f}% of citizens")
                below += layer[i]
        month_ticks(ax, [f"{m:%Y-%m}" for m in months])
        ax.set_ylim(0, 100)
        ax.set_title(city, fontsize=10)
        ax.set_ylabel("% of citizens", fontsize=8)
        ax.tick_params(axis="x", labelbottom=True)
        legend(ax, loc="center left", ncols=3)  # the thin best and worst grades lie at the edges
    last = months[-1]
    parts = []
    for city in cities:
        shares = ", ".join(
            f"{r['grade']} {r['pct']:.1f}%" for g in grades for r in pick(rows, city=city, month=last, grade=g)
        )
        parts.append(f"{city}: {shares}")
    caption = (
        f"Share of each city's citizens holding each grade at every monthly assessment, best grade on top. "
        f"At {last:%Y-%m-%d}: " + "; ".join(parts) + "."
    ) + (GRAPH_NOTE if run.has_table("contact_changes") else "")
    return Figure("grades", "Grade shares over time", caption, png(fig), [q], drawing=fig)


def section(run: RunDir) -> Section:
    return Section(
        "standings",
        "Scores and grades",
        "Where the population stands at each monthly assessment, city by city.",
        [score_distribution(run), grade_shares(run)],
    )


__all__ = ["GRADES_SQL", "QUANTILES_SQL", "STANDING_CTE", "grade_shares", "score_distribution", "section"]
