"""Who is listed, group by group: risk ratios with counts and 95% intervals, one list at a time.

Why per list: a 30-day jaywalking screen and the court's defaulter list are different sanctions, and lumping
them as "blacklisted" lets the most common (and mildest) decide every ratio. Why a ratio to everyone *else*:
a group's rate divided by the rate of all other citizens who could have been on the list is the textbook
risk ratio, whose interval is known: the log (Katz) interval, exp(ln RR ± 1.96·√(1/a − 1/n₁ + 1/c − 1/n₀)),
with a of n₁ in the group listed and c of n₀ outside it. Only citizens of cities whose rulebooks have the
list count (a list of Shenzhen's says nothing of Shanghai's people). Counts are printed beside each ratio,
because a ratio of 3 from 3 people is not a finding. Everything is one GROUPING SETS query, so each group
is measured the same way; districts (resident-ID regions within a city) appear only where a city has more
than one, since otherwise they equal the cities.
"""

from __future__ import annotations

import datetime as dt
import math

import pyarrow as pa

from socialcredit import standings as read_model
from socialcredit.engine.sql import fill
from socialcredit.report.figures import PALETTE, Figure, canvas, distinct, grid, legend, pick, png
from socialcredit.report.interactive import hover
from socialcredit.report.rundir import CST_OFFSET_HOURS, Query, RunDir
from socialcredit.report.sql import cte, statement

DIMENSIONS = ("age group", "sex", "income decile", "city", "district")
Z95 = 1.959964  # the standard normal's 97.5th percentile
RATIO_TICKS = (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20)

PERSON_CTES = (
    cte(
        "person",
        """SELECT c.ckey, c.city, c.sex, substr(c.citizen_id, 1, 6) || ' ' || c.city AS district,
                  CASE WHEN age < 18 THEN '00–17' WHEN age < 30 THEN '18–29' WHEN age < 45 THEN '30–44'
                       WHEN age < 60 THEN '45–59' ELSE '60+' END AS age_group,
                  coalesce('decile ' || lpad(p.income_decile::VARCHAR, 2, '0'), 'none (minors)') AS income
           FROM (SELECT *, datesub('year', birth_date, (getvariable('as_of') + INTERVAL 8 HOUR)::DATE) AS age
                 FROM citizens) c LEFT JOIN citizen_profiles p USING (ckey)""",
    ),
    cte(
        "districts",
        "SELECT count(DISTINCT district) > count(DISTINCT city) AS shown FROM person",
        why="a district breakdown says something only where a city has more than one region code",
    ),
)

# the group a GROUPING SETS row is about: its dimension and the group's name
DIMENSION = fill(
    """CASE WHEN grouping(age_group) = 0 THEN 'age group' WHEN grouping(sex) = 0 THEN 'sex'
            WHEN grouping(income) = 0 THEN 'income decile' WHEN grouping(city) = 0 THEN 'city'
            WHEN grouping(district) = 0 THEN 'district' ELSE 'everyone' END"""
)
GROUP = fill("coalesce(age_group, sex, income, city, district, 'all')")

RISK_SQL = statement(
    """WITH
       listed AS (SELECT DISTINCT ckey, list_id FROM list_entries WHERE start <= getvariable('as_of')),
       scoped AS (
           SELECT p.*, s.list_id, s.kind, l.ckey IS NOT NULL AS on_list
           FROM person p JOIN list_scope s USING (city)
           LEFT JOIN listed l ON l.ckey = p.ckey AND l.list_id = s.list_id),
       groups AS (
           SELECT list_id, any_value(kind) AS kind, $dimension AS dimension, $grp AS grp,
                  count(*) AS citizens, count(*) FILTER (WHERE on_list) AS listed
           FROM scoped GROUP BY GROUPING SETS ((list_id, age_group), (list_id, sex), (list_id, income), (list_id, city),
                                               (list_id, district), (list_id))),
       pairs AS (
           SELECT g.list_id, g.kind, g.dimension, g.grp, g.listed AS a, g.citizens AS n1,
                  e.listed - g.listed AS c, e.citizens - g.citizens AS n0
           FROM groups g JOIN groups e ON e.list_id = g.list_id AND e.dimension = 'everyone'
           WHERE e.listed > 0 AND (g.dimension <> 'district' OR (SELECT shown FROM districts)))
       SELECT list_id, kind, dimension, grp, n1 AS citizens, a AS listed, round(100.0 * a / n1, 2) AS listed_pct,
              CASE WHEN dimension <> 'everyone' THEN n0 END AS others,
              CASE WHEN dimension <> 'everyone' THEN c END AS others_listed,
              CASE WHEN n0 > 0 AND c > 0 THEN round((a / n1) / (c / n0), 3) END AS risk_ratio,
              CASE WHEN a > 0 AND c > 0 THEN round(exp(ln((a / n1) / (c / n0))
                   - $z * sqrt(1 / a - 1 / n1 + 1 / c - 1 / n0)), 3) END AS ci_low,
              CASE WHEN a > 0 AND c > 0 THEN round(exp(ln((a / n1) / (c / n0))
                   + $z * sqrt(1 / a - 1 / n1 + 1 / c - 1 / n0)), 3) END AS ci_high
       FROM pairs ORDER BY kind, list_id, dimension = 'everyone' DESC, dimension, grp""",
    *PERSON_CTES,
    dimension=DIMENSION,
    grp=GROUP,
    z=Z95,
    why={
        "scoped": "each citizen with each list their city's rulebooks had during the run: "
        "on it by the run's end or not",
        "pairs": "a = listed of n1 in the group; c = listed of n0 among everyone else in the list's cities",
    },
)

