"""The lists: how many people are on them, how long they stay, how they get off, and what stays with them.

All four figures read the engine's `list_entries` (one row per stay: start, end or open, cause). A stay
whose end lies after the run's last assessment is counted as still on: the report never looks past
`as_of`, even where a fixed term already tells when the stay will end.
"""

from __future__ import annotations

import textwrap

import pyarrow as pa

from socialcredit import standings as read_model
from socialcredit.report.figures import (
    PALETTE,
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
from socialcredit.report.interactive import hover
from socialcredit.report.rundir import MONTHS_CTE, PERIODS_CTE, Query, RunDir
from socialcredit.report.sql import cte, statement

LISTS_SQL = statement(
    """SELECT p.month, e.list_id, e.kind,
              count(DISTINCT e.ckey) FILTER (WHERE $on) AS on_list,
              count(*) FILTER (WHERE e.start > p.since AND e.start <= p.until) AS entries,
              count(*) FILTER (WHERE e."end" > p.since AND e."end" <= p.until) AS exits
       FROM periods p CROSS JOIN list_entries e
       GROUP BY p.month, e.list_id, e.kind ORDER BY e.kind, e.list_id, p.month""",
    MONTHS_CTE,
    PERIODS_CTE,
    on=read_model.in_force("p.until", "e"),
)

STAYS_CTE = cte(
    "stays",
    """SELECT list_id, kind, ckey, start, "end", coalesce("end" <= getvariable('as_of'), false) AS ended,
              date_diff('day', start, CASE WHEN "end" <= getvariable('as_of') THEN "end" ELSE getvariable('as_of') END)
                  AS days
       FROM list_entries WHERE start <= getvariable('as_of')""",
    why="every stay begun by the run's end; one still running then is censored there",
)

# Kaplan–Meier, one curve per list, in SQL so the shown numbers can be re-run like every other: at each length
# (whole days) at which a stay ended, the share still on is multiplied by (1 - ended / at risk); a stay still
# running at as_of leaves the risk set at its length so far (censored) without ending. The 95% interval is
# the log one (Greenwood's variance for log S, as R's survfit gives by default); it is left out once S is 0.
KM_CTES = (
    cte(
        "times",
        """SELECT list_id, kind, days, count(*) FILTER (WHERE ended) AS ended,
                  count(*) FILTER (WHERE NOT ended) AS censored
           FROM stays GROUP BY ALL""",
    ),
    cte("risk", "SELECT *, sum(ended + censored) OVER (PARTITION BY list_id ORDER BY days DESC) AS at_risk FROM times"),
    cte(
        "km",
        """SELECT *, product(1 - ended / at_risk) OVER w AS s,
                  sum(ended / nullif(at_risk * (at_risk - ended), 0)) OVER w AS greenwood
           FROM risk WINDOW w AS (PARTITION BY list_id ORDER BY days ROWS UNBOUNDED PRECEDING)""",
    ),
)

SURVIVAL_SQL = statement(
    """SELECT list_id, kind, days, at_risk::BIGINT AS at_risk, ended, censored, round(s, 4) AS still_on,
              CASE WHEN s > 0 THEN round(s * exp(-1.959964 * sqrt(greenwood)), 4) END AS ci_low,
              CASE WHEN s > 0 THEN round(least(1, s * exp(1.959964 * sqrt(greenwood))), 4) END AS ci_high
       FROM km ORDER BY kind, list_id, days""",
    STAYS_CTE,
    *KM_CTES,
)

STAY_SUMMARY_SQL = statement(
    """SELECT list_id, any_value(kind) AS kind, count(*) AS stays, count(*) FILTER (WHERE ended) AS ended,
              count(*) FILTER (WHERE NOT ended) AS still_on, max(days) AS longest_days,
              (SELECT min(k.days) FROM km k WHERE k.list_id = stays.list_id AND k.s <= 0.5) AS median_days,
              median(date_diff('day', start, "end")) FILTER (WHERE NOT ended AND "end" IS NOT NULL)
                  AS median_term_days_set,
              count(*) FILTER (WHERE "end" IS NULL) AS open_ended
       FROM stays GROUP BY list_id ORDER BY kind, stays DESC, list_id""",
    STAYS_CTE,
    *KM_CTES,
)

EXITS_SQL = statement(
    """WITH
       at_end AS (
           SELECT r.ckey, r.occurred_at, string_agg(DISTINCT b.code, ', ' ORDER BY b.code) AS behaviours
           FROM records r JOIN behaviours b USING (bkey) ANTI JOIN retractions x USING (rkey) GROUP BY ALL),
       repairs AS (
           SELECT r.ckey, r.occurred_at
           FROM records r JOIN behaviours b USING (bkey) ANTI JOIN retractions x USING (rkey)
           WHERE b.code = 'credit_repair_completed')
       SELECT p.month, e.list_id,
              CASE WHEN e.cause = 'behaviour' THEN 'fixed term expired'
                   WHEN e.cause = 'grade' AND EXISTS (SELECT 1 FROM repairs k WHERE k.ckey = e.ckey
                        AND k.occurred_at >= e.start AND k.occurred_at < e."end")
                       THEN 'grade recovered after a credit repair'
                   WHEN e.cause = 'grade' THEN 'grade recovered after the minimum stay'
                   WHEN d.behaviours IS NOT NULL THEN 'cleared by a record: ' || d.behaviours
                   ELSE 'characteristic lapsed or rulebook changed' END AS route,
              count(*) AS exits
       FROM list_entries e JOIN periods p ON e."end" > p.since AND e."end" <= p.until
       LEFT JOIN at_end d ON e.cause = 'characteristic' AND d.ckey = e.ckey AND d.occurred_at = e."end"
       WHERE e.kind = 'blacklist'
       GROUP BY ALL ORDER BY p.month, e.list_id, route""",
    MONTHS_CTE,
    PERIODS_CTE,
    why={
        "at_end": "what the citizen's (unretracted) records say at the instant a stay ended",
        "repairs": "credit repairs granted (objections.py reports them as records of this behaviour)",
    },
)

CASES_SQL = """SELECT kind, status, count(*) AS cases FROM cases WHERE filed_at <= getvariable('as_of')
GROUP BY ALL ORDER BY ALL"""

RETRACTIONS_SQL = """SELECT count(*) AS retracted_records, count(DISTINCT r.ckey) AS citizens
FROM retractions x JOIN records r USING (rkey) WHERE x.retracted_at <= getvariable('as_of')"""

# the read model's questions at the report's time: a stay not yet ended, the whitelist now, the latest assessment
MEMORY_SQL = statement(
    """WITH
       stays AS (SELECT ckey, bool_or($now) AS now
                 FROM list_entries WHERE kind = 'blacklist' AND start <= getvariable('as_of') GROUP BY ckey),
       marked AS (
           SELECT DISTINCT e.ckey FROM list_entries e JOIN citizens c USING (ckey)
           JOIN memory_rules m ON m.city = c.city AND m.after_list = e.list_id WHERE e.start <= getvariable('as_of')),
       white AS (SELECT DISTINCT ckey FROM __white),
       asks AS (SELECT ckey, count(*) AS attempts, count(*) FILTER (WHERE outcome = 'deny') AS denied
                FROM decisions WHERE asked_at <= getvariable('as_of') GROUP BY ckey)
       SELECT CASE WHEN s.now THEN 'on a blacklist now' WHEN s.ckey IS NOT NULL THEN 'listed before, not now'
                   ELSE 'never listed' END AS history,
              count(*) AS citizens, round(avg(l.score), 1) AS mean_score,
              round(100.0 * count(w.ckey) / count(*), 2) AS whitelisted_pct,
              round(100.0 * count(k.ckey) / count(*), 2) AS lasting_mark_pct,
              coalesce(sum(a.attempts), 0)::BIGINT AS attempts, coalesce(sum(a.denied), 0)::BIGINT AS denied,
              round(100.0 * coalesce(sum(a.denied), 0) / nullif(sum(a.attempts), 0), 2) AS denied_pct
       FROM citizens c LEFT JOIN stays s USING (ckey) LEFT JOIN white w USING (ckey) LEFT JOIN marked k USING (ckey)
       LEFT JOIN last l USING (ckey) LEFT JOIN asks a USING (ckey)
       GROUP BY 1 ORDER BY 1""",
    cte("last", read_model.latest_assessments(read_model.AS_OF)),
    now=read_model.in_force(read_model.AS_OF),
    white=read_model.stays_at(read_model.AS_OF, "whitelist"),
    why={"marked": 'a stay on a list that the citizen\'s rulebook remembers for good ("once untrustworthy …")'},
)

HISTORY_ORDER = ("never listed", "listed before, not now", "on a blacklist now")


def list_sizes(run: RunDir) -> Figure:
    q = run.query("citizens on each list at the end of each month, stays begun and ended in it", LISTS_SQL)
    rows = q.rows
    months = distinct(rows, "month") or [run.first_month]
    lists = distinct(rows, "list_id")
    labels = [f"{m:%Y-%m}" for m in months]
    fig = canvas(11, 3.8)
    axes = grid(fig, 3, 3)
    axes[2].sharey(axes[1])  # begun and ended are compared bar for bar
    x = range(len(months))
    begun, ended = [0] * len(months), [0] * len(months)
    for k, list_id in enumerate(lists):
        mine = pick(rows, list_id=list_id)
        colour = PALETTE[k % len(PALETTE)]
        axes[0].plot(
            x,
            [r["on_list"] for r in mine],
            marker="os^vD"[k % 5],
            label=list_id,
            color=colour,
            ls=("-", "--", ":", "-.")[k % 4],
        )  # identical lists (one cause) stay visible
        for ax, col, bottom in ((axes[1], "entries", begun), (axes[2], "exits", ended)):
            hs = [r[col] for r in mine]
            ax.bar(x, hs, 0.7, bottom=list(bottom), color=colour, label=list_id)
            bottom[:] = [b + h for b, h in zip(bottom, hs, strict=True)]
    headroom(axes[1], [*begun, *ended])
    axes[0].set_ylim(0, max([1, *[r["on_list"] for r in rows]]) * 1.05)
    for ax, title, unit in zip(
        axes,
        ("on the list at the month's end", "stays begun (stacked by list)", "stays ended (stacked by list)"),
        ("citizens", "stays begun", "stays ended"),
        strict=True,
    ):
        ax.set_title(title, fontsize=10)
        month_ticks(ax, labels)
        counts(ax, unit)
        ax.tick_params(labelleft=True)
        if lists:
            legend(ax, loc="upper left", fontsize=6)
    last = months[-1]
    size = ", ".join(f"{r['list_id']} {r['on_list']}" for r in pick(rows, month=last))
    entries = sum(r["entries"] for r in rows)
    exits = sum(r["exits"] for r in rows)
    caption = (
        f"Each list's size at the end of every month and the stays that began and ended in it (a citizen may "
        f"hold several stays at once, e.g. the court's defaulter list and the city blacklist from one judgment). "
        f"At the end of {last:%Y-%m}: {size or 'no one on any list'}. Over the run: {entries} stays begun, "
        f"{exits} ended."
    )
    limits = [] if rows else ["No list entries in this run: the picture is empty because nobody was listed."]
    return Figure("lists", "List sizes, entries and exits per month", caption, png(fig), [q], limits, drawing=fig)


def time_on_list(run: RunDir) -> Figure:
    curves = run.query("share of stays still running by days on the list (Kaplan–Meier), per list", SURVIVAL_SQL)
    summary = run.query("stays per list: ended, still on at the run's end (censored), median length", STAY_SUMMARY_SQL)
    lists = distinct(summary.rows, "list_id")
    fig = canvas(11, 1.0 + 2.6 * max(1, (len(lists) + 2) // 3))
    axes = grid(fig, max(1, len(lists)), 3, sharex=True, sharey=True)
    if not lists:
        empty_note(axes[0], "nobody was put on a list in this run")
    for k, (ax, list_id) in enumerate(zip(axes, lists, strict=False)):
        mine = pick(curves.rows, list_id=list_id)
        colour = PALETTE[k % len(PALETTE)]
        days = [0, *[r["days"] for r in mine]]
        (curve,) = ax.step(
            days, [1.0, *[r["still_on"] for r in mine]], where="post", color=colour, label="still on the list"
        )
        hover(
            curve,
            [
                "day 0: all stays running",
                *[
                    f"day {r['days']}: {r['still_on']:.1%} still on (95% {_share(r['ci_low'])}–{_share(r['ci_high'])});"
                    f" at risk {r['at_risk']}, ended {r['ended']}, censored {r['censored']}"
                    for r in mine
                ],
            ],
        )
        band = [r for r in mine if r["ci_low"] is not None]
        if band:
            ax.fill_between(
                [0, *[r["days"] for r in band]],
                [1.0, *[r["ci_low"] for r in band]],
                [1.0, *[r["ci_high"] for r in band]],
                step="post",
                alpha=0.18,
                color=colour,
                lw=0,
                label="95% interval",
            )
        cut = [r for r in mine if r["censored"]]
        ax.plot(
            [r["days"] for r in cut],
            [r["still_on"] for r in cut],
            "|",
            ms=9,
            mew=1.2,
            color="#1c2833",
            label="still on at the run's end (censored)",
        )
        info = pick(summary.rows, list_id=list_id)[0]
        ax.set_title(f"{list_id} ({info['kind']}, {info['stays']} stays)", fontsize=9)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("days on the list", fontsize=8)
        ax.set_ylabel("share of stays still running", fontsize=8)
        ax.tick_params(labelbottom=True, labelleft=True, labelsize=8)
        legend(ax, loc="lower left")
    axes[0].set_xlim(0, max([1, *[r["longest_days"] for r in summary.rows]]) * 1.03)  # shared by every panel
    parts = []
    for r in summary.rows:
        median = (
            f"half end within {r['median_days']} days"
            if r["median_days"] is not None
            else f"more than half still running (longest so far {r['longest_days']} days)"
        )
        term = (
            f", terms already set for those still on: median {r['median_term_days_set']:.0f} days"
            if (r["median_term_days_set"] is not None)
            else ""
        )
        parts.append(
            f"{r['list_id']}: {r['stays']} stays, {r['ended']} ended, {r['still_on']} still on, {median}{term}"
        )
    caption = (
        "How long stays on each list last, as survival curves (Kaplan–Meier): the share of stays still running after "
        "so many days. A stay still running at the run's end is censored — a tick mark at its length so far: it "
        "counts as running up to there and drops out of the curve after, instead of being drawn as if it had ended. "
        "Shaded: the 95% interval (log, Greenwood). Fixed terms (a 30-day screen, a 180-day rail ban) show as a "
        "drop to zero at the term. " + ("; ".join(parts) if parts else "Nobody was listed in this run.") + "."
    )
    return Figure("time-on-list", "Time on a list", caption, png(fig), [curves, summary], drawing=fig)


def blacklist_exits(run: RunDir) -> Figure:
    q = run.query("blacklist stays ended per month, by the way they ended", EXITS_SQL)
    retracted = run.query("records withdrawn (retractions) by the run's end", RETRACTIONS_SQL)
    rows = q.rows
    queries = [q, retracted]
    cases = None
    if run.has_table("cases"):
        cases = run.query("objections and credit repairs filed by the run's end, by outcome", CASES_SQL)
        queries.append(cases)
    months = run.period_months()
    routes = distinct(rows, "route")
    fig = canvas(11, 3.8)
    left, right = grid(fig, 2, 2)
    bottom = [0] * len(months)
    for k, route in enumerate(routes):
        heights = [sum(r["exits"] for r in pick(rows, route=route, month=m)) for m in months]
        left.bar(range(len(months)), heights, 0.7, bottom=bottom, label=route, color=PALETTE[k % len(PALETTE)])
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    headroom(left, bottom)
    month_ticks(left, [f"{m:%Y-%m}" for m in months])
    counts(left, "stays ended")
    left.set_title("blacklist stays ended per month, by the way out", fontsize=10)
    if routes:
        legend(left, loc="upper left")
    else:
        empty_note(left, "no blacklist stay ended in this run")
    pairs = [(lst, route) for lst in distinct(rows, "list_id") for route in routes]
    totals = [(lst, route, sum(r["exits"] for r in pick(rows, list_id=lst, route=route))) for lst, route in pairs]
    totals = [t for t in totals if t[2]]
    for k, route in enumerate(routes):
        mine = [(i, t) for i, t in enumerate(totals) if t[1] == route]
        right.barh([i for i, _ in mine], [t[2] for _, t in mine], color=PALETTE[k % len(PALETTE)], label=route)
    right.set_yticks(range(len(totals)))
    right.set_yticklabels([t[0] for t in totals], fontsize=7)
    right.invert_yaxis()
    right.set_title("ended stays over the run, by list and way out", fontsize=10)
    if totals:
        counts(right, "stays ended over the run", axis="x")
        headroom(right, [t[2] for t in totals], horizontal=True)
        legend(right, loc="lower right")
    else:
        empty_note(right, "no blacklist stay ended in this run")
    by_route = {route: sum(r["exits"] for r in pick(rows, route=route)) for route in routes}
    n_retracted = retracted.rows[0]["retracted_records"]
    caption = (
        "How people leave a blacklist: a fixed term runs out (rail and flight bans), the score recovers past a "
        "grade list's minimum stay, or a record clears the cause (a court delisting after payment, a guarantee "
        "settled — in a simulated run these are the citizens' responses to sanctions). "
        + ("Over the run: " + ", ".join(f"{k} {v}" for k, v in by_route.items()) + ". " if by_route else "")
        + f"{n_retracted} records were withdrawn in this run; a withdrawn record removes the stay it caused "
        "altogether (the ledger and lists are recomputed without it), so it shows here as a stay that never was, "
        "not as an exit."
    )
    if cases is None:
        limits = [
            "Credit repair and upheld objections: this run has no cases table (no citizen filed an objection "
            "or asked for repair), so no stay ended that way. An upheld objection withdraws its record, so the "
            "stay it caused disappears rather than ends; a granted repair shows as a grade recovered after a "
            "credit repair."
        ]
    else:
        upheld = sum(r["cases"] for r in cases.rows if r["kind"] == "objection" and r["status"] == "upheld")
        repaired = sum(r["cases"] for r in cases.rows if r["kind"] == "repair" and r["status"] == "upheld")
        caption += (
            f" Objections upheld: {upheld} (the stays they touched are gone, not ended); credit repairs granted: "
            f"{repaired}."
        )
        limits = []
    return Figure("blacklist-exits", "How people leave the blacklist", caption, png(fig), queries, limits, drawing=fig)


def memory_rules(run: RunDir) -> pa.Table:
    """(city, after_list, memory_id, measures) from each city's rulebook in force at the run's end."""
    rows: dict[str, list] = {"city": [], "after_list": [], "memory_id": [], "measures": []}
    for city in run.cities():
        rb = run.rulebook_at(city, run.as_of)
        for m in rb.memory if rb else []:
            rows["city"].append(city)
            rows["after_list"].append(m.after)
            rows["memory_id"].append(m.id)
            rows["measures"].append(", ".join([*m.measures, *(f"never {x}" for x in m.never_lists)]))
    return pa.table(rows, schema=pa.schema([(k, pa.string()) for k in rows]))


def once_untrustworthy(run: RunDir) -> Figure:
    rules = memory_rules(run)
    q = run.query(
        "citizens by blacklist history at the run's end: score, whitelist, lasting marks, denials",
        MEMORY_SQL,
        {"memory_rules": rules},
    )
    inputs = Query(
        "input memory_rules: what each city's rulebook remembers for good",
        "-- derived from the rulebooks in force at as_of and registered for the query above",
        rules,
    )
    rows = sorted(q.rows, key=lambda r: HISTORY_ORDER.index(r["history"]) if r["history"] in HISTORY_ORDER else 9)
    groups = [r["history"] for r in rows]
    fig = canvas(11, 3.4)
    axes = grid(fig, 4, 4)
    colours = ["#7fb3d5", "#d68910", "#c0392b"][: len(groups)]
    names = [f"{g} ({r['citizens']:,})" for g, r in zip(groups, rows, strict=True)]
    for ax, (col, title) in zip(
        axes,
        (
            ("mean_score", "mean score"),
            ("whitelisted_pct", "% on the whitelist"),
            ("lasting_mark_pct", "% with a lasting mark"),
            ("denied_pct", "% of service attempts denied"),
        ),
        strict=True,
    ):
        values = [r[col] or 0 for r in rows]
        bars = ax.bar(range(len(groups)), values, color=colours)
        for bar, name in zip(bars, names, strict=True):
            bar.set_label(name)
        ax.bar_label(bars, [f"{v:g}" for v in values], fontsize=7, padding=2)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([textwrap.fill(g, 14) for g in groups], fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, max([1.0, *values]) * 1.6)  # bars start at zero; room for the labels and the legend
        legend(ax, loc="upper left", fontsize=6, title="citizens", title_fontsize=6)
    remembered = ", ".join(sorted({f"{r['after_list']} → {r['measures']}" for r in rules.to_pylist()}))
    text = "; ".join(
        f"{r['history']}: {r['citizens']} citizens, mean score {r['mean_score']}, {r['whitelisted_pct']}% whitelisted,"
        f" {r['lasting_mark_pct']}% marked, {_pct(r['denied_pct'])} of attempts denied"
        for r in rows
    )
    caption = (
        '"Once untrustworthy, always restricted": people who were on a blacklist and are off it again, compared with '
        "those never listed and those on one now, at the run's end. The rulebooks remember "
        + (remembered or "nothing")
        + " — a lasting mark bars the whitelist and keeps permanent measures however the score recovers; measures "
        "with a term of their own (the one-year train and flight bans) also outlast the stay that set them. "
        + text
        + "."
    )
    return Figure("memory", "Once untrustworthy, always restricted", caption, png(fig), [q, inputs], drawing=fig)


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value}%"


def section(run: RunDir) -> Section:
    return Section(
        "lists",
        "Lists",
        "Who is put on the whitelist and the blacklists, for how long, how they get off, and what stays with them.",
        [list_sizes(run), time_on_list(run), blacklist_exits(run), once_untrustworthy(run)],
    )


__all__ = ["EXITS_SQL", "LISTS_SQL", "MEMORY_SQL", "STAY_SUMMARY_SQL", "SURVIVAL_SQL", "section", "time_on_list"]
