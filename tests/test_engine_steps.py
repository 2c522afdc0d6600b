"""The engine is compiled steps: every statement it runs is a sqlglot expression that sqlglot can write for
every executed dialect, and its modules hold no SQL text with values pasted in (issue 12, section 1)."""

from __future__ import annotations

import ast
import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import UnsupportedError

import socialcredit.engine
from socialcredit.engine import Engine
from socialcredit.engine.executors import DIALECTS, Query, portable, step, tree
from socialcredit.engine.executors.duckdb import DuckDBExecutor
from socialcredit.engine.sql import value
from socialcredit.sample import load_sample
from socialcredit.store import Store

ENGINE_DIR = Path(socialcredit.engine.__file__).parent
SQL_WORDS = re.compile(r"\b(SELECT|FROM|WHERE|INSERT|UPDATE|DELETE|CREATE|JOIN|GROUP BY|UNION)\b", re.I)


class Recording(DuckDBExecutor):
    """DuckDB, keeping every expression it was handed (with what it was asked to do with it)."""

    def __init__(self, con) -> None:  # type: ignore[no-untyped-def]
        super().__init__(con)
        self.seen: list[tuple[str, str, exp.Expression]] = []

    def materialize(self, name: str, query: Query, temporary: bool = False) -> None:
        self.seen.append(("materialize", name, tree(query).copy()))
        super().materialize(name, query, temporary)

    def view(self, name: str, query: Query, temporary: bool = False) -> None:
        self.seen.append(("view", name, tree(query).copy()))
        super().view(name, query, temporary)

    def append(self, name: str, query: Query) -> int:
        self.seen.append(("append", name, tree(query).copy()))
        return super().append(name, query)

    def fetch(self, query: Query) -> pa.Table:
        self.seen.append(("fetch", "", tree(query).copy()))
        return super().fetch(query)

    def delete(self, name: str, condition: Query) -> None:
        self.seen.append(("delete", name, tree(condition).copy()))
        super().delete(name, condition)

    def update(self, name: str, key: str, query: Query) -> None:
        self.seen.append(("update", name, tree(query).copy()))
        super().update(name, key, query)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """The bundled sample scored twice through the recording executor: a full run, then a later one that
    resumes from it (the incremental path's statements too)."""
    store = Store(tmp_path_factory.mktemp("steps") / "s.duckdb")
    store.init()
    load_sample(store)
    rec = Recording(store.con)
    first = Engine(store, executor=rec)
    first.run(as_of=dt.datetime(2025, 6, 1))
    later = Engine(store, executor=rec)
    later.run(as_of=dt.datetime(2025, 12, 1))
    assert later.resumed_from is not None and later.carried  # the resumption path ran
    store.close()
    return rec


# what sqlglot writes for Spark without complaint but Spark cannot run: DuckDB's own joins (Spark's grammar
# reads `[LEFT] ANTI JOIN` and `[LEFT] SEMI JOIN`, so those two are portable), functions sqlglot does not
# know (passed through by name), row-level changes
DUCKDB_JOINS = {"ASOF", "POSITIONAL"}
# DuckDB's row hash fingerprints the facts for resuming, which stays the store's own (engine/resume.py)
ALLOWED_UNKNOWN = {"HASH"}


def dialect_only(query: exp.Expression) -> list[str]:
    """The constructs in a statement that only DuckDB understands, though sqlglot writes them for Spark."""
    out = [
        f"{word} JOIN"
        for j in query.find_all(exp.Join)
        for word in (str(j.args.get(a) or "").upper() for a in ("kind", "method"))
        if word in DUCKDB_JOINS
    ]
    out += [f"{f.name}()" for f in query.find_all(exp.Anonymous) if f.name.upper() not in ALLOWED_UNKNOWN]
    out += [type(n).__name__ for n in query.find_all(exp.Update, exp.Delete, exp.Set)]
    return out


