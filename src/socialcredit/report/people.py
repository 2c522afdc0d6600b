"""Who is affected: who is listed group by group (`disparity`), and the network effect of the association rule.

The network figure puts a citizen's score beside the share of their contacts who are blacklisted at each
month's end; people who are themselves blacklisted are left out, so what remains is the penalty for the
company one keeps.
"""

from __future__ import annotations

from socialcredit import standings as read_model
from socialcredit.report.disparity import disparity
from socialcredit.report.figures import PALETTE, Figure, Section, canvas, counts, grid, legend, month_ticks, png
from socialcredit.report.rundir import MONTHS_CTE, PERIODS_CTE, Query, RunDir
from socialcredit.report.sql import cte, select, statement

SHARE_CTES = (
    MONTHS_CTE,
    PERIODS_CTE,
    cte(
        "black",
        """SELECT DISTINCT p.i, e.ckey FROM periods p JOIN list_entries e ON e.kind = 'blacklist' AND $before""",
        before=read_model.in_force_just_before("p.until", "e"),
        why="on a blacklist just before the month-end assessment: what the engine's network rule reads",
    ),
    cte(
        "share",
        """SELECT p.i, p.month, p.until, r.ckey, count(b.ckey) AS listed_contacts, count(*) AS contacts,
                  count(b.ckey)::DOUBLE / count(*) AS share
           FROM periods p JOIN relations r ON r.kind = 'contact' AND $tie
           LEFT JOIN black b ON b.i = p.i AND b.ckey = r.other
           GROUP BY p.i, p.month, p.until, r.ckey""",
        tie=read_model.valid_at("p.until", "r"),
        why="each citizen with contacts in force at each month's end: the share of them on a blacklist",
    ),
    cte(
        "unlisted",
        "SELECT s.* FROM share s ANTI JOIN black b ON b.i = s.i AND b.ckey = s.ckey",
        why="left out: citizens blacklisted themselves then",
    ),
)

NETWORK_SQL = statement(
    """SELECT CASE WHEN share = 0 THEN '0 none' WHEN share < 0.1 THEN '1 under 10%' WHEN share < 0.2 THEN '2 10–20%'
                   WHEN share < 0.5 THEN '3 20–50%' ELSE '4 50% or more' END AS listed_contacts_share,
              count(*) AS citizen_months, count(DISTINCT ckey) AS citizens, round(avg(score), 1) AS mean_score,
              quantile_disc(score, 0.1) AS p10, quantile_disc(score, 0.5) AS median, quantile_disc(score, 0.9) AS p90
       FROM scored GROUP BY 1 ORDER BY 1""",
    *SHARE_CTES,
    cte(
        "scored",
        select("SELECT u.*, l.score FROM unlisted u").join(
            read_model.assessed_asof_join("u", "until", "l", outer=False)
        ),
    ),
)

EXPOSURE_SQL = statement(
    """WITH penalised AS (
           SELECT p.i, count(DISTINCT n.ckey) AS penalised, coalesce(sum(n.points), 0)::BIGINT AS points
           FROM periods p LEFT JOIN state_ledger n ON n.source = 'network' AND n.valid_from = p.until
           GROUP BY p.i)
       SELECT s.month, count(*) FILTER (WHERE s.listed_contacts > 0) AS with_listed_contact,
              count(*) FILTER (WHERE s.share >= 0.2) AS share_20pct_or_more,
              any_value(x.penalised) AS penalised_by_rule,
              any_value(x.points) AS network_points
       FROM share s JOIN penalised x USING (i) GROUP BY s.month ORDER BY s.month""",
    *SHARE_CTES,
)

SCATTER_SQL = statement(
    select(
        """SELECT u.share, l.score, count(*) AS citizens FROM unlisted u
           WHERE u.i = getvariable('months') - 1 AND u.share > 0 GROUP BY ALL ORDER BY u.share, l.score"""
    ).join(read_model.assessed_asof_join("u", "until", "l", outer=False)),
    *SHARE_CTES,
)

CONTACT_CHANGES_SQL = """SELECT month, count(*) FILTER (WHERE change = 'drop') AS ties_dropped,
       count(*) FILTER (WHERE change = 'add') AS ties_added
FROM contact_changes GROUP BY month ORDER BY month"""


