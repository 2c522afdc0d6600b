"""`socialcredit export`: a run's main tables through the readable views and every report figure's data,
named as in the report, listed in a manifest; a plain store exports its tables and says why no figures.

One tiny simulated run per module (two cities, three months, court listings far above their base rate so
the figures have data).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from socialcredit.cli import app
from socialcredit.report.rundir import RunDir
from socialcredit.report.society import build
from socialcredit.sample import load_sample
from socialcredit.simulate.run import run_scenario
from socialcredit.simulate.scenario import parse_scenario
from socialcredit.store import Store

SCENARIO = """\
name: export-test
seed: 5
start: 2025-01-01
months: 3
cities: {rongcheng: 120, shanghai: 120}
rates: {scale: 2.0, multipliers: {court_defaulter_listing: 150, smoking_on_train: 20}}
services: {rail.ticket: 0.08, air.ticket: 0.04, school.private_admission: {rate: 0.1, for: children}}
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    run_scenario(parse_scenario(SCENARIO, "export-test.yaml"), out)
    return out


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_a_run_exports_its_tables_and_every_figures_data(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "x"
    shown = invoke("export", str(run_dir), "--to", str(out))
    assert "manifest.json" in shown
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    tables = {t["file"]: t for t in manifest["tables"]}
    assert {
        "citizens.parquet",
        "records.parquet",
        "ledger.parquet",
        "list_entries.parquet",
        "score_log.parquet",
        "decisions.parquet",
    } <= set(tables)
    records = pq.read_table(out / "records.parquet")
    with Store(run_dir / "store.duckdb", read_only=True) as store:
        assert records.num_rows == store.counts()["records"]
        assert pq.read_table(out / "decisions.parquet").num_rows == store.counts()["decisions"]
    assert {"citizen_id", "city", "behaviour", "behaviour_label"} <= set(records.column_names)
    assert not {"ckey", "jkey", "bkey", "rkey"} & set(records.column_names)
    assert str(records.schema.field("occurred_at").type) == "timestamp[us, tz=Asia/Shanghai]"
    # every figure of the report, by its id, with the very rows the report drew from
    with RunDir.open(run_dir) as run:
        doc = build(run)
    report_figures = {f.id: f for s in doc.sections for f in s.figures}
    exported = {f["figure"]: f for f in manifest["figures"]}
    assert set(report_figures) | {"facts"} == set(exported)
    for fid, fig in report_figures.items():
        files = [f for f in exported[fid]["files"] if "query" in f]
        assert [f["query"] for f in files] == [q.name for q in fig.queries]
        for f, q in zip(files, fig.queries, strict=True):
            assert pq.read_table(out / f["file"]).equals(q.table), f["file"]
            assert f["sql"] == q.sql


def test_csv_export_writes_nested_values_as_json(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "csv"
    answer = json.loads(invoke("export", str(run_dir / "store.duckdb"), "--to", str(out), "--format", "csv", "--json"))
    assert "figure data: none" in answer["note"]  # a store file, not the run directory: no report to take it from
    decisions = pacsv.read_csv(out / "decisions.csv").to_pylist()
    denied = [d for d in decisions if d["outcome"] == "deny"]
    assert denied and all(isinstance(json.loads(d["reasons"]), list) for d in denied)
    assert json.loads(denied[0]["reasons"])[0]["measure"]


def test_a_plain_store_exports_its_tables(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        store.init()
        load_sample(store)
    answer = json.loads(invoke("export", str(db), "--to", str(tmp_path / "x"), "--json"))
    files = {t["file"] for t in answer["tables"]}
    assert {"records.parquet", "citizens.parquet"} <= files and "ledger.parquet" not in files  # never scored
    assert "ledger_view" in answer["note"] and answer["figures"] == []


def test_a_bad_source_or_format_is_refused(tmp_path: Path) -> None:
    for args, words in (
        (["export", str(tmp_path / "none"), "--to", str(tmp_path / "x")], "no such store"),
        (["export", str(tmp_path), "--to", str(tmp_path / "x")], "not a run directory"),
        (["export", str(tmp_path), "--to", str(tmp_path / "x"), "--format", "xls"], "--format"),
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and words in result.output, result.output
