"""Crash test: SIGKILL at random points during ingest, an engine run, API writes and audit flushes.

Each phase runs the work in a fresh subprocess (a small driver, or a real server on 127.0.0.1) and kills it
with SIGKILL after a delay drawn from a seeded `random.Random`, spread over the work's duration as measured
by an undisturbed run first (counted from the driver's "ready", so kills land in the work, not in imports).
After each kill the store must open and hold whole batches only; a re-send must end with exactly the
intended records; a rerun of the engine must equal an undisturbed run; the audit trail must verify.

The size is `max(5, round(50 * SOCIALCREDIT_SLOW_SCALE))` kills per phase (CI runs at 0.1), and each phase
also stops after `PHASE_S` seconds of wall time, once it has done five. The figures are printed for the
README's "What it withstands".
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import NATIONAL_YAML, SLOW_SCALE, citizen, city_yaml, cst, free_port, kill_group, rec, serve
from socialcredit import snapshot
from socialcredit.audit import verify
from socialcredit.engine import Engine
from socialcredit.keys import create_key
from socialcredit.sample import citizen_ids, load_sample
from socialcredit.store import Store

pytestmark = pytest.mark.slow

SCALE = SLOW_SCALE
KILLS = max(5, round(50 * SCALE))
PHASE_S = 60 + 240 * SCALE
"""Wall-time bound per phase (84 s at 0.1, 300 s at 1: a kill and its checks take 2-5 s on two shared cores);
a phase that reaches it stops early, once it has done MIN_KILLS, and its figures say how many it did."""
MIN_KILLS = min(KILLS, 5)
"""Kills every phase does whatever the time: a loaded machine (one CI run did 4 in 84 s) makes a phase
slower, never weaker."""


def another_kill(kills: int, deadline: float) -> bool:
    """Whether a phase goes on: up to KILLS, and past its deadline only until MIN_KILLS."""
    return kills < KILLS and (kills < MIN_KILLS or time.monotonic() < deadline)


SEED = 20261205
BATCHES, BATCH_ROWS = 5, 3000
AS_OF = cst(2025, 6, 1)

INGEST = """
import sys
from socialcredit.store import Store
store = Store(sys.argv[1])
print("ready", flush=True)
for path in sys.argv[2:]:
    store.ingest(path)
store.close()
"""

SCORE = """
import sys, datetime as dt
from socialcredit.engine import Engine
from socialcredit.store import Store
store = Store(sys.argv[1])
print("ready", flush=True)
Engine(store).run(as_of=dt.datetime.fromisoformat(sys.argv[2]))
store.close()
"""

APPEND = """
import sys
from socialcredit import audit
from socialcredit.audit import AuditTrail
from socialcredit.store import Store
audit.FLUSH_EVERY = int(sys.argv[3])
store = Store(sys.argv[1])
trail = AuditTrail(store)
print("ready", flush=True)
for i in range(int(sys.argv[2])):
    trail.append("crash-test", "probe", None, i=i)
