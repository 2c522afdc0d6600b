"""The read model (`socialcredit.standings`): one published score and one disclosure policy for every door, and
no door, report or simulator module asking stays or assessments in its own SQL.

One small store (two cities, three citizens, a few records) is built per module and served once, as the
HTTP API and the pages are served together; the grep-based check reads only source text.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import NATIONAL_YAML, citizen, cst, rec
from socialcredit import decisions, explanations, standings
from socialcredit.api.app import create_app
from socialcredit.clock import utc_naive
from socialcredit.engine import Engine
from socialcredit.store import Store

SRC = Path(__file__).resolve().parents[1] / "src" / "socialcredit"
ASKED = cst(2024, 2, 20, 12)  # the service's clock: after the 1 Feb assessment, before the 1 Mar one

LOUD = """\
jurisdiction: loudcity
name: Loud City
level: city
extends: national
region_code: "371082"
version: 1
effective_from: 2020-01-01
source: illustrative
disclosure: {publish_scores: true, billboard: true, station_monitor: true, notify_citizens: true}
"""
QUIET = (
    LOUD.replace("loudcity", "quietcity")
    .replace("Loud City", "Quiet City")
    .replace("{publish_scores: true, billboard: true, station_monitor: true,", "{")
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A scored store served by one app (API and pages), its clock fixed at ASKED; the resident IDs by role."""
    path = tmp_path_factory.mktemp("standings") / "store.duckdb"
    store = Store(path)
    store.init(load_shipped_rulebooks=False)
    for i, text in enumerate((NATIONAL_YAML, LOUD, QUIET)):
        store.add_rulebook(text, f"layer{i}.yaml")
    rows = [citizen(0, city="loudcity"), citizen(1, city="quietcity"), citizen(2, city="loudcity")]
    store.add_citizens(rows)
    ids = {
        "loud": str(rows[0]["citizen_id"]),
        "quiet": str(rows[1]["citizen_id"]),
        "smoker": str(rows[2]["citizen_id"]),
    }
    store.ingest(
        [
            # +5 by the 1 Feb assessment (published 105), +5 more after it (running 110 at ASKED)
            rec("v1", ids["loud"], "volunteer_work", cst(2024, 1, 10), hours=2),
            rec("v2", ids["loud"], "volunteer_work", cst(2024, 2, 10), hours=2),
            rec("q1", ids["quiet"], "volunteer_work", cst(2024, 1, 10), hours=2),
            rec("s1", ids["smoker"], "smoking_on_train", cst(2024, 2, 5)),  # on the rail list (a blacklist)
            rec("s2", ids["quiet"], "smoking_on_train", cst(2024, 2, 5)),
        ],
        now=cst(2024, 2, 15),
    )
    Engine(store).run(as_of=ASKED)
    store.close()
    with TestClient(create_app(path, as_of=ASKED)) as client:
        yield client, ids


def _page_score(html: str) -> int | None:
    found = re.findall(r'data-label="score" class="num score">(-?\d+)<', html)
    assert len(found) <= 1, found
    return int(found[0]) if found else None


def test_api_and_page_register_publish_the_same_score(served: tuple[TestClient, dict[str, str]]) -> None:
    """The API register, the register page and `Standing` all give the published score: the 1 Feb assessment,
    not the running score that a record since then moved."""
    client, ids = served
    api = client.get("/api/v1/register", params={"q": ids["loud"]}).json()["results"]
    page = client.get("/register", params={"q": ids["loud"]})
    assert page.status_code == 200
    svc = client.app.state.service  # type: ignore[attr-defined]
    with svc.lock:
        st = decisions.standing(svc.store, ids["loud"], ASKED)
    assert [r["citizen_id"] for r in api] == [ids["loud"]] and api[0]["published"]
    assert (api[0]["score"], api[0]["grade"]) == (105, "B") == (st.score, st.grade)
    assert _page_score(page.text) == 105
    assert st.running_score == 110 and st.assessed_at == utc_naive(cst(2024, 2, 1))


