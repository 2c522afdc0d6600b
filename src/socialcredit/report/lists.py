"""The lists: how many people are on them, how long they stay, how they get off, and what stays with them.

All four figures read the engine's `list_entries` (one row per stay: start, end or open, cause). A stay
whose end lies after the run's last assessment is counted as still on: the report never looks past
`as_of`, even where a fixed term already tells when the stay will end.
"""

from __future__ import annotations

import pyarrow as pa

from socialcredit.report.figures import (
    PALETTE,
    Figure,
    Section,
    canvas,
    distinct,
    grid,
    headroom,
    month_ticks,
    pick,
    png,
)
from socialcredit.report.rundir import MONTHS_CTE, PERIODS_CTE, Query, RunDir

LISTS_SQL = f"""WITH {MONTHS_CTE},
{PERIODS_CTE}
SELECT p.month, e.list_id, e.kind,
       count(DISTINCT e.ckey) FILTER (WHERE e.start <= p.until AND (e."end" IS NULL OR e."end" > p.until)) AS on_list,
       count(*) FILTER (WHERE e.start > p.since AND e.start <= p.until) AS entries,
       count(*) FILTER (WHERE e."end" > p.since AND e."end" <= p.until) AS exits
FROM periods p CROSS JOIN list_entries e
GROUP BY p.month, e.list_id, e.kind ORDER BY e.kind, e.list_id, p.month"""

STAYS_CTE = """stays AS (  -- every blacklist stay begun by the run's end; one still running then is cut off there
    SELECT list_id, cause, ckey, start, "end", coalesce("end" <= getvariable('as_of'), false) AS ended,
           date_diff('day', start, CASE WHEN "end" <= getvariable('as_of') THEN "end" ELSE getvariable('as_of') END)
               AS days
    FROM list_entries WHERE kind = 'blacklist' AND start <= getvariable('as_of'))"""

STAY_SUMMARY_SQL = f"""WITH {STAYS_CTE}
SELECT list_id, count(*) AS stays, count(*) FILTER (WHERE ended) AS ended,
       count(*) FILTER (WHERE NOT ended) AS still_on, median(days) FILTER (WHERE ended) AS median_days_ended,
       median(days) FILTER (WHERE NOT ended) AS median_days_so_far,
       max(days) AS longest_days,
       median(date_diff('day', start, "end")) FILTER (WHERE NOT ended AND "end" IS NOT NULL) AS median_term_days_set,
       count(*) FILTER (WHERE "end" IS NULL) AS open_ended
FROM stays GROUP BY list_id ORDER BY stays DESC, list_id"""

STAY_HISTOGRAM_SQL = f"""WITH {STAYS_CTE}
SELECT list_id, ended, (days // 7) * 7 AS days_from, count(*) AS stays
FROM stays GROUP BY ALL ORDER BY list_id, ended, days_from"""

EXITS_SQL = f"""WITH {MONTHS_CTE},
{PERIODS_CTE},
at_end AS (  -- what the citizen's (unretracted) records say at the instant a stay ended
    SELECT r.ckey, r.occurred_at, string_agg(DISTINCT b.code, ', ' ORDER BY b.code) AS behaviours
    FROM records r JOIN behaviours b USING (bkey) ANTI JOIN retractions x USING (rkey) GROUP BY ALL),
repairs AS (  -- credit repairs granted (objections.py reports them as records of this behaviour)
    SELECT r.ckey, r.occurred_at FROM records r JOIN behaviours b USING (bkey) ANTI JOIN retractions x USING (rkey)
    WHERE b.code = 'credit_repair_completed')
SELECT p.month, e.list_id,
       CASE WHEN e.cause = 'behaviour' THEN 'fixed term expired'
            WHEN e.cause = 'grade' AND EXISTS (SELECT 1 FROM repairs k WHERE k.ckey = e.ckey
                 AND k.occurred_at >= e.start AND k.occurred_at < e."end") THEN 'grade recovered after a credit repair'
            WHEN e.cause = 'grade' THEN 'grade recovered after the minimum stay'
            WHEN d.behaviours IS NOT NULL THEN 'cleared by a record: ' || d.behaviours
            ELSE 'characteristic lapsed or rulebook changed' END AS route,
       count(*) AS exits
FROM list_entries e JOIN periods p ON e."end" > p.since AND e."end" <= p.until
LEFT JOIN at_end d ON e.cause = 'characteristic' AND d.ckey = e.ckey AND d.occurred_at = e."end"
WHERE e.kind = 'blacklist'
GROUP BY ALL ORDER BY p.month, e.list_id, route"""