store.close()
"""


# ---------------------------------------------------------------------------------------------- helpers


def _driver(code: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """Start a driver and wait for its "ready" (imports done, store open)."""
    with log.open("ab") as err:
        proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line != b"ready\n":
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise AssertionError(f"driver did not start: {log.read_text()[-2000:]}")
    return proc


def _undisturbed(code: str, *args: str, log: Path) -> float:
    """Seconds from "ready" to a clean exit."""
    proc = _driver(code, *args, log=log)
    t = time.perf_counter()
    assert proc.wait(timeout=PHASE_S) == 0, log.read_text()[-2000:]
    took = time.perf_counter() - t
    assert proc.stdout is not None
    proc.stdout.close()
    return took


def _kill_after(proc: subprocess.Popen[bytes], delay: float) -> bool:
    """SIGKILL after `delay` seconds; True when the process was still working (a kill mid-work)."""
    time.sleep(delay)
    working = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    return working


def _copy(src: Path, dst: Path) -> Path:
    for p in (dst, dst.with_name(dst.name + ".wal")):
        p.unlink(missing_ok=True)
    shutil.copyfile(src, dst)
    return dst


def _records(rng: random.Random, ids: list[str], first: int, n: int) -> list[dict[str, object]]:
    out = []
    for i in range(first, first + n):
        behaviour = rng.choice(("late_bill_payment", "volunteer_work", "smoking_on_train"))
        attrs = {
            "late_bill_payment": {"days_late": rng.randrange(1, 200)},
            "volunteer_work": {"hours": rng.randrange(1, 8)},
            "smoking_on_train": {},
        }[behaviour]
        at = cst(2021, 1, 1) + dt.timedelta(days=rng.randrange(1500), minutes=rng.randrange(1440))
        out.append(rec(f"r{i}", rng.choice(ids), behaviour, at, **attrs))
    return out


def _population(path: Path, n: int = 2000) -> list[str]:
    """An initialised store with the test rulebooks and `n` residents (born on successive days)."""
    rows = [citizen(i % 400, born=dt.date(1970, 1, 1) + dt.timedelta(days=i // 400)) for i in range(n)]
    with Store(path) as store:
        store.init(load_shipped_rulebooks=False)
        for i, text in enumerate((NATIONAL_YAML, city_yaml())):
            store.add_rulebook(text, f"layer{i}.yaml")
        store.add_citizens(rows)
    return [str(r["citizen_id"]) for r in rows]


def _batch_files(tmp: Path, ids: list[str], rng: random.Random) -> list[tuple[Path, set[tuple[str, str]]]]:
    """BATCHES JSON Lines files of BATCH_ROWS records each, with the (agency, record_id) keys each holds."""
    files = []
    for b in range(BATCHES):
        rows = _records(rng, ids, b * BATCH_ROWS, BATCH_ROWS)
        path = tmp / f"batch{b}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files.append((path, {(str(r["reported_by"]), str(r["record_id"])) for r in rows}))
    return files


def _keys(store: Store) -> list[tuple[str, str]]:
    return [(a, r) for a, r in store.con.execute("SELECT agency, record_id FROM records").fetchall()]


def _partial_batches(store: Store) -> int:
    """Stored batches whose row count differs from the count their `batches` row says was accepted, plus
    rows that name no stored batch."""
    return int(
        store.con.execute("""
        SELECT (SELECT count(*) FROM batches b
                WHERE b.accepted != (SELECT count(*) FROM records r WHERE r.batch = b.batch))
             + (SELECT count(*) FROM records WHERE batch NOT IN (SELECT batch FROM batches))""").fetchall()[0][0]
    )


def _lost_and_duplicated(keys: list[tuple[str, str]], intended: set[tuple[str, str]]) -> tuple[int, int]:
    return len(intended - set(keys)), len(keys) - len(set(keys))


def _whole(present: set[tuple[str, str]], batches: list[set[tuple[str, str]]]) -> tuple[int, int, int]:
    """How many of `batches` are (stored whole, absent whole, partly stored)."""
    stored = [len(b & present) for b in batches]
    whole = sum(1 for n, b in zip(stored, batches, strict=True) if n == len(b))
    absent = stored.count(0)
    return whole, absent, len(batches) - whole - absent


# ---------------------------------------------------------------------------------------------- ingest


def test_kill_during_ingest(tmp_path):
    rng = random.Random(SEED)
    base = tmp_path / "base.duckdb"
    files = _batch_files(tmp_path, _population(base), rng)
    intended = set().union(*(keys for _, keys in files))
    paths = [str(p) for p, _ in files]
    db, log = tmp_path / "work.duckdb", tmp_path / "driver.log"
    took = _undisturbed(INGEST, str(_copy(base, db)), *paths, log=log)

    kills = mid_work = files_whole = files_absent = partial = not_whole = lost = duplicated = 0
    deadline = time.monotonic() + PHASE_S
    while another_kill(kills, deadline):
        proc = _driver(INGEST, str(_copy(base, db)), *paths, log=log)
        mid_work += _kill_after(proc, rng.uniform(0, took))
        kills += 1
        with Store(db) as store:  # the store opens (its write-ahead log replayed)
            store.require_init()
            partial += _partial_batches(store)
            n_whole, n_absent, n_partly = _whole(set(_keys(store)), [k for _, k in files])
            files_whole, files_absent, not_whole = files_whole + n_whole, files_absent + n_absent, not_whole + n_partly
            for path in paths:  # the agency re-sends every file
                store.ingest(path)
            more_lost, more_dup = _lost_and_duplicated(_keys(store), intended)
            lost, duplicated = lost + more_lost, duplicated + more_dup
            partial += _partial_batches(store)

    print(
        f"\ncrash ingest: {kills} kills ({mid_work} mid-work, {took:.2f} s undisturbed) over {BATCHES} batches "
        f"x {BATCH_ROWS} records; after the kills files stored whole {files_whole}, absent {files_absent}, "
        f"partly {not_whole}; stored batches partial {partial}; after re-sending: records lost {lost}, "
        f"duplicated {duplicated}"
    )
    assert kills >= MIN_KILLS
    assert (partial, not_whole, lost, duplicated) == (0, 0, 0, 0)


# ---------------------------------------------------------------------------------------------- engine


def _engine_output(db: Path) -> tuple[list[Any], list[Any]]:
    """Rerun the engine as of AS_OF (a resume when a run is stored) and read its scores and list entries."""
    with Store(db) as store:
        engine = Engine(store)
        engine.run(as_of=AS_OF)
        scores = sorted(engine.scores(AS_OF).to_pylist(), key=lambda r: r["ckey"])
        entries = store.con.execute("SELECT * FROM list_entries ORDER BY ALL").fetchall()
    return scores, entries


def test_kill_during_engine_run(tmp_path):
    rng = random.Random(SEED + 1)
    base = tmp_path / "base.duckdb"
    files = _batch_files(tmp_path, _population(base), rng)
    with Store(base) as store:
        for path, _ in files:
            store.ingest(path)
        Engine(store).run(as_of=cst(2023, 1, 1))  # an earlier run: a killed run must not leave it half replaced
    reference, log = tmp_path / "reference.duckdb", tmp_path / "driver.log"
    took = _undisturbed(SCORE, str(_copy(base, reference)), AS_OF.isoformat(), log=log)
    want_scores, want_entries = _engine_output(reference)
    assert want_entries, "the reference run lists nobody: the comparison would prove little"

    db = tmp_path / "work.duckdb"
    kills = mid_work = reruns = score_mismatches = entry_mismatches = 0
    deadline = time.monotonic() + PHASE_S
    while another_kill(kills, deadline):
        proc = _driver(SCORE, str(_copy(base, db)), AS_OF.isoformat(), log=log)
        mid_work += _kill_after(proc, rng.uniform(0, took))
        kills += 1
        scores, entries = _engine_output(db)  # the store opens and a rerun completes
        reruns += 1
        score_mismatches += sum(1 for a, b in zip(scores, want_scores, strict=False) if a != b) + abs(
            len(scores) - len(want_scores)
        )
        entry_mismatches += len(set(entries) ^ set(want_entries)) + abs(len(entries) - len(want_entries))

    print(
        f"\ncrash engine run: {kills} kills ({mid_work} mid-work, {took:.2f} s undisturbed) over "
        f"{len(want_scores)} citizens and {BATCHES * BATCH_ROWS} records; reruns completed {reruns}, "
        f"score mismatches {score_mismatches}, list-entry mismatches {entry_mismatches} "
        f"(of {len(want_entries)} entries)"
    )
    assert kills >= MIN_KILLS
    assert (reruns, score_mismatches, entry_mismatches) == (kills, 0, 0)


# ---------------------------------------------------------------------------------------------- API writes

API_BATCHES, API_ROWS = 6, 200
API_AGENCY = "commercial_banks"


def _api_batches(rng: random.Random, ids: list[str], round_: int) -> list[list[dict[str, object]]]:
    out = []
    for b in range(API_BATCHES):
        rows: list[dict[str, object]] = []
        for i in range(API_ROWS):
            at = dt.datetime(2025, 1, 1) + dt.timedelta(days=rng.randrange(300), minutes=rng.randrange(1440))
            rows.append(
                {
                    "record_id": f"api-{round_}-{b}-{i}",
                    "citizen_id": rng.choice(ids),
                    "behaviour": "unpaid_debt",
                    "occurred_at": at.isoformat(timespec="minutes"),
                    "attributes": {"amount": rng.randrange(100, 50_000), "days_late": rng.randrange(1, 400)},
                }
            )
        out.append(rows)
    return out


def _send(
    url: str, token: str, batches: list[list[dict[str, object]]], acked: dict[int, int | None] | None = None
) -> None:
    """POST each batch in turn; `acked` maps the index of each batch answered 200 to the stored batch number
    it got. A dropped connection (the server killed) ends the sending when `acked` is given, else it fails."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        for i, rows in enumerate(batches):
            try:
                r = client.post("/records", json={"records": rows})
            except httpx.TransportError:
                if acked is None:
                    raise
                return
            assert r.status_code == 200, r.text
            if acked is not None:
                acked[i] = r.json()["batch"]


