"""Reports, replays and comparisons, built once from one small simulated run through the CLI.

What is checked: the report is one self-contained HTML file plus a PNG per figure; every figure has data;
the numbers printed in the report equal the same quantities taken straight from the store or from the
simulator's own Parquet series (which are computed by a different path: month by month during the run,
children through the decision code); the SQL shown under every figure, pasted into a fresh read-only
DuckDB session, prints the same numbers; a replay under a city's own rules leaves that city's record
points unchanged; the comparison's counts equal a direct recount; and both pages open in headless
Chromium without a single request leaving the file (screenshots of each section go to docs/screenshots).

The run is built once per module (a few seconds of engine per simulated month); the scenario lists
people within three months (court listings far above their base rate) so that every figure has data.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from socialcredit.cli import app
from socialcredit.report.html import cell

from .report_page import Page, read_page
from .report_run import REPLAY, invoke
from .stats_reference import katz_interval

FIGURES = ("scores", "grades", "lists", "time-on-list", "blacklist-exits", "memory", "decisions", "children",
           "disparity", "network")  # fmt: skip
COMPARE_FIGURES = ("grade-changes", "list-changes", "rules", "decision-changes", "over-time")


@pytest.fixture(scope="module")
def page_of_report(report_html: Path) -> Page:
    return read_page(report_html)


@pytest.fixture(scope="module")
def compare_html(run_dir: Path, replay_dir: Path) -> Path:
    out = run_dir.parent / "out" / "compare.html"
    invoke("compare", str(run_dir), str(replay_dir), "--out", str(out))
    return out


def store(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path / "store.duckdb"), read_only=True)


def table(page: Page, figure: str, query: int = 0) -> list[dict[str, str]]:
    rows = page.tables[(figure, query)]
    assert len(rows) == page.rows_total[(figure, query)], "the test reads whole tables; keep them under MAX_ROWS"
    return rows


def month_after(day: object) -> str:
    """The assessment that closes the simulator's month `day` (its series label months by their first day)."""
    y, m = int(str(day)[:4]), int(str(day)[5:7])
    return f"{y + m // 12}-{m % 12 + 1:02d}-01"


# --------------------------------------------------------------------------- the report