def test_disclosure_is_refused_and_applied_alike_on_the_api_and_the_pages(
    served: tuple[TestClient, dict[str, str]],
) -> None:
    """A city that publishes nothing: no score on either register, no billboard, honour roll or monitor on
    either door; the city that publishes shows its blacklisted citizen on both boards."""
    client, ids = served
    quiet = client.get("/api/v1/register", params={"q": ids["quiet"]}).json()["results"]
    assert [(r["published"], r["score"], r["grade"]) for r in quiet] == [(False, None, None)]
    page = client.get("/register", params={"q": ids["quiet"]}).text
    assert _page_score(page) is None and "Quiet City does not publish scores" in page
    assert client.get("/api/v1/blacklist/quietcity").status_code == 404
    assert client.get("/api/v1/whitelist/quietcity").status_code == 404
    assert "does not publish a blacklist billboard" in client.get("/blacklist/quietcity").text
    assert client.get("/station/quietcity.json").status_code == 404
    assert ids["quiet"] not in client.get("/blacklist/quietcity").text

    board = client.get("/api/v1/blacklist/loudcity").json()["entries"]
    assert [(e["citizen_id"], e["reason"]) for e in board] == [(ids["smoker"], "smoking_on_train")]
    feed = client.get("/station/loudcity.json").json()["entries"]
    assert [e["name"] for e in feed] == ["Person 2"]
    assert "Person 2" in client.get("/blacklist/loudcity").text


def test_publishes_is_the_policy() -> None:
    """The one disclosure function: an honour roll where scores or a billboard are published; nothing without
    a rulebook."""
    from socialcredit.rulebook import RulebookSet, parse_layer

    books = RulebookSet([parse_layer(t, f"l{i}.yaml") for i, t in enumerate((NATIONAL_YAML, LOUD, QUIET))])
    loud, quiet = books.resolve("loudcity", ASKED.date()), books.resolve("quietcity", ASKED.date())
    assert all(standings.publishes(loud, w) for w in ("scores", "billboard", "honour_roll", "station_monitor"))
    assert not any(standings.publishes(quiet, w) for w in ("scores", "billboard", "honour_roll", "station_monitor"))
    assert not standings.publishes(None, "scores")


# ------------------------------------------------------------------------------------------- no copies

# "a stay in force at t", however spelled: an open end or one after the time (`"end" IS NULL OR "end" > …`)
STAY_IN_FORCE = re.compile(r'"?end"?\s+IS\s+NULL\s+OR\s+[\w."]*"?end"?\s*>', re.I)
# "the latest assessment": arg_max/max_by over assessed_at, newest-first with a limit, or an ASOF join on the log
LATEST_ASSESSMENT = re.compile(
    r"(arg_max|max_by)\s*\([^()]*assessed_at|ORDER\s+BY\s+[\w.]*assessed_at\s+DESC\s+LIMIT\s+1|ASOF[^;]*score_log",
    re.I | re.S,
)
# the engine writes list_entries and score_log: its steps are the writer's, not readers' copies (SPEC §4)
WRITERS = ("engine/",)


def _sql_texts(path: Path) -> list[tuple[int, str]]:
    """Every string constant in a module (f-strings' literal parts too), with its line."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
    return sorted(out)


def copies(root: Path) -> list[str]:
    """Hand-written stay-in-force or latest-assessment SQL outside the read model and the engine."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "standings.py" or rel.startswith(WRITERS):
            continue
        for line, text in _sql_texts(path):
            for name, pattern in (("stay in force", STAY_IN_FORCE), ("latest assessment", LATEST_ASSESSMENT)):
                if pattern.search(text):
                    found.append(f"{rel}:{line}: {name}")
    return found


def test_no_hand_written_stays_or_assessments_outside_the_read_model() -> None:
    assert copies(SRC) == []


def test_the_copy_check_finds_each_spelling(tmp_path: Path) -> None:
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "grades.py").write_text('Q = """WHERE ("end" IS NULL OR "end" > $t)"""\n')
    (tmp_path / "door.py").write_text(
        'A = """SELECT 1 FROM list_entries e WHERE e.start <= ? AND (e."end" IS NULL OR e."end" > ?)"""\n'
        'B = f"""SELECT ckey, arg_max(score, assessed_at) AS score FROM {t} GROUP BY ckey"""\n'
        'C = "SELECT score FROM score_log WHERE ckey = ? ORDER BY assessed_at DESC LIMIT 1"\n'
        'D = "FROM u ASOF JOIN score_log l ON l.ckey = u.ckey"\n'
        'E = "SELECT assessed_at, score FROM score_log WHERE ckey = ? ORDER BY assessed_at"\n',
        encoding="utf-8",
    )
    assert copies(tmp_path) == [
        "door.py:1: stay in force",
        "door.py:2: latest assessment",
        "door.py:3: latest assessment",
        "door.py:4: latest assessment",
    ]


