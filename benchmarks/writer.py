"""The served store's writer: CPU per shipped decision (the decision's row and its audit entry), before and after.

Usage: python benchmarks/writer.py [--batch 700] [--rounds 30]

A reader of `socialcredit serve` answers decisions from a snapshot and ships them to the writer in batches
(`socialcredit.api.reader.Shipper`, every 0.2 s: about 700 a batch per reader at the README's 7,000
decisions/s over two readers); the writer records each batch in one transaction: the decisions' rows, and
their audit entries chained onto the one hash chain. This measures that writer step in process, on copies of
one scored sample store, with batches made by the real reader code (`ReaderService`, `routes.decide_requests`):

- **before**: the writer as it was (kept here as the baseline): rows shipped as lists, every audit detail
  parsed and dumped again and appended one entry at a time, the rows transposed into Arrow, a registered
  view per insert, the shipment's mark re-read and rewritten with four statements;
- **after**: `socialcredit.api.writer.Shipments.record` (columns shipped as they are inserted, the reader's
  detail text hashed as it came, one pass over the entries for the chain, one insert per table);
- **floor**: the same rows, already Arrow tables with their hashes, inserted in one transaction: what DuckDB
  costs with no Python per row.

Each variant writes to its own copy of the store; the rounds alternate (before, after, floor), so a busy
machine slows all three alike. Times are the process's CPU time (DuckDB's threads included), which a
shared machine distorts less than wall time; the median round is shown, and the ratios are within this run.
The before and after copies end with the same audit trail, hash for hash, and the same decisions (checked).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from socialcredit import snapshot
from socialcredit.api import routes
from socialcredit.api.reader import ReaderService, Shipper
from socialcredit.api.service import Service
from socialcredit.api.writer import AUDITED, DECIDED, Shipments
from socialcredit.audit import COLUMNS, verify
from socialcredit.engine import Engine
from socialcredit.keys import create_key
from socialcredit.sample import load_sample
from socialcredit.store import Store


def load() -> str:
    return "load " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def batches(base: Path, token: str, n: int, size: int) -> list[dict[str, Any]]:
    """`n` shipments of `size` decisions (each with its audit entry), made as a reader of the store makes them."""
    work = base.with_name("reader.duckdb")
    shutil.copyfile(base, work)
    svc = Service(work)
    snap, _ = snapshot.publish(svc.store)
    svc.close()
    with Store(snap.path, read_only=True) as s:
        ids = [r[0] for r in s.con.execute("SELECT citizen_id FROM citizens").fetchall()]
    shipper = Shipper("http://127.0.0.1:9", "unused")  # never started: its batches are taken here
    reader = ReaderService(snap, None, shipper)
    who = reader.authenticate(token)
    assert who is not None
    rnd = random.Random(7)
    out = []
    for _ in range(n):
        for _ in range(size):
            routes.decide_requests([(rnd.choice(ids), "rail.ticket", None)], who, reader)
        body = shipper._next()
        assert body is not None
        out.append(body)
    reader.close()
    return out


def as_rows(body: dict[str, Any]) -> dict[str, Any]:
    """The same shipment in the old wire form: a list per decision and per entry."""
    d, a = body["decisions"], body["audit"]
    return {
        "origin": body["origin"],
        "seq": body["seq"],
        "learned": body["learned"],
        "decisions": [list(r) for r in zip(*(d[c] for c in DECIDED), strict=True)],
        "audit": [list(r) for r in zip(*(a[c] for c in AUDITED), strict=True)],
    }


# ------------------------------------------------------------------------------------- before (the baseline)


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def before_record(svc: Service, body: dict[str, Any]) -> int:
    """The writer's `record_shipment`, `AuditTrail.append`/`_write` and `Decider.record_elsewhere_decided`/
    `flush` as they were before this benchmark was written (one function here, same statements)."""
    origin, seq = str(body["origin"]), int(body["seq"])
    rows = [(int(c), str(s), _time(at), str(o), str(r), str(by), v) for c, s, at, o, r, by, v in body["decisions"]]
    entries = [(str(p), str(a), c, json.loads(d), _time(at)) for p, a, c, d, at in body["audit"]]
    trail, dec = svc.audit, svc.decider
    with svc.lock:
        con = svc.store.con
        done = con.execute("SELECT max(seq) FROM shipments WHERE origin = ?", [origin]).fetchall()[0][0]
        if done is not None and done >= seq:
            return 0
        svc.flush()
        with svc.store.transaction():
            for principal, action, citizen_id, detail, at in entries:  # AuditTrail.append, defer=True
                with trail._lock:
                    text = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str) if detail else "{}"
                    trail._seq += 1
                    h = _entry_hash(trail._seq, at, principal, action, citizen_id, text, trail._head)
                    trail._pending.append((trail._seq, at, principal, action, citizen_id, text, trail._head, h))
                    trail._head = h
                    if len(trail._pending) == 1:
                        trail._oldest = time.monotonic()
            if dec._next_id is None:  # Decider.record_elsewhere_decided
                dec._next_id = con.execute("SELECT coalesce(max(decision_id), 0) + 1 FROM decisions").fetchall()[0][0]
            first = dec._next_id
            dec._next_id = first + len(rows)
            pending = [(first + i, *r) for i, r in enumerate(rows)]
            cols = list(zip(*pending, strict=True))  # Decider.flush
            table = pa.table(
                {
                    "decision_id": pa.array(cols[0], pa.int64()),
                    "ckey": pa.array(cols[1], pa.int32()),
                    "service": pa.array(cols[2], pa.string()),
                    "asked_at": pa.array(cols[3], pa.timestamp("us")),
                    "outcome": pa.array(cols[4], pa.string()),
                    "reasons": pa.array(cols[5], pa.string()),
                    "asked_by": pa.array(cols[6], pa.string()),
                    "rulebook_version": pa.array(cols[7], pa.string()),
                }
            )
            con.register("_decided", table)
            try:
                con.execute("INSERT INTO decisions SELECT * FROM _decided")
            finally:
                con.unregister("_decided")
            with trail._lock:  # AuditTrail.flush_within / _write
                audit = pa.table({c: [r[i] for r in trail._pending] for i, c in enumerate(COLUMNS)})
                con.register("_audit_rows", audit)
                try:
                    con.execute("INSERT INTO audit_log SELECT * FROM _audit_rows")
                finally:
                    con.unregister("_audit_rows")
                con.execute("DELETE FROM meta WHERE key IN ('audit_count', 'audit_head')")
                con.execute(
                    "INSERT INTO meta VALUES ('audit_count', ?), ('audit_head', ?)", [str(trail._seq), trail._head]
                )
                trail._pending.clear()
            con.execute("DELETE FROM shipments WHERE origin = ?", [origin])
            con.execute("INSERT INTO shipments VALUES (?, ?)", [origin, seq])
    return len(rows) + len(entries)


def _entry_hash(
    seq: int, at: dt.datetime, principal: str, action: str, citizen_id: str | None, detail: str, prev: str
) -> str:
    import hashlib

    body = "\x1f".join((str(seq), at.isoformat(), principal, action, citizen_id or "", detail, prev))
    return hashlib.sha256(body.encode()).hexdigest()


# ------------------------------------------------------------------------------------------------ the floor


def floor_tables(store: Path, bodies: list[dict[str, Any]]) -> list[tuple[pa.Table, pa.Table]]:
    """Each shipment's rows as ready Arrow tables: the decisions' and the audit entries' (hashes included),
    read back from a store the after path wrote."""
    out = []
    with Store(store, read_only=True) as s:
        d0 = a0 = 0
        for body in bodies:
            n = len(body["decisions"]["ckey"])
            m = len(body["audit"]["principal"])
            d = s.con.sql(
                "SELECT * FROM decisions ORDER BY decision_id LIMIT $n OFFSET $o", params={"n": n, "o": d0}
            ).to_arrow_table()
            a = s.con.sql(
                "SELECT * FROM audit_log ORDER BY seq LIMIT $n OFFSET $o", params={"n": m, "o": a0}
            ).to_arrow_table()
            d0, a0 = d0 + n, a0 + m
            out.append((d, a))
    return out


def floor_record(store: Store, tables: tuple[pa.Table, pa.Table]) -> int:
    d, a = tables
    with store.transaction():
        store.con.from_arrow(d).insert_into("decisions")
        store.con.from_arrow(a).insert_into("audit_log")
    return d.num_rows + a.num_rows


# ------------------------------------------------------------------------------------------------------ run


def timed(f: Callable[[], int]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    f()
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=700, help="decisions per shipment")
    ap.add_argument("--rounds", type=int, default=30, help="shipments written by each variant")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.duckdb"
        with Store(base) as s:
            s.init()
            load_sample(s)
            Engine(s).run()
            s.ensure_on_demand("shipments")
            _, token = create_key(s, "service", "rail")
        bodies = batches(base, token, a.rounds, a.batch)
        wire_after = [json.dumps(b).encode() for b in bodies]  # what the writer's request.json() parses
        wire_before = [json.dumps(as_rows(b)).encode() for b in bodies]
        paths = {k: Path(tmp) / f"{k}.duckdb" for k in ("before", "after", "floor")}
        for p in paths.values():
            shutil.copyfile(base, p)
        before_svc, after_svc = Service(paths["before"]), Service(paths["after"])
        shipments = Shipments(after_svc)
        cpu: dict[str, list[float]] = {k: [] for k in paths}
        wall: dict[str, list[float]] = {k: [] for k in paths}
        for i in range(a.rounds):
            for key, f in (
                ("before", lambda i=i: before_record(before_svc, json.loads(wire_before[i]))),
                ("after", lambda i=i: shipments.record(json.loads(wire_after[i]))),
            ):
                c, w = timed(f)
                cpu[key].append(c)
                wall[key].append(w)
        after_svc.close()
        before_svc.close()
        with Store(paths["before"], read_only=True) as b, Store(paths["after"], read_only=True) as f:
            for q in ("SELECT * FROM audit_log ORDER BY seq", "SELECT * FROM decisions ORDER BY decision_id"):
                assert b.con.execute(q).fetchall() == f.con.execute(q).fetchall(), f"before and after differ: {q}"
            assert verify(f).ok, "the after path's trail does not verify"
        ready = floor_tables(paths["after"], bodies)
        with Store(paths["floor"]) as fs:
            fs.ensure_on_demand("audit_log")
            for i in range(a.rounds):
                c, w = timed(lambda i=i: floor_record(fs, ready[i]))
                cpu["floor"].append(c)
                wall["floor"].append(w)
        per = {k: statistics.median(v) / a.batch * 1e6 for k, v in cpu.items()}
        per_wall = {k: statistics.median(v) / a.batch * 1e6 for k, v in wall.items()}
        print(
            f"writer, per shipped decision (its row and its audit entry), {a.rounds} shipments of {a.batch}, "
            f"median round, CPU time ({load()})"
        )
        for k, label in (
            ("before", "before (the old path, kept here)"),
            ("after", "after (Shipments.record)"),
            ("floor", "floor (ready Arrow tables, one transaction)"),
        ):
            print(
                f"  {label:<46} {per[k]:7.1f} µs CPU  {per_wall[k]:7.1f} µs wall  "
                f"{per[k] / per['before']:5.2f}× before  {per[k] / per['floor']:5.2f}× floor"
            )
        print(
            f"  after/before: {per['after'] / per['before']:.2f} (CPU), {per_wall['after'] / per_wall['before']:.2f} "
            "(wall); before and after wrote the same trail and decisions; the trail verifies"
        )


if __name__ == "__main__":
    main()
