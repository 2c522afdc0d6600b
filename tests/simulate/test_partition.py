"""Partitioned runs: the split follows cities and the size bound, districts never share a resident ID,
the merged series add up the partitions', the result does not depend on how many workers ran it, and a
partition reruns alone from its own scenario.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from socialcredit import ids
from socialcredit.cli import app
from socialcredit.simulate import partition
from socialcredit.simulate.partition import MERGE_KEYS, run_partitioned, split
from socialcredit.simulate.population import generate_population
from socialcredit.simulate.run import run_scenario
from socialcredit.simulate.scenario import load_scenario, parse_scenario
from socialcredit.yamlio import LocatedError

SMALL = """\
name: split
seed: 5
start: 2025-01-01
months: 2
cities:
  rongcheng: 700
  shanghai: 1100
rates:
  multipliers: {court_defaulter_listing: 150}
services:
  rail.high_speed: 0.05
  school.private_admission: {rate: 0.05, for: children}
incentives: {}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    scenario = parse_scenario(SMALL, "split.yaml")
    out = {}
    for workers in (1, 2):
        out[workers] = tmp_path_factory.mktemp(f"w{workers}") / "run"
        run_partitioned(scenario, out[workers], size=600, workers=workers, memory_gib=2)
    return out


def test_split_follows_cities_and_the_size_bound() -> None:
    parts = split(parse_scenario(SMALL, "split.yaml"), 600)
    assert [p.key for p in parts] == ["rongcheng-1-of-2", "rongcheng-2-of-2", "shanghai-1-of-2", "shanghai-2-of-2"]
    assert [next(iter(p.scenario.cities.values())) for p in parts] == [350, 350, 550, 550]
    assert all(p.scenario.district is not None and p.scenario.district.of == 2 for p in parts)
    assert [p.key for p in split(parse_scenario(SMALL, "split.yaml"), 10_000)] == [
        "rongcheng-1-of-1",
        "shanghai-1-of-1",
    ]
    with pytest.raises(LocatedError, match="at least 1"):
        split(parse_scenario(SMALL, "split.yaml"), 0)
    with pytest.raises(LocatedError, match="already a partition"):
        split(parts[0].scenario, 600)


def test_districts_of_a_city_never_share_a_resident_id() -> None:
    found: list[str] = []
    for i in range(3):
        pop = generate_population({"shanghai": 4000}, 9, district=(i, 3))
        found += pop.citizens["citizen_id"].to_pylist()
    assert len(found) == len(set(found)) == 12_000
    assert all(ids.problem(x) is None for x in found)
    # the districts are different people, not copies drawn from one stream
    names = [generate_population({"shanghai": 50}, 9, district=(i, 3)).citizens["name"].to_pylist() for i in (0, 1)]
    assert names[0] != names[1]


def test_the_run_does_not_depend_on_the_number_of_workers(runs: dict[int, Path]) -> None:
    for name in MERGE_KEYS:
        one, two = runs[1] / f"{name}.parquet", runs[2] / f"{name}.parquet"
        assert one.exists() == two.exists()
        if one.exists():
            assert pq.read_table(one).equals(pq.read_table(two)), name


TINY = """\
name: tiny
seed: 3
start: 2025-01-01
months: 1
cities:
  rongcheng: 30
  shanghai: 30
"""


def test_small_partitions_share_the_workers_and_large_ones_get_one_each(
    runs: dict[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker process costs about 2 CPU-seconds to start: partitions smaller than FRESH_WORKER_FROM share
    the pool's (one worker ran all four), larger ones each get a fresh one, whose memory goes back to the
    system after it (here the bound lowered below these two partitions of 30)."""
    infos = json.loads((runs[1] / "run.json").read_text(encoding="utf-8"))["partitions"]
    assert len(infos) == 4 and len({i["worker"] for i in infos}) == 1, infos
    monkeypatch.setattr(partition, "FRESH_WORKER_FROM", 30)
    run_partitioned(parse_scenario(TINY, "tiny.yaml"), tmp_path / "run", size=30, workers=1, memory_gib=1)
    infos = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))["partitions"]
    assert len(infos) == 2 and len({i["worker"] for i in infos}) == 2, infos


def test_merged_series_add_up_the_partitions(runs: dict[int, Path]) -> None:
    run = runs[2]
    parts = sorted((run / "partitions").iterdir())
    assert len(parts) == 4
    for name in ("decisions", "lists", "children", "scores"):
        merged = pq.read_table(run / f"{name}.parquet")
        column = {"decisions": "n", "lists": "entries", "children": "children", "scores": "citizens"}[name]
        total = sum(pc.sum(pq.read_table(p / f"{name}.parquet")[column]).as_py() for p in parts)
        assert pc.sum(merged[column]).as_py() == total, name
    scores = pq.read_table(run / "scores.parquet")
    last = pc.equal(scores["month"], pc.max(scores["month"]))
    assert pc.sum(scores.filter(last)["citizens"]).as_py() == 1800
    ids_seen: list[str] = []
    for p in parts:
        with duckdb.connect(str(p / "store.duckdb"), read_only=True) as con:
            ids_seen += [r[0] for r in con.execute("SELECT citizen_id FROM citizens").fetchall()]
    assert len(ids_seen) == len(set(ids_seen)) == 1800


def test_a_partition_reruns_alone(runs: dict[int, Path], tmp_path: Path) -> None:
    part = runs[2] / "partitions" / "shanghai-2-of-2"
    scenario = load_scenario(part / "scenario.yaml")
    assert scenario.district is not None and scenario.district.index == 1
    run_scenario(scenario, tmp_path / "again")
    for name in ("scores", "lists", "decisions", "children"):
        assert pq.read_table(tmp_path / "again" / f"{name}.parquet").equals(pq.read_table(part / f"{name}.parquet"))


def test_the_report_names_a_partition_to_report(runs: dict[int, Path]) -> None:
    result = CliRunner().invoke(app, ["report", str(runs[1])])
    assert result.exit_code == 2
    assert str(runs[1] / "partitions" / "rongcheng-1-of-2") in result.stderr


def test_the_cli_runs_partitions(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SMALL.replace("months: 2", "months: 1"), encoding="utf-8")
    result = CliRunner().invoke(
        app, ["simulate", str(path), "--out", str(tmp_path / "run"), "--partition-size", "1000", "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "1,800 citizens in 3 partitions" in result.stdout
    alone = CliRunner().invoke(app, ["simulate", str(path), "--out", str(tmp_path / "x"), "--workers", "2"])
    assert alone.exit_code == 2 and "add --partition-size" in alone.stderr
    assert not (tmp_path / "x").exists()
    again = CliRunner().invoke(app, ["simulate", str(path), "--out", str(tmp_path / "run"), "--partition-size", "9"])
    assert again.exit_code == 2 and f"{tmp_path / 'run'}: already holds a run" in again.stderr