CASES_SQL = """SELECT kind, status, count(*) AS cases FROM cases WHERE filed_at <= getvariable('as_of')
GROUP BY ALL ORDER BY ALL"""

RETRACTIONS_SQL = """SELECT count(*) AS retracted_records, count(DISTINCT r.ckey) AS citizens
FROM retractions x JOIN records r USING (rkey) WHERE x.retracted_at <= getvariable('as_of')"""

MEMORY_SQL = """WITH
stays AS (SELECT ckey,
                 bool_or(start <= getvariable('as_of') AND ("end" IS NULL OR "end" > getvariable('as_of'))) AS now
          FROM list_entries WHERE kind = 'blacklist' AND start <= getvariable('as_of') GROUP BY ckey),
marked AS (  -- a stay on a list that the citizen's rulebook remembers for good ("once untrustworthy …")
    SELECT DISTINCT e.ckey FROM list_entries e JOIN citizens c USING (ckey)
    JOIN memory_rules m ON m.city = c.city AND m.after_list = e.list_id WHERE e.start <= getvariable('as_of')),
white AS (SELECT DISTINCT ckey FROM list_entries WHERE kind = 'whitelist' AND start <= getvariable('as_of')
          AND ("end" IS NULL OR "end" > getvariable('as_of'))),
last AS (SELECT ckey, arg_max(score, assessed_at) AS score FROM score_log
         WHERE assessed_at <= getvariable('as_of') GROUP BY ckey),
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
GROUP BY 1 ORDER BY 1"""

HISTORY_ORDER = ("never listed", "listed before, not now", "on a blacklist now")


def list_sizes(run: RunDir) -> Figure:
    q = run.query("citizens on each list at the end of each month, stays begun and ended in it", LISTS_SQL)
    rows = q.rows
    months = distinct(rows, "month") or [run.first_month]
    lists = distinct(rows, "list_id")
    labels = [f"{m:%Y-%m}" for m in months]
    fig = canvas(11, 3.6)
    axes = grid(fig, 3, 3)
    width = 0.8 / max(1, len(lists))
    for k, list_id in enumerate(lists):
        mine = pick(rows, list_id=list_id)
        colour = PALETTE[k % len(PALETTE)]
        axes[0].plot(
            range(len(months)),
            [r["on_list"] for r in mine],
            marker="os^vD"[k % 5],
            label=list_id,
            color=colour,
            ls=("-", "--", ":", "-.")[k % 4],
        )  # identical lists (one cause) stay visible
        for ax, col in ((axes[1], "entries"), (axes[2], "exits")):
            ax.bar(
                [i - 0.4 + width * (k + 0.5) for i in range(len(months))], [r[col] for r in mine], width, color=colour
            )
    for ax, title in zip(axes, ("on the list at the month's end", "stays begun", "stays ended"), strict=True):
        ax.set_title(title, fontsize=10)
        month_ticks(ax, labels)
    if lists:
        axes[0].legend(fontsize=7, loc="upper left")
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
    return Figure("lists", "List sizes, entries and exits per month", caption, png(fig), [q], limits)


