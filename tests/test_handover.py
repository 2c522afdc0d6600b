"""The Parquet hand-over: facts out, derived tables back in, all of them or none, and nothing that is not
a complete derived set of this store's facts."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import rec
from socialcredit.engine import Engine, handover
from socialcredit.sample import load_sample
from socialcredit.store import Store

AS_OF = dt.datetime(2026, 9, 1)  # after the sample's last record


def sample_store(path: Path, scored: bool) -> Store:
    store = Store(path)
    store.init()
    load_sample(store)
    if scored:
        Engine(store).run(AS_OF)
    return store


@dataclass
class Made:
    fresh: Path
    """the sample, never scored"""
    scored: Path
    """the sample, scored as of AS_OF"""
    derived: Path
    """that run's derived tables, exported"""


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    """The sample's stores and a DuckDB run's export, made once for the module; tests work on copies."""
    base = tmp_path_factory.mktemp("handover")
    sample_store(base / "fresh.duckdb", scored=False).close()
    shutil.copyfile(base / "fresh.duckdb", base / "scored.duckdb")
    with Store(base / "scored.duckdb") as store:
        Engine(store).run(AS_OF)
        handover.export_derived(store, base / "derived")
    return Made(base / "fresh.duckdb", base / "scored.duckdb", base / "derived")


def copy(path: Path, tmp_path: Path) -> Store:
    shutil.copyfile(path, tmp_path / path.name)
    return Store(tmp_path / path.name)


def table_rows(store: Store, name: str) -> list[tuple]:
    return sorted(store.con.table(name).fetchall(), key=repr)


def test_a_run_carried_to_another_store_of_the_same_facts_is_the_same_run(made: Made, tmp_path: Path) -> None:
    with copy(made.scored, tmp_path) as scored, copy(made.fresh, tmp_path) as fresh:
        manifest = handover.import_derived(fresh, made.derived)
        assert manifest.tables["score_log"] > 0 and manifest.tables["list_entries"] > 0  # the sample lists people
        for name in handover.DERIVED:
            if name in manifest.tables:
                assert table_rows(fresh, name) == table_rows(scored, name), name


def test_facts_export_has_every_fact_and_compiled_table_unchanged(made: Made, tmp_path: Path) -> None:
    with copy(made.fresh, tmp_path) as store:
        manifest = handover.export_facts(store, tmp_path / "facts")
        assert set(manifest.tables) == {*handover.FACTS, *handover.COMPILED}
        records = pq.read_table(handover.files(tmp_path / "facts", "records"))
        assert records.num_rows == manifest.tables["records"] > 0
        # naive UTC in the store, naive UTC in the file: no zone, no shift
        assert records.schema.field("occurred_at").type == pa.timestamp("us")
        stored = store.con.execute("SELECT rkey, occurred_at FROM records ORDER BY rkey").fetchall()
        assert sorted(zip(records["rkey"].to_pylist(), records["occurred_at"].to_pylist(), strict=True)) == stored
        with pytest.raises(handover.HandoverError, match="holds facts, not the derived tables"):
            handover.import_derived(store, tmp_path / "facts")


def test_an_incomplete_set_is_refused_naming_every_missing_table(made: Made, tmp_path: Path) -> None:
    broken = tmp_path / "derived"
    shutil.copytree(made.derived, broken)
    shutil.rmtree(broken / "score_log")
    shutil.rmtree(broken / "list_entries")
    with copy(made.fresh, tmp_path) as store:
        with pytest.raises(handover.HandoverError, match="missing list_entries, score_log") as e:
            handover.import_derived(store, broken)
        assert str(broken) in str(e.value)
        assert table_rows(store, "record_entries") == []  # a never-scored store, still never scored


def test_a_truncated_copy_and_a_missing_manifest_are_refused(made: Made, tmp_path: Path) -> None:
    broken = tmp_path / "derived"
    shutil.copytree(made.derived, broken)
    part = handover.files(broken, "score_log")[0]
    pq.write_table(pq.read_table(part).slice(0, 1), part)
    with copy(made.fresh, tmp_path) as store:
        with pytest.raises(handover.HandoverError, match=r"score_log: 1 rows, the manifest says \d+"):
            handover.import_derived(store, broken)
        (broken / handover.MANIFEST).unlink()
        with pytest.raises(handover.HandoverError, match=r"manifest\.json: missing"):
            handover.import_derived(store, broken)


def test_a_set_of_another_format_is_refused_before_anything_changes(made: Made, tmp_path: Path) -> None:
    """A derived set written by a version whose tables had other columns (the format says which) is refused
    as such, not half-read: the store keeps its own run."""
    old = tmp_path / "derived"
    shutil.copytree(made.derived, old)
    manifest = json.loads((old / handover.MANIFEST).read_text())
    manifest["format"] = "socialcredit-handover/1"
    (old / handover.MANIFEST).write_text(json.dumps(manifest))
    with copy(made.scored, tmp_path) as store:
        before = table_rows(store, "engine_carry")
        with pytest.raises(handover.HandoverError, match=r"format 'socialcredit-handover/1', this version reads"):
            handover.import_derived(store, old)
        assert table_rows(store, "engine_carry") == before


def test_a_run_of_other_facts_is_refused(made: Made, tmp_path: Path) -> None:
    with copy(made.fresh, tmp_path) as store:
        cid = store.con.execute("SELECT citizen_id FROM citizens LIMIT 1").fetchall()[0][0]
        store.ingest([rec("late-1", cid, "volunteer_work", dt.datetime(2026, 1, 5, tzinfo=dt.UTC), hours=4)], name="t")
        with pytest.raises(handover.HandoverError, match="computed from other facts"):
            handover.import_derived(store, made.derived)


def test_a_table_that_fails_halfway_leaves_every_table_as_it_was(made: Made, tmp_path: Path) -> None:
    """All or none: the last table (notifications) cannot be inserted, after the others were replaced."""
    broken = tmp_path / "derived"
    shutil.copytree(made.derived, broken)
    part = handover.files(broken, "notifications")[0]
    rows = pq.read_table(part).num_rows
    pq.write_table(pa.table({"nonsense": pa.array(range(rows), pa.int64())}), part)
    with copy(made.scored, tmp_path) as store:
        before = {n: table_rows(store, n) for n in ("score_log", "list_entries", "notifications")}
        store.con.execute("DELETE FROM score_log")  # so that a replaced score_log would show
        before["score_log"] = []
        with pytest.raises(handover.HandoverError, match="notifications: cannot be imported, nothing was changed"):
            handover.import_derived(store, broken)
        assert {n: table_rows(store, n) for n in before} == before


def test_the_commands_carry_a_run_home_and_say_what_is_wrong(made: Made, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from socialcredit.cli import app

    runner = CliRunner()
    shutil.copyfile(made.fresh, tmp_path / "s.duckdb")
    db = ["--db", str(tmp_path / "s.duckdb")]
    r = runner.invoke(app, ["export-facts", *db, "--to", str(tmp_path / "facts")])
    assert r.exit_code == 0 and "records) to" in r.output, r.output
    assert (tmp_path / "facts" / handover.MANIFEST).is_file()
    r = runner.invoke(app, ["import-derived", *db, "--from", str(tmp_path / "facts")])
    assert r.exit_code == 2 and "holds facts, not the derived tables" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["import-derived", *db, "--from", str(made.derived)])
    assert r.exit_code == 0 and "imported" in r.output, r.output
    with Store(tmp_path / "s.duckdb") as store, Store(made.scored) as scored:
        assert table_rows(store, "score_log") == table_rows(scored, "score_log")