def _generation(db: Path) -> int:
    """The snapshot generation the served store's writer published last (0: none yet)."""
    published = snapshot.current(db)
    return published.generation if published else 0


def _keyset(batch: list[dict[str, object]]) -> set[tuple[str, str]]:
    return {(API_AGENCY, str(r["record_id"])) for r in batch}


def test_kill_server_during_api_writes(tmp_path):
    rng = random.Random(SEED + 2)
    db, log = tmp_path / "served.duckdb", tmp_path / "server.log"
    with Store(db) as store:
        store.init()
        load_sample(store)
        token = create_key(store, "agency", API_AGENCY)[1]
        before = set(_keys(store))
    ids = sorted(citizen_ids().values())
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1"

    proc = serve(db, port, log)
    sent = _api_batches(rng, ids, 0)
    first = _generation(db)
    t = time.perf_counter()
    _send(url, token, sent)
    sending = time.perf_counter() - t
    # the writer publishes once the writes pause: a round's work ends with its snapshot, and the kills are
    # spread over the sending, the pause, the engine run and the copy
    published_by = time.monotonic() + 120
    while _generation(db) == first and time.monotonic() < published_by:
        time.sleep(0.02)
    assert _generation(db) != first, "the round was never published"
    took = time.perf_counter() - t
    done: set[tuple[str, str]] = before.union(*map(_keyset, sent))  # acknowledged before this round

    kills = mid_work = publishing = whole = absent = not_whole = acked_lost = lost = duplicated = partial = 0
    verify_failures = 0
    unaudited: set[int] = set()
    acked_batches: set[int] = set()
    problems: list[str] = []
    deadline = time.monotonic() + PHASE_S
    try:
        while another_kill(kills, deadline):
            batches, acked = _api_batches(rng, ids, kills + 1), {}
            generation = _generation(db)
            sender = threading.Thread(target=_send, args=(url, token, batches, acked))
            sender.start()
            time.sleep(rng.uniform(0, took))
            mid_work += sender.is_alive()
            publishing += not sender.is_alive() and _generation(db) == generation  # sent, not yet published
            kill_group(proc)  # supervisor, writer and readers at once
            sender.join(timeout=60)
            assert not sender.is_alive()
            kills += 1
            with Store(db) as store:  # the store opens
                keys = _keys(store)
                present = set(keys)
                n_whole, n_absent, n_partly = _whole(present, [_keyset(b) for b in batches])
                whole, absent, not_whole = whole + n_whole, absent + n_absent, not_whole + n_partly
                acked_lost += sum(1 for i in acked if not _keyset(batches[i]) <= present)
                acked_batches |= {b for b in acked.values() if b is not None}
                partial += _partial_batches(store)
                lost += len(done - present)
                duplicated += len(keys) - len(present)
                v = verify(store)
                if not v.ok:
                    verify_failures += 1
                    problems += v.problems[:3]
                # accepted batches without their "records.submit" entry: only one killed between the batch's
                # commit and its entry's (a write's entry is on disk before the agency hears "accepted")
                unaudited |= {
                    b
                    for (b,) in store.con.execute(
                        """
                    SELECT batch FROM batches WHERE source = ? AND batch NOT IN (
                        SELECT CAST(json_extract(detail, '$.batch') AS INTEGER) FROM audit_log
                        WHERE action = 'records.submit' AND json_extract(detail, '$.batch') != 'null')""",
                        [f"api:agency:{API_AGENCY}"],
                    ).fetchall()
                }
            proc = serve(db, port, log)  # restarted on the same store; the agency re-sends the whole round
            _send(url, token, batches)
            done |= set().union(*map(_keyset, batches))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with Store(db) as store:
        keys = _keys(store)
        lost += len(done - set(keys))
        duplicated += len(keys) - len(set(keys))
        final = verify(store)
        partial += _partial_batches(store)
        accepted = store.con.execute(
            "SELECT count(*) FROM batches WHERE source = ?", [f"api:agency:{API_AGENCY}"]
        ).fetchall()[0][0]

    print(
        f"\ncrash API writes: {kills} server kills ({mid_work} while sending, {publishing} after it but before its "
        f"snapshot; undisturbed, {API_BATCHES} batches x {API_ROWS} records took {sending:.2f} s to send and "
        f"{took:.2f} s to publish); client batches stored whole {whole}, absent "
        f"{absent}, partly {not_whole}; acknowledged then lost {acked_lost}; stored batches partial {partial}; "
        f"after re-sending: records lost {lost}, duplicated {duplicated}; audit verify failures {verify_failures} "
        f"(final trail {final.entries} entries, ok={final.ok}); stored batches without their audit entry "
        f"{len(unaudited)} of {accepted} ({len(unaudited & acked_batches)} of them acknowledged to the agency)"
    )
    assert kills >= MIN_KILLS
    assert (not_whole, acked_lost, partial, lost, duplicated) == (0, 0, 0, 0, 0)
    assert verify_failures == 0 and final.ok, problems + final.problems
    assert unaudited & acked_batches == set()