def time_on_blacklist(run: RunDir) -> Figure:
    summary = run.query("blacklist stays per list: ended, still on, lengths in days", STAY_SUMMARY_SQL)
    hist = run.query("blacklist stays by length (7-day bins), ended or still on", STAY_HISTOGRAM_SQL)
    lists = distinct(summary.rows, "list_id")
    fig = canvas(11, 3.4)
    axes = grid(fig, max(1, len(lists)), 3)
    if not lists:
        axes[0].text(0.5, 0.5, "nobody was blacklisted in this run", ha="center", transform=axes[0].transAxes)
    for ax, list_id in zip(axes, lists, strict=False):
        for done, colour, label in ((True, "#1b4f72", "ended"), (False, "#c0392b", "still on at the run's end")):
            mine = pick(hist.rows, list_id=list_id, ended=done)
            ax.bar(
                [r["days_from"] + 3.5 for r in mine],
                [r["stays"] for r in mine],
                7,
                alpha=0.7,
                color=colour,
                label=label,
            )
        ax.set_title(list_id, fontsize=10)
        ax.set_xlabel("days on the list", fontsize=8)
        ax.set_ylabel("stays", fontsize=8)
    if lists:
        axes[0].legend(fontsize=7)
    parts = []
    for r in summary.rows:
        how = f"median {r['median_days_ended']:.0f} days among the {r['ended']} ended" if r["ended"] else "none ended"
        term = (
            f"; {r['median_term_days_set']:.0f} days is the median term already set for those still on"
            if r["median_term_days_set"] is not None
            else ""
        )
        parts.append(f"{r['list_id']}: {r['stays']} stays, {how}, {r['still_on']} still on{term}")
    caption = (
        "How long blacklist stays last. A stay still running at the run's end is drawn at its length so far (a "
        "lower bound), so in a short run the red bars mostly measure the run, not the sanction. "
        + ("; ".join(parts) if parts else "Nobody was blacklisted in this run.")
        + "."
    )
    return Figure("blacklist-time", "Time on the blacklist", caption, png(fig), [summary, hist])


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
    fig = canvas(11, 3.6)
    left, right = grid(fig, 2, 2)
    bottom = [0] * len(months)
    for k, route in enumerate(routes):
        heights = [sum(r["exits"] for r in pick(rows, route=route, month=m)) for m in months]
        left.bar(range(len(months)), heights, 0.7, bottom=bottom, label=route, color=PALETTE[k % len(PALETTE)])
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    headroom(left, bottom)
    month_ticks(left, [f"{m:%Y-%m}" for m in months])
    left.set_title("blacklist stays ended per month", fontsize=10)
    if routes:
        left.legend(fontsize=7, loc="upper left")
    pairs = [(lst, route) for lst in distinct(rows, "list_id") for route in routes]
    totals = [
        (f"{lst}\n{route}", sum(r["exits"] for r in pick(rows, list_id=lst, route=route))) for lst, route in pairs
    ]
    totals = [t for t in totals if t[1]]
    right.barh([t[0] for t in totals], [t[1] for t in totals], color="#566573")
    right.tick_params(axis="y", labelsize=7)
    right.set_title("ended stays over the run, by list and way out", fontsize=10)
    if not totals:
        right.text(0.5, 0.5, "no blacklist stay ended in this run", ha="center", transform=right.transAxes)
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
    return Figure("blacklist-exits", "How people leave the blacklist", caption, png(fig), queries, limits)


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
    fig = canvas(11, 3.2)
    axes = grid(fig, 4, 4)
    colours = ["#7fb3d5", "#d68910", "#c0392b"][: len(groups)]
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
        ax.bar(range(len(groups)), [r[col] or 0 for r in rows], color=colours)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([g.replace(", ", ",\n") for g in groups], fontsize=7)
        ax.set_title(title, fontsize=9)
        if col != "mean_score":
            ax.set_ylim(0, max([1.0, *[(r[col] or 0) * 1.15 for r in rows]]))
    if any(r["mean_score"] for r in rows):
        lo = min(r["mean_score"] for r in rows if r["mean_score"] is not None)
        axes[0].set_ylim(max(0, lo - 100), None)
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
    return Figure("memory", "Once untrustworthy, always restricted", caption, png(fig), [q, inputs])


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value}%"


def section(run: RunDir) -> Section:
    return Section(
        "lists",
        "Lists",
        "Who is put on the whitelist and the blacklists, for how long, how they get off, and what stays with them.",
        [list_sizes(run), time_on_blacklist(run), blacklist_exits(run), once_untrustworthy(run)],
    )


__all__ = ["EXITS_SQL", "LISTS_SQL", "MEMORY_SQL", "STAY_SUMMARY_SQL", "section"]
