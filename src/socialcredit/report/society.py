"""The run report: what the system did to one simulated society, section by section.

A thin assembly: the run's facts (one query), then each section module's figures in the order a
reader asks about them — where people stand, who is listed, what the decisions did, who is affected.
"""

from __future__ import annotations

from pathlib import Path

from socialcredit.report import lists, people, services, standings
from socialcredit.report.html import Document, write
from socialcredit.report.rundir import Query, RunDir

FACTS_SQL = """SELECT (SELECT count(*) FROM citizens) AS citizens,
       (SELECT string_agg(city || ' ' || n, ', ' ORDER BY city) FROM
            (SELECT city, count(*) AS n FROM citizens GROUP BY city)) AS cities,
       (SELECT count(*) FROM records WHERE occurred_at <= getvariable('as_of')) AS records,
       (SELECT count(*) FROM retractions) AS retractions,
       (SELECT count(*) FROM decisions WHERE asked_at <= getvariable('as_of')) AS decisions,
       (SELECT count(*) FROM decisions WHERE outcome = 'deny' AND asked_at <= getvariable('as_of')) AS denied,
       (SELECT count(*) FROM list_entries WHERE start <= getvariable('as_of')) AS list_stays,
       (SELECT string_agg(DISTINCT version, ', ' ORDER BY version) FROM score_log) AS rulebook_versions"""


def facts(run: RunDir) -> tuple[Query, list[tuple[str, str]]]:
    q = run.query("the run in numbers", FACTS_SQL)
    row = q.rows[0]
    meta = run.meta
    shown = [
        ("run", str(run.path)),
        ("scenario", f"{meta.get('scenario', run.scenario.get('name', '?'))}, seed {meta.get('seed', '?')}"),
        ("months", f"{run.months} from {run.first_month:%Y-%m} (last assessment {run.as_of:%Y-%m-%d %H:%M} UTC)"),
        ("citizens", f"{row['citizens']:,} ({row['cities']})"),
        ("records", f"{row['records']:,} ({row['retractions']} withdrawn)"),
        ("service decisions", f"{row['decisions']:,} ({row['denied']:,} denied)"),
        ("list stays", f"{row['list_stays']:,}"),
        ("rulebook versions used", str(row["rulebook_versions"])),
    ]
    if meta.get("replay_of"):
        shown.insert(1, ("replay of", f"{meta['replay_of']} under {meta.get('rulebook')}"))
    district = run.scenario.get("district")
    if isinstance(district, dict) and {"index", "of"} <= set(district):
        # a partition of a partitioned run: its citizens are one district of the city, and every figure says so
        shown.insert(2, ("district", f"{int(district['index']) + 1} of {district['of']} of {row['cities']}: "
                                     "this report covers that district alone"))  # fmt: skip
    return q, shown


def build(run: RunDir) -> Document:
    _, shown = facts(run)
    sections = [standings.section(run), lists.section(run), services.section(run), people.section(run)]
    return Document(
        title=f"What the system did: {run.title}",
        lede=(
            "A simulated society living under social credit rulebooks, month by month: scores, lists, automated "
            "decisions and who bears them. Synthetic people only."
        ),
        facts=shown,
        sections=sections,
        preamble=run.preamble(),
        check=f"open the store read-only (duckdb -readonly {run.path / 'store.duckdb'}), paste the SET VARIABLE lines, "
        "then the query",
        command=f"report {run.path}",
        source=str(run.path),
    )


def report(run_dir: Path, out: Path | None = None, interactive: bool = False) -> list[Path]:
    """Build the report of `run_dir` into `out` (default RUN_DIR/report.html, or report-interactive.html with
    hover and zoom); return the files written."""
    with RunDir.open(run_dir) as run:
        doc = build(run)
    default = "report-interactive.html" if interactive else "report.html"
    return write(doc, out or Path(run_dir) / default, interactive)


__all__ = ["FACTS_SQL", "build", "facts", "report"]
