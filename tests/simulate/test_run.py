"""Scenario runs end to end: every file written with rows, every blocked attempt is a denied decision
with reasons in the store, same seed → same Parquet tables, and bad scenarios fail at `file:line`."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from socialcredit.cli import app
from socialcredit.engine import Engine
from socialcredit.simulate import run as run_module
from socialcredit.simulate.run import RunResult, run_scenario
from socialcredit.simulate.scenario import load_scenario, parse_scenario
from socialcredit.yamlio import LocatedError

# Court-defaulter listings are raised far above their base rate so that a tiny society has listed
# citizens (and so denied tickets) within three months; attempt rates are high for the same reason.
TINY = """\
name: tiny
seed: 3
start: 2025-01-01
months: 3
cities:
  rongcheng: 500
  shanghai: 500
rates:
  multipliers: {court_defaulter_listing: 150}
services:
  air.ticket: 0.05
  rail.high_speed: 0.05
  school.private_admission: {rate: 0.05, for: children}
"""
FILES = ("scores", "lists", "decisions", "children")
CARRIED: list[bool] = []  # per engine run of the first run: whether it started from the last run's end state


class _Traced(Engine):
    def run(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        summary = super().run(*args, **kwargs)  # type: ignore[arg-type]
        CARRIED.append(self.carried)
        return summary


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, RunResult]:
    scenario = parse_scenario(TINY, "tiny.yaml")
    base = tmp_path_factory.mktemp("runs")
    CARRIED.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_module, "Engine", _Traced)
        first = run_scenario(scenario, base / "a")
    return first, run_scenario(scenario, base / "b")


def test_each_month_s_engine_run_starts_from_the_last_month_s_end_state(runs: tuple[RunResult, RunResult]) -> None:
    """The month's records all lie after the last assessment, so no month before is redone and each run
    after the first reads only the carried state and the new month (what keeps a month's cost its own)."""
    assert CARRIED == [False, True, True]


def test_run_writes_every_file_with_rows(runs: tuple[RunResult, RunResult]) -> None:
    out = runs[0].out_dir
    for name in FILES:
        table = pq.read_table(out / f"{name}.parquet")
        assert table.num_rows > 0, name
        assert sorted(set(table["month"].to_pylist()))[-1].isoformat() == "2025-03-01"
    scores = pq.read_table(out / "scores.parquet").to_pylist()
    march = [r for r in scores if r["month"].isoformat() == "2025-03-01"]
    assert sum(r["citizens"] for r in march) == 1000 == runs[0].citizens
    meta = json.loads((out / "run.json").read_text())
    assert meta["seed"] == 3 and meta["months"] == 3 and len(meta["timings"]["months"]) == 3
    # the run checkpoints once, at its end (DuckDB's default would checkpoint at nearly every commit)
    assert [("checkpoint" in m["seconds"]) for m in meta["timings"]["months"]] == [False, False, True]
    assert not (out / "store.duckdb.wal").exists()
    assert load_scenario(out / "scenario.yaml") == parse_scenario(TINY, "tiny.yaml")  # the copy reloads the same
    assert runs[0].records > 0


def test_every_blocked_attempt_is_a_denied_decision_with_reasons(runs: tuple[RunResult, RunResult]) -> None:
    result = runs[0]
    counted = pq.read_table(result.out_dir / "decisions.parquet").to_pylist()
    denied = sum(r["n"] for r in counted if r["outcome"] == "deny")
    assert denied > 0, "the tiny scenario should block someone"
    with duckdb.connect(str(result.out_dir / "store.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT outcome, reasons FROM decisions WHERE asked_by = 'simulator' AND outcome = 'deny'"
        ).fetchall()
        total = con.execute("SELECT count(*) FROM decisions WHERE asked_by = 'simulator'").fetchall()[0][0]
    assert len(rows) == denied == result.decisions["deny"]
    assert total == sum(r["n"] for r in counted)
    assert all(json.loads(reasons) for _, reasons in rows)


def test_same_seed_same_tables(runs: tuple[RunResult, RunResult]) -> None:
    a, b = runs
    for name in FILES:
        ta: pa.Table = pq.read_table(a.out_dir / f"{name}.parquet")
        assert ta.equals(pq.read_table(b.out_dir / f"{name}.parquet")), name


def test_unknown_city_and_service_name_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(TINY.replace("  shanghai: 500", "  atlantis: 500").replace("air.ticket", "air.tiket"))
    with pytest.raises(LocatedError) as e:
        load_scenario(path)
    assert f"{path}:7: cities.atlantis: unknown city" in str(e.value)
    assert f"{path}:11: services.air.tiket: unknown service" in str(e.value)
    path.write_text(TINY.replace("months: 3", "months: -1"))
    with pytest.raises(LocatedError, match=r"bad\.yaml:4: months:"):
        load_scenario(path)


def test_cli_bad_scenario_exits_2_with_location(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(TINY.replace("  shanghai: 500", "  atlantis: 500"))
    result = CliRunner().invoke(app, ["simulate", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert f"{path}:7: cities.atlantis: unknown city" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_run_settles_its_heap_each_month_and_gives_it_back_at_the_end(tmp_path: Path) -> None:
    """Long-lived objects leave the cyclic collector's reach after the setup and after each month (what made
    a month's collections cheap), and go back to it when the run ends: the caller's heap is collected as
    before. A caller's own frozen objects (here none) would stay frozen."""
    gc.unfreeze()
    seen: list[tuple[str, int]] = []
    scenario = parse_scenario(TINY.replace("months: 3", "months: 2"), "tiny.yaml")
    run_scenario(scenario, tmp_path / "r", lambda done, total, label: seen.append((label, gc.get_freeze_count())))
    frozen = dict(seen)
    assert frozen["population"] == 0  # nothing frozen before the setup
    month_one = next(n for label, n in seen if label.endswith(": records"))
    month_two = [n for label, n in seen if label.endswith(": records")][1]
    assert 0 < month_one < month_two  # settled after the setup, and again after the first month
    assert gc.get_freeze_count() == 0