# ---------------------------------------------------------------------------------------------- audit flushes

APPENDS, FLUSH_EVERY = 2048, 8
"""The driver lowers `audit.FLUSH_EVERY` (512) so that more of its time is spent flushing: the code path is
the server's, each kill is more likely to land inside a flush."""


def test_kill_during_audit_flushes(tmp_path):
    """The path the server takes when a burst fills the buffer: `append` flushes, outside any transaction."""
    rng = random.Random(SEED + 3)
    db, log = tmp_path / "trail.duckdb", tmp_path / "driver.log"
    _population(db, n=10)
    took = _undisturbed(APPEND, str(db), str(APPENDS), str(FLUSH_EVERY), log=log)
    kills = mid_work = verify_failures = 0
    problems: list[str] = []
    with Store(db) as store:
        stored = verify(store).entries
    deadline = time.monotonic() + PHASE_S
    while another_kill(kills, deadline):
        proc = _driver(APPEND, str(db), str(APPENDS), str(FLUSH_EVERY), log=log)
        mid_work += _kill_after(proc, rng.uniform(0, took))
        kills += 1
        with Store(db) as store:
            v = verify(store)
        stored = v.entries
        if not v.ok:
            verify_failures += 1
            problems += v.problems[:3]

    print(
        f"\ncrash audit flushes: {kills} kills ({mid_work} mid-work, {took:.2f} s for {APPENDS} appends "
        f"flushed every {FLUSH_EVERY} undisturbed); verify failures {verify_failures}; trail at the end "
        f"{stored} entries (what was still in memory at a kill is lost, as documented)"
    )
    assert kills >= MIN_KILLS
    assert verify_failures == 0, problems