# the read model's questions at the report's time: a stay not yet ended, the whitelist now, the latest assessment
OUTCOMES_SQL = statement(
    """WITH
       black AS (SELECT ckey, bool_or($not_ended) AS now FROM list_entries
                 WHERE kind = 'blacklist' AND start <= getvariable('as_of') GROUP BY ckey),
       white AS (SELECT DISTINCT ckey FROM __white),
       asks AS (SELECT ckey, count(*) AS attempts, count(*) FILTER (WHERE outcome = 'deny') AS denied
                FROM decisions WHERE asked_at <= getvariable('as_of') GROUP BY ckey),
       per AS (
           SELECT age_group, sex, income, city, district, b.ckey IS NOT NULL AS ever_black,
                  coalesce(b.now, false) AS black_now, w.ckey IS NOT NULL AS white_now, l.score,
                  coalesce(a.attempts, 0) AS attempts, coalesce(a.denied, 0) AS denied
           FROM person LEFT JOIN black b USING (ckey) LEFT JOIN white w USING (ckey) LEFT JOIN last l USING (ckey)
           LEFT JOIN asks a USING (ckey))
       SELECT $dimension AS dimension, $grp AS grp,
              count(*) AS citizens,
              round(100.0 * count(*) FILTER (WHERE ever_black) / count(*), 2) AS ever_blacklisted_pct,
              round(100.0 * count(*) FILTER (WHERE black_now) / count(*), 2) AS blacklisted_now_pct,
              round(100.0 * count(*) FILTER (WHERE white_now) / count(*), 2) AS whitelisted_pct,
              round(avg(score), 1) AS mean_score,
              sum(attempts)::BIGINT AS attempts, sum(denied)::BIGINT AS denied,
              round(100.0 * sum(denied) / nullif(sum(attempts), 0), 2) AS denied_pct
       FROM per GROUP BY GROUPING SETS ((age_group), (sex), (income), (city), (district), ())
       HAVING grouping(district) = 1 OR (SELECT shown FROM districts)
       ORDER BY dimension = 'everyone' DESC, dimension, grp""",
    *PERSON_CTES,
    cte("last", read_model.latest_assessments(read_model.AS_OF)),
    dimension=DIMENSION,
    grp=GROUP,
    not_ended=read_model.not_ended(read_model.AS_OF),
    white=read_model.stays_at(read_model.AS_OF, "whitelist"),
)


def list_scope(run: RunDir) -> pa.Table:
    """(city, list_id, kind): the lists each city's rulebooks had at any assessment of the run."""
    last = (run.as_of + dt.timedelta(hours=CST_OFFSET_HOURS)).date()
    found: dict[tuple[str, str], str] = {}
    for day in [*run.period_months(), last]:  # CST days, as rulebooks take effect
        for city in run.cities():
            rb = run.rulebooks().resolve(city, day)
            for lst in rb.lists if rb else []:
                found.setdefault((city, lst.id), lst.kind)
    keys = sorted(found)
    return pa.table(
        {"city": [c for c, _ in keys], "list_id": [x for _, x in keys], "kind": [found[k] for k in keys]},
        schema=pa.schema([("city", pa.string()), ("list_id", pa.string()), ("kind", pa.string())]),
    )


def _group(dimension: str, grp: str) -> str:
    """A group as a sentence names it: "aged 18–29", "sex F", "decile 03", "shanghai"."""
    return {"age group": f"aged {grp}", "sex": f"sex {grp}"}.get(dimension, grp)