def test_a_record_after_the_run_counts_at_once_and_the_stored_ledger_answers_after_the_next(tmp_path: Path) -> None:
    """The running score and the explanation read `scored_ledger` (the stored rows, cheap to plan) only while
    every record is scored: a record appended after the run counts at once through `ledger`'s on-the-fly
    part, and after the next run the stored view gives the same answer, row for row."""
    store = Store(tmp_path / "s.duckdb")
    store.init(load_shipped_rulebooks=False)
    store.add_rulebook(NATIONAL_YAML, "national.yaml")
    store.add_rulebook(LOUD, "loud.yaml")
    row = citizen(0, city="loudcity")
    store.add_citizens([row])
    cid = str(row["citizen_id"])
    store.ingest([rec("v1", cid, "volunteer_work", cst(2024, 1, 10), hours=2)], now=cst(2024, 1, 15))
    Engine(store).run(as_of=ASKED)
    assert standings.ledger_table(store) == "scored_ledger"
    assert decisions.standing(store, cid, ASKED).running_score == 105

    store.ingest([rec("v2", cid, "volunteer_work", cst(2024, 2, 10), hours=2)], now=cst(2024, 2, 15))
    assert standings.ledger_table(store) == "ledger"
    assert decisions.standing(store, cid, ASKED).running_score == 110
    late = [e for e in explanations.explain(store, cid, ASKED)["ledger"] if e["source"] == "record"]
    assert sorted(e["record"]["record_id"] for e in late) == ["v1", "v2"]

    Engine(store).run(as_of=ASKED)
    assert standings.ledger_table(store) == "scored_ledger"
    assert decisions.standing(store, cid, ASKED).running_score == 110
    stored, full = (store.con.execute(f"FROM {v} ORDER BY ALL").fetchall() for v in ("scored_ledger", "ledger"))
    assert stored == full
    store.close()


def test_latest_grades_are_the_latest_assessments_whether_read_from_the_end_state_or_the_log(tmp_path: Path) -> None:
    """From the last run's end state at or after its final assessment, from the score log before it: the same
    (ckey, score, grade) as `latest_assessments` either way, also for a citizen whose end state has no score."""
    from socialcredit.sample import load_sample

    store = Store(tmp_path / "s.duckdb")
    store.init()
    load_sample(store)
    Engine(store).run(as_of=cst(2025, 9, 1))

    def rows(query: object) -> list[tuple]:
        return sorted(store.con.execute(query.sql(standings.DIALECT)).fetchall())  # type: ignore[attr-defined]

    def expected(at: object) -> list[tuple]:
        return rows(standings.fill("SELECT ckey, score, grade FROM __a AS a", a=standings.latest_assessments(at)))

    for at in (utc_naive(cst(2025, 9, 1)), utc_naive(cst(2026, 1, 1)), utc_naive(cst(2025, 4, 15))):
        got = standings.latest_grades(store, at)
        assert rows(got) == expected(at) and len(rows(got)) >= 5
        assert ("engine_carry" in got.sql()) == (at >= utc_naive(cst(2025, 9, 1)))
    # a citizen whose end state lost its score keeps the one the log has
    someone = store.con.execute("SELECT min(ckey) FROM score_log").fetchall()[0][0]
    store.con.execute("UPDATE engine_carry SET score = NULL, grade = NULL WHERE ckey = ?", [someone])
    at = utc_naive(cst(2025, 9, 1))
    assert rows(standings.latest_grades(store, at)) == expected(at)
    # a store whose last run was made by an engine that did not say which month its end state holds: the log
    store.con.execute("ALTER TABLE engine_run DROP COLUMN carried_at")
    got = standings.latest_grades(store, at)
    assert "engine_carry" not in got.sql() and rows(got) == expected(at)
    store.close()