KILL_AFTER_ROWS = """
import os, re, signal, sys
from socialcredit.audit import AuditTrail
from socialcredit.store import Store

class KilledAfterRows:
    '''The store's connection, but the process dies once the audit rows are in and before the head's first
    statement runs (whatever statement wrote the rows: an INSERT, or an Arrow table inserted).'''

    def __init__(self, con):
        self.con = con
        self.rows = 0

    def __getattr__(self, name):
        return getattr(self.con, name)

    def execute(self, sql, *args):
        if re.match(r"\\s*(UPDATE|DELETE FROM|INSERT INTO) meta\\b", sql):  # a statement writing the head
            self.rows = self.con.execute("SELECT count(*) FROM audit_log").fetchall()[0][0]
            if self.rows == 2:  # the second entry's row is in, its head is not
                os.kill(os.getpid(), signal.SIGKILL)
        return self.con.execute(sql, *args)

store = Store(sys.argv[1])
trail = AuditTrail(store)
trail.append("crash-test", "probe", None)
trail.flush()  # writes one entry: the first flush, with no head stored yet, is whole
trail.append("crash-test", "probe", None)
store.con = KilledAfterRows(store.con)
print("ready", flush=True)
trail.flush()
"""


def test_kill_between_the_audit_rows_and_their_head(tmp_path):
    """The worst point for a flush outside a transaction, hit on purpose: the rows' statement has returned,
    the head (`meta`) is not written yet. Written in one transaction, the rows go with the head."""
    db, log = tmp_path / "trail.duckdb", tmp_path / "driver.log"
    _population(db, n=10)
    proc = _driver(KILL_AFTER_ROWS, str(db), log=log)
    assert proc.stdout is not None
    with proc.stdout:  # closed however the test ends (a pipe left open fails a later test as unraisable)
        assert proc.wait(timeout=60) == -signal.SIGKILL, log.read_text()[-2000:]
    with Store(db) as store:
        v = verify(store)
    assert v.ok, v.problems
    assert v.entries == 1  # the second entry was not committed: lost like any entry still in memory
