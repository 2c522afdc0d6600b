"""Published snapshots: read-only copies of a served store, for everyone but its one writer.

DuckDB lets one process hold a file read-write, and then no other process may open it at all; but many
processes may open a file read-only that no read-write process holds. So the service's writer, after a
commit that changed facts (and after rerunning the engine for them), checkpoints the store and copies the
file to a new path beside it (`STORE.snapshots/<generation>.duckdb`), then points `STORE.snapshots/current`
at it with an atomic rename. Readers (the service's reader processes, the CLI's read commands) open the
generation `current` names, read-only: each copy is whole and consistent (written under the writer's lock
after a checkpoint, so no write-ahead log goes with it), and a copy never changes once published. Older
generations are deleted after a few newer ones; a reader still holding one keeps reading it (the file lives
until its last handle closes).

Why a file copy rather than Parquet files of chosen tables: the readers' questions (decisions, standings,
explanations, the register, billboards) run the same SQL and library code on the snapshot as on the store,
so there is no second reading path to drift; and a copy of a checkpointed file is the cheapest consistent
export DuckDB offers (`benchmarks/decide.py` prints its cost next to the store's size).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from socialcredit.store import Store, StoreLocked

POINTER = "current"


@dataclass(frozen=True)
class Snapshot:
    generation: int
    path: Path
    published_at: dt.datetime  # naive UTC, from the file's modification time


def snapshot_dir(db: str | Path) -> Path:
    """Where the snapshots of store `db` go: beside it, `<name>.snapshots`."""
    p = Path(db)
    return p.with_name(p.name + ".snapshots")


def current(db: str | Path) -> Snapshot | None:
    """The generation last published for store `db`, or None (never served, or the copy is gone)."""
    d = snapshot_dir(db)
    try:
        generation = int((d / POINTER).read_text().strip())
        path = d / f"{generation}.duckdb"
        mtime = path.stat().st_mtime
    except (OSError, ValueError):
        return None
    return Snapshot(generation, path, dt.datetime.fromtimestamp(mtime, dt.UTC).replace(tzinfo=None))


def publish(store: Store, keep: int = 3) -> tuple[Snapshot, float]:
    """Copy `store` (held read-write by the caller, with no statement in flight) to the next generation and
    point `current` at it; returns the snapshot and the seconds it took. Keeps the newest `keep` copies."""
    t = time.perf_counter()
    d = snapshot_dir(store.path)
    d.mkdir(exist_ok=True)
    known = _generations(d)
    latest = current(store.path)
    generation = max([*known, latest.generation if latest else 0]) + 1
    part = d / f".{generation}.part"
    store.copy_file(part)  # checkpointed, through the store's own descriptor: see Store.copy_file
    final = d / f"{generation}.duckdb"
    os.replace(part, final)
    pointer = d / f".{POINTER}.part"
    pointer.write_text(f"{generation}\n")
    os.replace(pointer, d / POINTER)
    for old in sorted(known)[: max(0, len(known) + 1 - keep)]:
        (d / f"{old}.duckdb").unlink(missing_ok=True)
    return Snapshot(generation, final, dt.datetime.now(dt.UTC).replace(tzinfo=None)), time.perf_counter() - t


def _generations(d: Path) -> list[int]:
    return [int(p.stem) for p in d.glob("*.duckdb") if p.stem.isdigit()]


def open_snapshot(db: str | Path, held: StoreLocked) -> tuple[Store, Snapshot]:
    """The published snapshot of store `db`, which another process holds (`held`), opened read-only;
    `held` itself when nothing is published (the holder is not `socialcredit serve`)."""
    for _ in range(3):  # a generation deleted between reading `current` and opening it: read `current` again
        snap = current(db)
        if snap is None:
            raise held
        try:
            return Store(snap.path, read_only=True, views=False), snap
        except duckdb.Error:
            time.sleep(0.05)
    raise held
