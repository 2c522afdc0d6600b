"""The Parquet hand-over: the store's facts out to a directory, derived tables from a directory back in.

An engine run elsewhere (Spark, on this machine or a cluster) reads a directory of Parquet files and writes
one back; the store never has to be reachable from the cluster. A directory holds one subdirectory per
table (one or more `*.parquet` files in it, as Spark writes them) and `manifest.json`, which says what the
directory is (`facts` or `derived`), each table's row count and the watermark of the facts it was made
from. The import checks all of it before it writes anything, then replaces every derived table in one
transaction: a store never holds half of one run and half of another.

Timestamps travel as Parquet TIMESTAMP not adjusted to UTC (naive, as the store keeps them), which Spark
reads as TIMESTAMP_NTZ; nothing on the way converts them to or from a zone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from socialcredit import schema
from socialcredit.engine import Engine, watermark
from socialcredit.engine.entries import built
from socialcredit.engine.executors import sql
from socialcredit.engine.executors.duckdb import DuckDBExecutor
from socialcredit.engine.ledger import compiled_views, ledger_views, prepared, record_views
from socialcredit.engine.memory import listed
from socialcredit.store import Store
from socialcredit.yamlio import LocatedError

MANIFEST = "manifest.json"
# 2: engine_carry is the month loop's own state (with city and network points; its month in engine_run), so a
# derived set written before it cannot be imported into a store this version resumes from
FORMAT = "socialcredit-handover/2"

# the facts an engine run reads (rulebook texts are not among them: they travel compiled, as COMPILED)
FACTS = (
    "jurisdictions",
    "behaviours",
    "citizens",
    "relations",
    "relation_changes",
    "records",
    "retractions",
    "notifications",
    "rulebook_versions",
)  # relation_changes: the run's watermark counts them
# the compiled rulebooks as the engine's steps join them: made by the exporting side, so the other side needs
# no rulebook parser and runs exactly the tables this store's engine would
COMPILED = ("dt_params", "dt_buckets", "dt_cells", "pieces", "general_rules", "segments", "caps")
# what a run writes: the compiled tables it ran with, and the tables it computed (socialcredit.schema's)
COMPUTED = (*[t.name for t in schema.DERIVED], "characteristic_intervals")
DERIVED = (*COMPILED, *COMPUTED, "notifications")
# absent after a run with no monthly assessment (the engine drops them then, and so does the import)
OPTIONAL = frozenset({"engine_carry", "engine_pending"})


class HandoverError(LocatedError):
    """A directory that is not what the hand-over needs; says which directory and what is wrong or missing."""


@dataclass(frozen=True)
class Manifest:
    kind: str
    tables: dict[str, int]
    watermark: str

    def write(self, directory: Path) -> None:
        text = json.dumps({"format": FORMAT, "kind": self.kind, "watermark": self.watermark, "tables": self.tables},
                          indent=2, sort_keys=True)  # fmt: skip
        (directory / MANIFEST).write_text(text + "\n", encoding="utf-8")

    @staticmethod
    def read(directory: Path) -> Manifest:
        path = directory / MANIFEST
        if not directory.is_dir():
            raise HandoverError(f"{directory}: no such directory")
        if not path.is_file():
            raise HandoverError(f"{path}: missing; a hand-over directory has a manifest (written by export)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data["format"] != FORMAT:
                raise HandoverError(f"{path}: format {data['format']!r}, this version reads {FORMAT!r}")
            tables = {str(k): int(v) for k, v in data["tables"].items()}
            return Manifest(str(data["kind"]), tables, str(data["watermark"]))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            if isinstance(e, HandoverError):
                raise
            raise HandoverError(f"{path}: not a hand-over manifest ({type(e).__name__}: {e})") from None


def files(directory: Path, table: str) -> list[Path]:
    """The Parquet files of one table in a hand-over directory (none when it is not there)."""
    return sorted((directory / table).glob("*.parquet"))


def _count(store: Store, name: str) -> int:
    query = exp.select(exp.func("count", exp.Star())).from_(exp.to_table(name))
    return int(store.con.execute(sql(query, "duckdb")).fetchall()[0][0])


def _fresh(directory: Path) -> None:
    """An empty directory to write into; a non-empty one that is not an earlier hand-over is refused."""
    if directory.exists() and any(directory.iterdir()) and not (directory / MANIFEST).is_file():
        raise HandoverError(f"{directory}: not empty and not a hand-over directory; give an empty or new one")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)  # a half-rewritten directory must not look complete


def _write_table(store: Store, name: str, directory: Path) -> int:
    target = directory / name
    target.mkdir(exist_ok=True)
    for old in target.glob("*.parquet"):
        old.unlink()
    store.con.table(name).write_parquet(str(target / "part-0.parquet"))
    return _count(store, name)


def write_arrow(table: pa.Table, name: str, directory: Path) -> int:
    """One table of a hand-over directory written from Arrow (its files replaced); how many rows."""
    target = directory / name
    target.mkdir(exist_ok=True)
    for old in target.glob("*.parquet"):
        old.unlink()
    pq.write_table(table, target / "part-0.parquet")
    return table.num_rows


def compiled_tables(store: Store, pin: str | None = None) -> dict[str, pa.Table]:
    """The compiled rulebook tables this store's engine would load for a run (with `pin`: a replay's)."""
    engine = Engine(store)
    engine.prepare(pin)
    tables = dict(prepared(engine.ctx).tables)
    assert set(tables) == set(COMPILED), f"the engine loads {sorted(tables)}; COMPILED says {sorted(COMPILED)}"
    return tables


def export_facts(store: Store, directory: Path, pin: str | None = None) -> Manifest:
    """The facts an engine run reads and the compiled rulebooks, as Parquet under `directory`."""
    store.require_init()
    _fresh(directory)
    counts = {name: _write_table(store, name, directory) for name in FACTS}
    counts |= {name: write_arrow(t, name, directory) for name, t in compiled_tables(store, pin).items()}
    manifest = Manifest("facts", counts, watermark(store))
    manifest.write(directory)  # last: a directory with a manifest is complete
    return manifest


def _tables(store: Store) -> set[str]:
    """The names of the store's tables and views."""
    return {str(n) for (n,) in store.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def export_tables(store: Store, directory: Path, names: tuple[str, ...]) -> set[str]:
    """Those of `names` the store has, as Parquet under `directory` (no manifest: for a run of this process,
    not a hand-over to check); the names written."""
    directory.mkdir(parents=True)
    written = set(names) & _tables(store)
    for name in sorted(written):
        _write_table(store, name, directory)
    return written


def export_derived(store: Store, directory: Path) -> Manifest:
    """The derived tables of the store's last run, as Parquet (what `import_derived` reads): the DuckDB side of
    the hand-over, so a run on either engine can be carried to another store of the same facts."""
    have = _tables(store)
    missing = [n for n in DERIVED if n not in have and n not in OPTIONAL]
    if missing:
        raise HandoverError(f"{store.path}: no engine run to export (missing {', '.join(missing)}); run `score`")
    _fresh(directory)
    counts = {name: _write_table(store, name, directory) for name in DERIVED if name in have}
    manifest = Manifest("derived", counts, watermark(store))
    manifest.write(directory)
    return manifest


def check_derived(store: Store, directory: Path) -> Manifest:
    """What `import_derived` would import, checked whole: the manifest, every table's files and row count,
    and that the run was made from this store's facts as they are now. Raises HandoverError naming every
    missing table, or the first other problem."""
    manifest = Manifest.read(directory)
    if manifest.kind != "derived":
        raise HandoverError(f"{directory}: holds {manifest.kind}, not the derived tables of a run")
    missing = [n for n in DERIVED if n not in OPTIONAL and (n not in manifest.tables or not files(directory, n))]
    if missing:
        raise HandoverError(f"{directory}: not a complete derived set; missing {', '.join(missing)}")
    unknown = sorted(set(manifest.tables) - set(DERIVED))
    if unknown:
        raise HandoverError(f"{directory}: tables that are not derived tables of a run: {', '.join(unknown)}")
    for name, rows in manifest.tables.items():
        parts = files(directory, name)
        if not parts:
            raise HandoverError(f"{directory / name}: the manifest lists it, but it has no Parquet files")
        try:
            found = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
        except (OSError, pa.ArrowException) as e:
            raise HandoverError(f"{directory / name}: not readable Parquet ({e})") from None
        if found != rows:
            raise HandoverError(f"{directory / name}: {found} rows, the manifest says {rows}; the copy is incomplete")
    now = watermark(store)
    if manifest.watermark != now:
        raise HandoverError(
            f"{directory}: computed from other facts (watermark {manifest.watermark}, this store's is {now}); "
            "export the facts again and rerun"
        )
    return manifest


def import_derived(store: Store, directory: Path) -> Manifest:
    """Replace the store's derived tables with those in `directory`, all of them or none (one transaction),
    typed as `socialcredit.schema` declares them, with the ledger views over them as the engine makes them:
    afterwards every reader sees the store as after a run here."""
    store.require_init()
    manifest = check_derived(store, directory)
    declared = {t.name: t for t in schema.all_tables(store.catalog)}
    with store.transaction():
        for name in DERIVED:
            try:
                _replace(store.con, directory, name, name in manifest.tables, declared.get(name))
            except duckdb.Error as e:  # the transaction rolls back: every table stays as it was
                raise HandoverError(f"{directory / name}: cannot be imported, nothing was changed ({e})") from None
        _ledger_views(store)
        store.comment_tables()
    return manifest


def _replace(con: duckdb.DuckDBPyConnection, directory: Path, name: str, present: bool,
             declared: schema.Table | None) -> None:  # fmt: skip
    """One derived table of the store replaced by the hand-over's (inside import_derived's transaction)."""
    paths = [str(p) for p in files(directory, name)]
    source = exp.func("read_parquet", exp.Placeholder())
    columns: list[Any] = [exp.Star()]
    if declared is not None:  # another engine may type a column wider (a count as BIGINT): the store's type
        columns = [exp.cast(exp.column(c.name, quoted=True), c.type).as_(c.name, quoted=True) for c in declared.columns]
    rows = exp.select(*columns).from_(source)
    if name == "notifications":
        keep = listed()  # notifications mixes facts (denials, written by decisions) and a run's listings
        con.execute(sql(exp.delete("notifications", where=keep), "duckdb"))
        con.execute(sql(exp.insert(rows.where(keep), "notifications"), "duckdb"), [paths])
    elif not present:  # an OPTIONAL table the run did not make
        con.execute(sql(exp.Drop(this=exp.to_table(name), kind="TABLE", exists=True), "duckdb"))
    else:
        create = exp.Create(this=exp.to_table(name), kind="TABLE", replace=True, expression=rows)
        con.execute(sql(create, "duckdb"), [paths])


def _ledger_views(store: Store) -> None:
    """The stored views over the imported tables (record_ledger, ledger, ...), made by the engine's own code for
    the run's pin and the records its record_entries cover, as the run would have left them here."""
    pin = store.con.execute("SELECT pin FROM engine_run").fetchall()
    engine = Engine(store)
    engine.prepare(pin[0][0] if pin else None)
    made = built(engine.ctx)
    engine.ctx.through = made[2] if made is not None else -1
    ex = DuckDBExecutor(store.con)
    # in the runner's order: the record views, the compiled query over them, the ledger over those
    for name, query in (*record_views(-1), *compiled_views(engine.ctx), *ledger_views(engine.ctx)):
        ex.view(name, query)