def test_every_statement_the_engine_runs_is_portable(recorded: Recording) -> None:
    kinds = {kind for kind, _, _ in recorded.seen}
    assert {"materialize", "view", "append", "fetch", "delete", "update"} <= kinds
    names = {name for _, name, _ in recorded.seen}
    assert {"record_entries", "list_entries", "score_log", "grade_stays", "deltas", "engine_carry"} <= names
    refused = []
    for kind, name, query in recorded.seen:
        try:
            out = portable(query)
        except UnsupportedError as e:
            refused.append(f"{kind} {name}: {e}")
            continue
        assert set(out) == set(DIALECTS)
        if dialect_only(query):
            refused.append(f"{kind} {name}: {dialect_only(query)}")
    assert not refused, "\n".join(refused)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM ev ASOF JOIN periods AS p ON p.t >= ev.at",
        "SELECT * FROM e POSITIONAL JOIN f",
        "SELECT occurred_at + to_months(vf_months) FROM q",
        "UPDATE cur SET raw = raw + d.d FROM deltas AS d WHERE d.ckey = cur.ckey",
    ],
)
def test_a_duckdb_only_construct_is_refused(text: str) -> None:
    """The check above can fail: what DuckDB alone runs is found, though sqlglot writes Spark text for it."""
    assert dialect_only(sqlglot.parse_one(text, read="duckdb"))


def _sql_fstrings(path: Path) -> list[str]:
    """f-strings in a module whose literal text reads like SQL (an error's message is prose: "computed from")."""
    out = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    messages = {id(n) for r in ast.walk(tree) if isinstance(r, ast.Raise) for n in ast.walk(r)}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and id(node) not in messages:
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            if SQL_WORDS.search(text):
                out.append(f"{path.name}:{node.lineno}")
    return out


def test_no_fstring_sql_in_the_engine() -> None:
    found = [hit for path in sorted(ENGINE_DIR.glob("*.py")) for hit in _sql_fstrings(path)]
    assert not found, found


def test_the_fstring_check_finds_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('t = 1\nq = f"SELECT * FROM x WHERE t = {t}"\n', encoding="utf-8")
    assert _sql_fstrings(bad) == ["bad.py:2"]


def test_engine_modules_are_small() -> None:
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in ENGINE_DIR.glob("*.py")}
    assert len(sizes) >= 8
    assert all(n <= 400 for n in sizes.values()), sizes


def test_fill_puts_values_as_literals_and_spreads_lists_where_the_template_has_one() -> None:
    """A value becomes a literal (a quote in it cannot end the string); a list given for a placeholder in a
    select list or a call's arguments becomes its items there, and a list where the template has none is
    refused."""
    from socialcredit.engine.sql import fill

    q = fill("SELECT $cols, concat_ws('|', $args) FROM t WHERE name = $name", cols=[exp.column("a"), exp.column("b")],
             args=[exp.column("c"), 0], name="x' OR 1=1 --")  # fmt: skip
    assert q.sql("duckdb") == "SELECT a, b, CONCAT_WS('|', c, 0) FROM t WHERE name = 'x'' OR 1=1 --'"
    with pytest.raises(TypeError, match=r"\$w is given a list"):
        fill("SELECT 1 FROM t WHERE $w", w=[exp.true()])


def test_a_steps_text_is_made_once_and_stands_for_no_other_step() -> None:
    """An executor keeps a Step's text: the tree is built the first time only, and arguments that Python
    counts equal but SQL does not (1, True, 1.0) each get their own."""
    built: list[object] = []

    def answer(v: object) -> exp.Expression:
        built.append(v)
        return exp.select(value(v).as_("v"))

    ex = DuckDBExecutor(duckdb.connect())
    asked = [1, 1, True, 1.0, 1, True, 2]
    got = [ex.fetch(step(answer, v)).column(0).to_pylist()[0] for v in asked]
    shown = [1, 1, True, Decimal("1.0"), 1, True, 2]  # DuckDB reads the literal 1.0 as a decimal
    assert [(type(v), v) for v in got] == [(type(v), v) for v in shown]
    assert [(type(v), v) for v in built] == [(int, 1), (bool, True), (float, 1.0), (int, 2)]