def disparity(run: RunDir) -> Figure:
    scope = list_scope(run)
    risk = run.query(
        "per list: who was on it by the run's end, group by group, as a risk ratio to everyone else (95% interval)",
        RISK_SQL,
        {"list_scope": scope},
    )
    outcomes = run.query("outcomes by group at the run's end: any blacklist, whitelist, score, denials", OUTCOMES_SQL)
    inputs = Query(
        "input list_scope: the lists each city's rulebooks had during the run",
        "-- derived from the rulebooks in force at each assessment and registered for the first query",
        scope,
    )
    rows = risk.rows
    lists = distinct(rows, "list_id")
    per_panel = max([1, *[len(pick(rows, list_id=x)) for x in lists]])
    cols = 3 if len(lists) >= 3 else max(1, len(lists))
    fig = canvas(11, 1.0 + (0.2 * per_panel + 0.9) * math.ceil(max(1, len(lists)) / cols))
    axes = grid(fig, max(1, len(lists)), cols, sharex=True)
    lo_edge, hi_edge = 0.05, 20.0
    for k, (ax, list_id) in enumerate(zip(axes, lists, strict=False)):
        mine = [r for r in pick(rows, list_id=list_id) if r["dimension"] != "everyone"]
        everyone = next(r for r in pick(rows, list_id=list_id) if r["dimension"] == "everyone")
        colour = PALETTE[k % len(PALETTE)]
        shown = [(i, r) for i, r in enumerate(mine) if r["risk_ratio"] is not None and r["ci_low"] is not None]
        drawn = ax.errorbar(
            [min(hi_edge, max(lo_edge, r["risk_ratio"])) for _, r in shown],
            [i for i, _ in shown],
            xerr=[
                [max(0.0, min(hi_edge, max(lo_edge, r["risk_ratio"])) - max(lo_edge, r["ci_low"])) for _, r in shown],
                [max(0.0, min(hi_edge, r["ci_high"]) - min(hi_edge, max(lo_edge, r["risk_ratio"]))) for _, r in shown],
            ],
            fmt="o",
            ms=4,
            capsize=2,
            color=colour,
            label="risk ratio, 95% interval",
        )
        hover(
            drawn.lines[0],
            [
                f"{r['grp']}: {r['listed']} of {r['citizens']} ({r['listed_pct']}%); rest {r['others_listed']} of "
                f"{r['others']}; risk ratio {r['risk_ratio']} (95% {r['ci_low']}–{r['ci_high']})"
                for _, r in shown
            ],
        )
        none = [i for i, r in enumerate(mine) if r["listed"] == 0 and r["risk_ratio"] is not None]
        if none:
            ax.plot([lo_edge * 1.15] * len(none), none, "<", mfc="none", color=colour, label="none in the group")
        ax.axvline(1.0, color="#566573", lw=0.8, ls="--", label="1 = as often as the rest")
        for i in range(1, len(mine)):
            if mine[i]["dimension"] != mine[i - 1]["dimension"]:
                ax.axhline(i - 0.5, color="#d5d8dc", lw=0.8)
        ax.set_yticks(range(len(mine)))
        ax.set_yticklabels([f"{r['grp']}  {r['listed']}/{r['citizens']}" for r in mine], fontsize=6.5)
        ax.set_ylim(len(mine) - 0.5, -2.8)  # a band above the first group holds the legend
        ax.set_xscale("log")
        ax.set_xticks(RATIO_TICKS, [f"{t:g}" for t in RATIO_TICKS])
        ax.minorticks_off()
        ax.set_title(
            f"{list_id} ({everyone['kind']})\n{everyone['listed']} of {everyone['citizens']:,} on it "
            f"({everyone['listed_pct']}%)",
            fontsize=8.5,
        )
        ax.set_xlabel("risk ratio to everyone else (log scale)", fontsize=8)
        ax.tick_params(axis="x", labelbottom=True, labelsize=8)
        legend(ax, loc="upper center", fontsize=6, ncols=2, borderaxespad=0.3)
    if lists:
        axes[0].set_xlim(lo_edge, hi_edge)
    else:
        axes[0].text(0.5, 0.5, "nobody was put on a list in this run", ha="center", transform=axes[0].transAxes)
        axes[0].set_xticks([])
        axes[0].set_yticks([])
    findings = []
    for r in rows:
        if r["dimension"] != "everyone" and r["ci_low"] is not None and (r["ci_low"] > 1 or r["ci_high"] < 1):
            findings.append((abs(math.log(r["risk_ratio"])), r))
    findings.sort(key=lambda t: -t[0])
    said = "; ".join(
        f"{r['list_id']}, {_group(r['dimension'], r['grp'])}: {r['risk_ratio']}× ({r['ci_low']}–{r['ci_high']}; "
        f"{r['listed']} of {r['citizens']})"
        for _, r in findings[:5]
    )
    districts = any(r["dimension"] == "district" for r in rows)
    caption = (
        "Who was put on each list by the run's end, group by group: each point is the group's rate divided by the "
        "rate of everyone else in the cities whose rulebooks have the list (a risk ratio; 1 = as often as everyone "
        "else), with its 95% interval (log/Katz); the counts beside each group are listed/citizens. Intervals that "
        "cross 1 are consistent with no difference; with this many groups a few will miss 1 by chance alone "
        "(no correction for multiple comparisons). Intervals are cut at 0.05 and 20; a hollow arrow marks a group "
        "none of whom was on the list. "
        + (f"Intervals clear of 1, largest first: {said}. " if said else "No interval is clear of 1. ")
        + (
            "District is the resident ID's region code within a city."
            if districts
            else "No city here has more than one resident-ID region, so there is no district breakdown below the city."
        )
    )
    limits = (
        []
        if districts
        else [
            "Per-district breakdowns: the simulator gives each city one resident-ID region, so in this run a district "
            "would be the city itself; the breakdown appears when a city's population spans several region codes."
        ]
    )
    return Figure(
        "disparity",
        "Who is listed: risk ratios per list, by age, sex, income, city and district",
        caption,
        png(fig),
        [risk, outcomes, inputs],
        limits,
        drawing=fig,
    )


__all__ = ["OUTCOMES_SQL", "RISK_SQL", "disparity", "list_scope"]