def test_report_is_one_html_file_and_a_png_per_figure(report_html: Path, page_of_report: Page) -> None:
    for figure in FIGURES:
        png = report_html.with_name(f"report-{figure}.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
    assert set(page_of_report.captions) == set(FIGURES)
    assert len(page_of_report.images) == len(FIGURES)
    assert all(src.startswith("data:image/png;base64,") for src in page_of_report.images)
    text = report_html.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "the page must not load anything"
    assert "<script" not in text and "@import" not in text


def test_every_figure_has_data(page_of_report: Page) -> None:
    for figure in FIGURES:
        rows = table(page_of_report, figure)
        assert rows, f"{figure}: its main query returned no rows"
        numbers = [v for r in rows for v in r.values() if re.fullmatch(r"-?[0-9][0-9.]*", v)]
        assert any(float(v) != 0 for v in numbers), f"{figure}: every number is zero"
        assert page_of_report.captions[figure]


def test_grades_lists_decisions_children_equal_the_simulators_series(run_dir: Path, page_of_report: Page) -> None:
    """The simulator wrote these month by month from the store as it then was; the report reads the final store."""
    grades = {(r["city"], r["month"], r["grade"]): r["citizens"] for r in table(page_of_report, "grades")}
    for r in pq.read_table(run_dir / "scores.parquet").to_pylist():
        assert grades[(r["city"], month_after(r["month"]), r["grade"])] == str(r["citizens"]), r
    lists = {(r["month"], r["list_id"]): r for r in table(page_of_report, "lists")}
    for r in pq.read_table(run_dir / "lists.parquet").to_pylist():
        shown = lists.get((str(r["month"]), r["list_id"]))
        if shown is None:  # a list nobody was ever on is not drawn
            assert r["on_list"] == r["entries"] == r["exits"] == 0, r
            continue
        assert (shown["on_list"], shown["entries"], shown["exits"]) == tuple(
            str(r[k]) for k in ("on_list", "entries", "exits")
        ), r
    decided = {(r["month"], r["service"], r["outcome"]): r["decisions"] for r in table(page_of_report, "decisions")}
    expected = {(str(r["month"]), r["service"], r["outcome"]): str(r["n"])
                for r in pq.read_table(run_dir / "decisions.parquet").to_pylist()}  # fmt: skip
    assert decided == expected
    children = {r["month"]: r["children"] for r in table(page_of_report, "children")}
    assert children == {str(r["month"]): str(r["children"])
                        for r in pq.read_table(run_dir / "children.parquet").to_pylist()}  # fmt: skip
    assert any(int(v) > 0 for v in children.values())


def test_disparity_and_memory_equal_a_recount_in_python(run_dir: Path, page_of_report: Page) -> None:
    with store(run_dir) as con:
        as_of = con.execute("SELECT as_of FROM engine_run").fetchall()[0][0]
        sex = dict(con.execute("SELECT ckey, sex FROM citizens").fetchall())
        city = dict(con.execute("SELECT ckey, city FROM citizens").fetchall())
        stays = con.execute('SELECT ckey, kind, start, "end" FROM list_entries').fetchall()
        stays_by_list = con.execute('SELECT ckey, kind, list_id, start, "end" FROM list_entries').fetchall()
        asks = con.execute("SELECT ckey, outcome FROM decisions WHERE asked_at <= ?", [as_of]).fetchall()
    ever = {c for c, kind, start, _ in stays if kind == "blacklist" and start <= as_of}
    now = {
        c for c, kind, start, end in stays if kind == "blacklist" and start <= as_of and (end is None or end > as_of)
    }
    rows = {(r["dimension"], r["grp"]): r for r in table(page_of_report, "disparity", 1)}
    everyone = rows[("everyone", "all")]
    assert everyone["citizens"] == str(len(sex))
    assert everyone["ever_blacklisted_pct"] == cell(round(100.0 * len(ever) / len(sex), 2))
    assert everyone["attempts"] == str(len(asks))
    assert everyone["denied"] == str(sum(o == "deny" for _, o in asks))
    for s in ("F", "M"):
        group = [c for c, x in sex.items() if x == s]
        shown = rows[("sex", s)]
        assert shown["citizens"] == str(len(group))
        rate = 100.0 * sum(c in ever for c in group) / len(group)
        assert shown["ever_blacklisted_pct"] == cell(round(rate, 2))
    # per list, among citizens of the cities whose rulebooks have it: women against everyone else, Katz's interval
    risk = {(r["list_id"], r["dimension"], r["grp"]): r for r in table(page_of_report, "disparity", 0)}
    scope = [(r["city"], r["list_id"]) for r in table(page_of_report, "disparity", 2)]
    lists = {list_id for _, _, list_id, _, _ in stays_by_list}
    assert lists and {k[0] for k in risk} == lists
    checked = 0
    for lst in lists:
        people = {c for c in sex if (city[c], lst) in scope}
        on = {c for c, _, list_id, start, _ in stays_by_list if list_id == lst and start <= as_of} & people
        women = {c for c in people if sex[c] == "F"}
        a, n1, c, n0 = len(on & women), len(women), len(on - women), len(people) - len(women)
        shown = risk[(lst, "sex", "F")]
        assert [shown[k] for k in ("listed", "citizens", "others_listed", "others")] == [str(x) for x in (a, n1, c, n0)]
        if a and c:
            expected = [cell(round(v, 3)) for v in katz_interval(a, n1, c, n0)]
            assert [shown[k] for k in ("risk_ratio", "ci_low", "ci_high")] == expected
            checked += 1
    assert checked, "some list should have both women and men on it"
    history = {r["history"]: int(r["citizens"]) for r in table(page_of_report, "memory")}
    assert history["on a blacklist now"] == len(now)
    assert history["listed before, not now"] == len(ever - now)
    assert sum(history.values()) == len(sex)


def test_network_rule_penalises_exactly_those_with_a_fifth_of_contacts_listed(page_of_report: Page) -> None:
    """Rongcheng's and Shanghai's rulebooks take points from 20% of listed contacts up: the engine's ledger
    entries (one query) must match the share the report computes from the lists and the contact graph."""
    for r in table(page_of_report, "network", 1):
        assert r["share_20pct_or_more"] == r["penalised_by_rule"], r
    assert any(int(r["penalised_by_rule"]) > 0 for r in table(page_of_report, "network", 1))


def check_shown_sql(page: Page, connect: Callable[[], duckdb.DuckDBPyConnection]) -> int:
    """Paste every shown "How computed" text into a fresh session; it must print the numbers the page shows."""
    checked = 0
    for (figure, i), text in page.sql.items():
        body = text.split(";\n\n", 1)[-1]
        if body.lstrip().startswith("--") or re.search(r"\b(reaching|memory_rules|list_scope)\b", body):
            continue  # an input derived from the rulebooks (shown, not queried), or a query that reads one
        with connect() as con:
            got = con.execute(text.rstrip().rstrip(";")).fetchall()
        assert len(got) == page.rows_total[(figure, i)], (figure, i)
        for row, printed in zip(got, page.tables[(figure, i)], strict=False):
            assert [cell(v) for v in row] == list(printed.values()), (figure, i)
        checked += 1
    return checked


def test_the_sql_shown_prints_the_numbers_shown(run_dir: Path, page_of_report: Page) -> None:
    assert check_shown_sql(page_of_report, lambda: store(run_dir)) >= len(FIGURES)


def test_a_run_where_nothing_happens_still_reports_and_says_so(run_dir: Path, tmp_path: Path) -> None:
    """Nobody listed, no service asked, no score moved: every figure is still drawn (warnings are errors here).

    Simulating such a run costs an engine run per month, so a copy of the test run has its engine results
    emptied instead — what a report reads of a run where nothing happened."""
    shutil.copytree(run_dir, tmp_path / "run")
    with duckdb.connect(str(tmp_path / "run" / "store.duckdb")) as con:
        for derived in ("decisions", "list_entries", "state_ledger", "notifications", "retractions"):
            con.execute(f"DELETE FROM {derived}")
        con.execute("DELETE FROM score_log WHERE assessed_at > (SELECT min(assessed_at) FROM score_log)")
        con.execute("DROP TABLE IF EXISTS contact_changes")
    invoke("report", str(tmp_path / "run"))
    page = read_page(tmp_path / "run" / "report.html")
    assert set(page.captions) == set(FIGURES)
    assert table(page, "decisions") == [] and table(page, "lists") == []
    assert "no contact_changes table" in (tmp_path / "run" / "report.html").read_text(encoding="utf-8")


def test_contact_changes_and_cases_are_read_when_a_run_has_them(run_dir: Path, tmp_path: Path) -> None:
    """Contact avoidance (simulator) and objections/repair (service) leave tables only some runs have; a copy of
    the run gets a few rows of each, in those modules' schemas, and the figures must count them.

    Not simulated here: with avoidance the store keeps only the final contact graph and the engine rescores
    every month with it, so the final store's month-by-month standings would no longer equal the simulator's
    series, which the other tests rely on (the report says so in its captions when a run has avoidance)."""
    from socialcredit.report import lists, people, standings
    from socialcredit.report.rundir import RunDir
    from socialcredit.schema import ON_DEMAND, create

    shutil.copytree(run_dir, tmp_path / "run")
    with duckdb.connect(str(tmp_path / "run" / "store.duckdb")) as con:
        con.execute("CREATE TABLE contact_changes(month DATE, ckey INTEGER, other INTEGER, change VARCHAR)")
        con.execute("""INSERT INTO contact_changes VALUES ('2025-02-01', 1, 2, 'drop'), ('2025-02-01', 1, 3, 'drop'),
                       ('2025-02-01', 1, 4, 'add'), ('2025-03-01', 5, 6, 'drop')""")
        con.execute(create(ON_DEMAND["cases"]))
        con.execute("""INSERT INTO cases (case_id, kind, ckey, filed_at, status) VALUES
                       (1, 'objection', 1, '2025-02-02', 'upheld'), (2, 'objection', 2, '2025-02-03', 'rejected'),
                       (3, 'repair', 3, '2025-02-04', 'upheld')""")
    with RunDir.open(tmp_path / "run") as run:
        network = people.network(run)
        exits = lists.blacklist_exits(run)
        grades = standings.grade_shares(run)
    changes = {str(r["month"]): (r["ties_dropped"], r["ties_added"]) for r in network.queries[-1].rows}
    assert changes == {"2025-02-01": (2, 1), "2025-03-01": (1, 0)}
    assert "dropped 3, new ties made 1" in network.caption and not network.limits
    assert "Objections upheld: 1" in exits.caption and "credit repairs granted: 1" in exits.caption
    assert not exits.limits
    assert "final contact graph" in grades.caption


# --------------------------------------------------------------------------- replay and compare


def test_replay_is_a_new_run_directory_and_leaves_the_run_alone(run_dir: Path, replay_dir: Path) -> None:
    meta = json.loads((replay_dir / "run.json").read_text())
    assert meta["replay_of"] == str(run_dir) and meta["rulebook"] == REPLAY
    assert set(meta["versions"]) == {"rongcheng", "shanghai"}
    with store(run_dir) as a, store(replay_dir) as b:
        assert b.execute("SELECT count(*) FROM rulebook_versions").fetchall()[0][0] == (
            a.execute("SELECT count(*) FROM rulebook_versions").fetchall()[0][0] + 2
        )
        attempts = "SELECT ckey, service, asked_at FROM decisions ORDER BY ALL"
        assert a.execute(attempts).fetchall() == b.execute(attempts).fetchall()
        used = {v for (v,) in b.execute("SELECT DISTINCT version FROM score_log").fetchall()}
        assert {meta["versions"]["rongcheng"], meta["versions"]["shanghai"]} <= {v.split("+")[0] for v in used}


def test_replay_under_a_citys_own_rules_keeps_its_citizens_record_points(run_dir: Path, replay_dir: Path) -> None:
    """Shanghai's citizens get a copy of shanghai@1, so every point their records earn is the same; only
    the network rule (contacts in Rongcheng, now under Shanghai's lists) may move their scores."""
    query = """SELECT c.city, l.ckey, l.rkey, l.points, l.valid_from, l.valid_to FROM record_ledger l
               JOIN citizens c USING (ckey) ORDER BY ALL"""
    with store(run_dir) as a, store(replay_dir) as b:
        before, after = a.execute(query).fetchall(), b.execute(query).fetchall()
    shanghai = [r for r in before if r[0] == "shanghai"]
    assert shanghai and shanghai == [r for r in after if r[0] == "shanghai"]
    assert [r for r in before if r[0] == "rongcheng"] != [r for r in after if r[0] == "rongcheng"]


def test_compare_counts_equal_a_recount(run_dir: Path, replay_dir: Path, compare_html: Path) -> None:
    page = read_page(compare_html)
    assert set(page.captions) == set(COMPARE_FIGURES)
    latest = """SELECT c.city, c.ckey, arg_max(s.grade, s.assessed_at) FROM citizens c JOIN score_log s USING (ckey)
                WHERE s.assessed_at <= ? GROUP BY ALL"""
    in_force = """SELECT ckey, sum(points) FROM ledger WHERE valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)
                  GROUP BY ckey"""
    with store(run_dir) as a, store(replay_dir) as b:
        as_of = min(x.execute("SELECT as_of FROM engine_run").fetchall()[0][0] for x in (a, b))
        ga = {k: (city, g) for city, k, g in a.execute(latest, [as_of]).fetchall()}
        gb = {k: g for _, k, g in b.execute(latest, [as_of]).fetchall()}
        pa = dict(a.execute(in_force, [as_of, as_of]).fetchall())
        pb = dict(b.execute(in_force, [as_of, as_of]).fetchall())
        single = a.execute("SELECT bool_and(len(rule_ids) = 1) FROM pieces").fetchall()[0][0]
        on = """SELECT ckey, list(DISTINCT list_id ORDER BY list_id) FROM list_entries
                WHERE start <= ? AND ("end" IS NULL OR "end" > ?) GROUP BY ckey"""
        la = dict(a.execute(on, [as_of, as_of]).fetchall())
        lb = dict(b.execute(on, [as_of, as_of]).fetchall())
        attempts = a.execute("SELECT count(*) FROM decisions WHERE asked_at <= ?", [as_of]).fetchall()[0][0]
    expected = Counter((city, g, gb[k]) for k, (city, g) in ga.items())
    shown = {(r["city"], r["grade_a"], r["grade_b"]): int(r["citizens"]) for r in table(page, "grade-changes")}
    assert shown == dict(expected)
    assert sum(n for (_, x, y), n in expected.items() if x != y) > 0, "the replay should move someone's grade"
    assert table(page, "rules", 1), "the 50 citizens who change most, with their rules"
    if single:  # each ledger entry is one rule's: the rules' differences add up to the ledgers' difference
        moved = {k for k in ga if ga[k][1] != gb.get(k) or la.get(k, []) != lb.get(k, [])}
        total = sum(pb.get(k, 0) - pa.get(k, 0) for k in moved)
        assert sum(int(r["difference"]) for r in table(page, "rules")) == total
    assert sum(int(r["attempts"]) for r in table(page, "decision-changes")) == attempts
    assert check_shown_sql(page, duckdb.connect) >= len(COMPARE_FIGURES)


def test_compare_prints_who_changes_as_a_recount_finds(run_dir: Path, replay_dir: Path, tmp_path: Path) -> None:
    """The README says `compare` shows who changes: the terminal gets the page's headline numbers, and they are
    the ones a direct recount over both stores finds (every citizen, grade and lists at the comparison time)."""
    output = " ".join(invoke("compare", str(run_dir), str(replay_dir), "--out", str(tmp_path / "c.html")).split())
    standing = """SELECT c.ckey, (SELECT arg_max(grade, assessed_at) FROM score_log s WHERE s.ckey = c.ckey
                      AND s.assessed_at <= $t),
                  (SELECT list(DISTINCT list_id ORDER BY list_id) FROM list_entries e WHERE e.ckey = c.ckey
                      AND e.start <= $t AND (e."end" IS NULL OR e."end" > $t))
                  FROM citizens c"""
    asked = "SELECT ckey, service, asked_at, outcome FROM decisions WHERE asked_at <= $t"
    with store(run_dir) as a, store(replay_dir) as b:
        as_of = min(x.execute("SELECT as_of FROM engine_run").fetchall()[0][0] for x in (a, b))
        sa = {k: (g, x or []) for k, g, x in a.execute(standing, {"t": as_of}).fetchall()}
        sb = {k: (g, x or []) for k, g, x in b.execute(standing, {"t": as_of}).fetchall()}
        da = {r[:3]: r[3] for r in a.execute(asked, {"t": as_of}).fetchall()}
        db = {r[:3]: r[3] for r in b.execute(asked, {"t": as_of}).fetchall()}
    other_grade = sum(sa[k][0] != sb[k][0] for k in sa)
    other_lists = sum(sa[k][1] != sb[k][1] for k in sa)
    attempts = set(da) | set(db)
    other_decisions = sum(da.get(x) != db.get(x) for x in attempts)
    m = re.search(
        r"([\d,]+) of ([\d,]+) citizens hold another grade in B \(([\d,]+) a better one, ([\d,]+) a worse "
        r"one\); ([\d,]+) are on other lists; ([\d,]+) of ([\d,]+) decisions answered differently",
        output,
    )
    assert m, output
    shown = [int(x.replace(",", "")) for x in m.groups()]
    assert shown[0] == other_grade == shown[2] + shown[3] and shown[1] == len(sa)
    assert shown[4] == other_lists and (shown[5], shown[6]) == (other_decisions, len(attempts))
    assert other_grade > 0, "the replay should move someone's grade"


def test_bad_input_exits_2_and_leaves_nothing(run_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["replay", str(run_dir), "--rulebook", "atlantis@1", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "atlantis@1" in result.stderr
    assert not (tmp_path / "x").exists()
    result = runner.invoke(app, ["report", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and f"{tmp_path / 'nowhere'}: not a run directory" in result.stderr
    result = runner.invoke(app, ["compare", str(run_dir), str(tmp_path / "nowhere")])
    assert result.exit_code == 2


# --------------------------------------------------------------------------- in a browser


def _open(page, path: Path) -> list[str]:  # type: ignore[no-untyped-def]
    outside: list[str] = []
    page.on("request", lambda r: r.url.startswith(("file:", "data:")) or outside.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    loaded = page.eval_on_selector_all("img", "els => els.map(e => e.complete && e.naturalWidth > 0)")
    assert loaded and all(loaded), "every figure must render"
    return outside


@pytest.mark.browser
def test_report_opens_offline_in_chromium(page, report_html: Path) -> None:  # type: ignore[no-untyped-def]
    outside = _open(page, report_html)
    assert outside == [] and page.failed_requests == [] and page.console_errors == []
    for section in ("run", "standings", "lists", "services", "people"):
        page.locator(f"section#{section}").screenshot(path=str(page.shots / f"report-{section}.png"))
    page.locator("#fig-children details.sql summary").click()
    page.locator("#fig-children details.numbers summary").click()
    page.locator("#fig-children").screenshot(path=str(page.shots / "report-how-computed.png"))


@pytest.mark.browser
def test_comparison_opens_offline_in_chromium(page, compare_html: Path) -> None:  # type: ignore[no-untyped-def]
    outside = _open(page, compare_html)
    assert outside == [] and page.failed_requests == [] and page.console_errors == []
    for section in ("standing", "consequences"):
        page.locator(f"section#{section}").screenshot(path=str(page.shots / f"report-compare-{section}.png"))