def test_a_stored_view_made_again_from_the_same_statement_is_kept_and_reads_the_tables_as_they_are_now() -> None:
    """DuckDB binds a view when it is created (the ledger's views: 26 ms each, every run), so the executor keeps a
    stored view whose statement is unchanged; one changed, or replaced by anyone else, is made again, and a
    temporary view is always made. Kept or made, a view reads its tables as they are when it is read."""

    class Logged:  # the connection, keeping the text of every statement it runs
        def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
            self.con = con
            self.texts: list[str] = []

        def execute(self, text: str, *args: object) -> duckdb.DuckDBPyConnection:
            self.texts.append(text)
            return self.con.execute(text, *args)

    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT 1 AS a")
    logged = Logged(con)
    ex = DuckDBExecutor(logged)  # type: ignore[arg-type]

    def made() -> int:
        return sum(t.startswith("CREATE OR REPLACE") for t in logged.texts)

    def read() -> list[tuple[int]]:
        return con.execute("SELECT * FROM v").fetchall()

    ex.view("v", exp.select("a").from_("t"))
    ex.view("v", exp.select("a").from_("t"))
    assert made() == 1 and read() == [(1,)]
    con.execute("CREATE OR REPLACE TABLE t AS SELECT 2 AS a")
    ex.view("v", exp.select("a").from_("t"))
    assert made() == 1 and read() == [(2,)]  # kept, and bound when read
    ex.view("v", exp.select("a + 1 AS a").from_("t"))
    assert made() == 2 and read() == [(3,)]  # another statement
    con.execute("CREATE OR REPLACE VIEW v AS SELECT a FROM t")  # someone else's view of that name
    ex.view("v", exp.select("a + 1 AS a").from_("t"))
    assert made() == 3 and read() == [(3,)]
    con.execute("DROP VIEW v")
    ex.view("v", exp.select("a + 1 AS a").from_("t"))
    assert made() == 4 and read() == [(3,)]
    ex.view("w", exp.select("a").from_("t"), temporary=True)
    ex.view("w", exp.select("a").from_("t"), temporary=True)
    assert made() == 6


def test_the_engine_gives_the_store_s_connection_back_as_it_found_it(tmp_path: Path) -> None:
    """The executor tunes DuckDB's perfect hash tables to the citizens' keys for its own statements, and puts
    the store connection's setting back when each engine call ends: left set, every later query on the store
    grouping a few rows by a wide key paid for a table of 2^21 entries (the simulator's responses, 16×)."""
    store = Store(tmp_path / "s.duckdb")
    store.init()
    load_sample(store)
    setting = "SELECT current_setting('perfect_ht_threshold')"
    store.con.execute("SET perfect_ht_threshold = 13")
    seen: list[int] = []

    class Watching(DuckDBExecutor):
        def materialize(self, name: str, query: Query, temporary: bool = False) -> None:
            super().materialize(name, query, temporary)
            seen.append(int(self.con.execute(setting).fetchall()[0][0]))

    engine = Engine(store)
    engine.prepare()
    n = int(store.con.execute("SELECT max(ckey) + 1 FROM citizens").fetchall()[0][0])
    engine.executor = Watching(store.con, dense_keys=n)
    engine._given = engine.executor  # keep this executor (the run makes its own only when given none)
    engine.run(as_of=dt.datetime(2025, 6, 1))
    assert seen and set(seen) == {max(12, n.bit_length() + 1)}  # the run's own setting, on every statement
    assert store.con.execute(setting).fetchall()[0][0] == 13  # and the store's back after it
    Engine(store).run(as_of=dt.datetime(2025, 7, 1))  # the engine's own executor too
    assert store.con.execute(setting).fetchall()[0][0] == 13

    class Failing(DuckDBExecutor):
        def materialize(self, name: str, query: Query, temporary: bool = False) -> None:
            super().materialize(name, query, temporary)
            if name == "nxt":
                raise RuntimeError("stopped in the month loop")

    failing = Engine(store, executor=Failing(store.con, dense_keys=n))
    with pytest.raises(RuntimeError, match="month loop"):  # and when a call fails midway
        failing.run(as_of=dt.datetime(2025, 8, 1), full=True)
    assert store.con.execute(setting).fetchall()[0][0] == 13
    store.close()


def test_a_run_resumed_after_the_last_assessment_keeps_the_score_log_in_place(tmp_path: Path) -> None:
    """A month's run redoes nothing the last one logged, so it appends to the score log and never copies it
    (a copy grows with every month); a back-dated record makes it drop the redone rows, as before."""
    store = Store(tmp_path / "s.duckdb")
    store.init()
    load_sample(store)
    rec = Recording(store.con)
    Engine(store, executor=rec).run(as_of=dt.datetime(2025, 6, 1))
    logged = store.con.execute("SELECT count(*) FROM score_log").fetchall()[0][0]
    rec.seen.clear()
    later = Engine(store, executor=rec)
    later.run(as_of=dt.datetime(2025, 9, 1))
    assert later.carried and ("materialize", "score_log") not in [(k, n) for k, n, _ in rec.seen]
    assert ("append", "score_log") in [(k, n) for k, n, _ in rec.seen]
    assert store.con.execute("SELECT count(*) FROM score_log").fetchall()[0][0] > logged
    store.close()