def network(run: RunDir) -> Figure:
    binned = run.query(
        "score by share of blacklisted contacts (citizens not blacklisted themselves), all months", NETWORK_SQL
    )
    exposure = run.query(
        "per month: citizens with a blacklisted contact, and those the network rule penalised", EXPOSURE_SQL
    )
    scatter = run.query(
        "at the last month's end: each (share, score) of citizens with a blacklisted contact", SCATTER_SQL
    )
    queries: list[Query] = [binned, exposure, scatter]
    changes = None
    if run.has_table("contact_changes"):
        changes = run.query("contact ties dropped and added per month (contact avoidance)", CONTACT_CHANGES_SQL)
        queries.append(changes)
    fig = canvas(11, 3.4)
    axes = grid(fig, 3, 3)
    pts = scatter.rows
    axes[0].scatter(
        [r["share"] for r in pts],
        [r["score"] for r in pts],
        s=[6 + 4 * r["citizens"] for r in pts],
        alpha=0.5,
        color="#1b4f72",
        label="citizens (area ∝ how many)",
    )
    axes[0].set_xlabel("share of contacts on a blacklist", fontsize=8)
    axes[0].set_ylabel("score", fontsize=8)
    axes[0].set_title("last month's end (share > 0)", fontsize=9)
    if pts:
        legend(axes[0], loc="lower left")
    else:
        axes[0].text(0.5, 0.5, "nobody had a blacklisted contact", ha="center", transform=axes[0].transAxes)
    b = binned.rows
    axes[1].errorbar(
        range(len(b)),
        [r["median"] for r in b],
        yerr=[[r["median"] - r["p10"] for r in b], [r["p90"] - r["median"] for r in b]],
        fmt="o",
        capsize=4,
        color="#c0392b",
        label="median score, 10th–90th percentile",
    )
    axes[1].set_xlabel("share of contacts on a blacklist", fontsize=8)
    if b:
        legend(axes[1], loc="lower left")
    axes[1].set_xticks(range(len(b)))
    axes[1].set_xticklabels([r["listed_contacts_share"][2:] for r in b], fontsize=7)
    axes[1].set_title("median score (bars: 10th–90th pct), all months", fontsize=9)
    e = exposure.rows
    labels = [f"{r['month']:%Y-%m}" for r in e]
    axes[2].plot(
        range(len(e)),
        [r["with_listed_contact"] for r in e],
        marker="o",
        label="with a blacklisted contact",
        color=PALETTE[0],
    )
    axes[2].plot(
        range(len(e)), [r["penalised_by_rule"] for r in e], marker="s", label="penalised by the rule", color=PALETTE[1]
    )
    if changes is not None:
        by_month = {r["month"]: r for r in changes.rows}
        axes[2].bar(
            range(len(e)),
            [by_month.get(r["month"], {}).get("ties_dropped", 0) for r in e],
            0.5,
            alpha=0.4,
            color=PALETTE[5],
            label="contact ties dropped",
        )
    axes[2].set_ylim(0, max([1, *[r["with_listed_contact"] for r in e]]) * 1.3)
    legend(axes[2], loc="upper left")
    axes[2].set_title("exposure to the association rule per month", fontsize=9)
    month_ticks(axes[2], labels)
    counts(axes[2], "citizens")
    gap = ""
    none = next((r for r in b if r["listed_contacts_share"].startswith("0")), None)
    most = b[-1] if b else None
    if none and most and most is not none:
        gap = (
            f" Citizens with no blacklisted contact average {none['mean_score']}; those in the highest band "
            f"({most['listed_contacts_share'][2:]}) {most['mean_score']}."
        )
    if changes is not None:
        dropped = sum(r["ties_dropped"] for r in changes.rows)
        added = sum(r["ties_added"] for r in changes.rows)
        graph = (
            f" Contact avoidance over the run: ties to blacklisted people dropped {dropped}, new ties made {added}. "
            "Relations are dated, so each month's shares and network points are those of the contacts in force "
            "then: a tie dropped later does not change an earlier month."
        )
        limits = []
    else:
        graph = ""
        limits = [
            "How contact graphs change when people avoid the blacklisted: this run "
            "holds no contact_changes table (the run was made without contact avoidance), so its graph is "
            "the same in every month."
        ]
    caption = (
        'The association rule ("dealing with citizens with a low score"): a citizen\'s score against the share of '
        "their contacts on a blacklist at each month's end, leaving out people blacklisted themselves, so the gap "
        "is the penalty for one's company." + gap + graph
    )
    return Figure(
        "network", "The network effect of the association rule", caption, png(fig), queries, limits, drawing=fig
    )


def section(run: RunDir) -> Section:
    return Section(
        "people",
        "Who is affected",
        "Outcomes by group, and what happens to people for the company they keep.",
        [disparity(run), network(run)],
    )


__all__ = ["EXPOSURE_SQL", "NETWORK_SQL", "network", "section"]
