"""Readers beside the one writer (`socialcredit serve`): the store stays usable while served, and the service
withstands load while a reader is killed and the writer restarted.

Real servers on 127.0.0.1 (the supervisor, its writer and two readers); counts and times are bounded. The
load test runs at a reduced size here (8 clients, 8 s) and at the issue's size (32 and 128 clients, 20 s)
behind `slow` (scaled by SOCIALCREDIT_SLOW_SCALE; at CI's 0.1 the reduced test stands for them).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
import test_api
from test_api import CHEN, IDS, ZHANG

from conftest import SLOW_SCALE, free_port, serve
from socialcredit import decisions, snapshot
from socialcredit.audit import verify
from socialcredit.engine import Engine
from socialcredit.store import Store

base = test_api.base
SCALE = SLOW_SCALE
CLI = [sys.executable, "-m", "socialcredit.cli"]


def status_of(db: Path) -> dict[str, Any]:
    """The supervisor's list of its processes (written beside the store's snapshots)."""
    return json.loads((db.with_name(db.name + ".snapshots") / "serving.json").read_text())


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_cli_reads_a_served_store_and_write_commands_point_to_the_server(base, tmp_path):
    path, _ = base
    db = tmp_path / "served.duckdb"
    shutil.copyfile(path, db)
    with Store(db) as store:
        expected = decisions.standing(store, ZHANG)
    proc = serve(db, free_port(), tmp_path / "serve.log")
    try:
        v = subprocess.run(
            [*CLI, "audit", "verify", "--db", str(db), "--json"], capture_output=True, text=True, timeout=120
        )
        assert v.returncode == 0, v.stderr
        assert json.loads(v.stdout)["ok"] is True
        assert "reading its snapshot" in v.stderr
        c = subprocess.run(
            [*CLI, "citizen", ZHANG, "--db", str(db), "--json"], capture_output=True, text=True, timeout=120
        )
        assert c.returncode == 0, c.stderr
        got = json.loads(c.stdout)
        assert (got["citizen_id"], got["score"], got["grade"]) == (ZHANG, expected.score, expected.grade)
        assert [e["list_id"] for e in got["list_entries"]] == [e["list_id"] for e in expected.list_entries]
        d = subprocess.run(
            [*CLI, "decide", ZHANG, "rail.high_speed", "--no-record", "--db", str(db), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert d.returncode == 0, d.stderr
        assert json.loads(d.stdout)["outcome"] == "deny"
        # a write: refused with the way through the server, no traceback, and the store is still held
        # (the writer copies its file for every snapshot without dropping DuckDB's lock)
        records = tmp_path / "r.jsonl"
        records.write_text(
            json.dumps(
                {
                    "record_id": "cli-1",
                    "citizen_id": CHEN,
                    "behaviour": "unpaid_debt",
                    "occurred_at": "2025-03-01T10:00",
                    "reported_by": "commercial_banks",
                    "attributes": {"amount": 100, "days_late": 40},
                }
            )
            + "\n"
        )
        w = subprocess.run([*CLI, "ingest", str(records), "--db", str(db)], capture_output=True, text=True, timeout=120)
        assert w.returncode == 2
        assert "the server owns the store" in w.stderr and "POST /api/v1/records" in w.stderr
        assert "Traceback" not in w.stderr
    finally:
        stop(proc)
    with Store(db) as store:  # the server is gone: the store opens, and the refused write left no trace
        assert store.con.execute("SELECT count(*) FROM records WHERE record_id = 'cli-1'").fetchall() == [(0,)]
        assert verify(store).ok


# ------------------------------------------------------------------------------------------ load with faults

SERVICES = ["rail.ticket", "rail.high_speed", "rail.business_class"]
PEOPLE = sorted(IDS.values())


class Load:
    """Clients mixing decisions, register searches and record batches; what each saw is kept for checking."""

    def __init__(self, url: str, tokens: dict[str, str], seconds: float) -> None:
        self.url, self.tokens = url, tokens
        self.until = time.monotonic() + seconds
        self.lock = threading.Lock()
        self.statuses: dict[int, int] = defaultdict(int)
        self.bad: list[str] = []  # a 5xx other than the retryable 503, with its body
        self.resets = 0  # connections dropped (a killed reader's): the client re-sends
        self.decided: list[tuple[int, dict[str, Any]]] = []  # (snapshot generation, answer)
        self.acked: set[str] = set()  # record IDs of batches the service accepted

    def _send(self, c: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request, re-sent (same body) after a dropped connection or a retryable 503, for up to 60 s."""
        deadline = time.monotonic() + 60
        while True:
            try:
                r = c.request(method, path, **kw)
            except httpx.TransportError:
                with self.lock:
                    self.resets += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
                continue
            with self.lock:
                self.statuses[r.status_code] += 1
                retryable = r.status_code == 503 and r.json().get("retryable") is True
            if not retryable or time.monotonic() > deadline:
                return r
            time.sleep(float(r.headers.get("retry-after", "1")) / 4)

    def ok(self, r: httpx.Response) -> bool:
        """A 200; anything else is kept (a client thread cannot fail the test itself) and ends the client."""
        if r.status_code != 200:
            with self.lock:
                self.bad.append(f"{r.status_code} {r.request.method} {r.request.url}: {r.text[:300]}")
        return r.status_code == 200

    def decide(self, seed: int) -> None:
        rnd = random.Random(seed)
        headers = {"Authorization": f"Bearer {self.tokens['service']}"}
        with httpx.Client(base_url=self.url, timeout=60, headers=headers) as c:
            while time.monotonic() < self.until:
                if rnd.random() < 0.2:
                    r = self._send(c, "GET", "/register", params={"q": rnd.choice(["Zhang", "Chen", "Li"])})
                    if not self.ok(r):
                        return
                    continue
                body = {"citizen_id": rnd.choice(PEOPLE), "service": rnd.choice(SERVICES)}
                r = self._send(c, "POST", "/decisions", json=body)
                if not self.ok(r):
                    return
                answered_by = r.headers["x-socialcredit-snapshot"]  # a generation, or "store": the writer's
                if answered_by != "store":
                    with self.lock:
                        self.decided.append((int(answered_by), r.json()))

    def submit(self, client: int) -> None:
        rnd = random.Random(1000 + client)
        headers = {"Authorization": f"Bearer {self.tokens['agency']}"}
        with httpx.Client(base_url=self.url, timeout=60, headers=headers) as c:
            n = 0
            while time.monotonic() < self.until:
                batch = [
                    {
                        "record_id": f"load-{client}-{n}-{i}",
                        "citizen_id": rnd.choice(PEOPLE),
                        "behaviour": "unpaid_debt",
                        "occurred_at": f"2025-0{1 + n % 9}-1{i % 10}T10:00",
                        "attributes": {"amount": 100 + i, "days_late": 30 + rnd.randrange(60)},
                    }
                    for i in range(20)
                ]
                r = self._send(c, "POST", "/records", json={"records": batch})
                if not self.ok(r):
                    return
                with self.lock:
                    self.acked.update(b["record_id"] for b in batch)
                n += 1
                time.sleep(0.2)


def test_a_restarted_server_answers_from_its_own_first_snapshot_not_the_last_servers(base, tmp_path):
    """A previous server's snapshots stay beside the store; a new server's readers start only once its writer has
    published its own first snapshot, so the very first answer is from it, not from the store as it was.
    (Starting the readers beside the writer, waiting for a newer generation, was tried: on two cores their start
    competes with the writer's, and a served sample answered first after 6.5-7.2 s against 6.9-7.2 s.)"""
    path, _ = base
    db = tmp_path / "served.duckdb"
    shutil.copyfile(path, db)
    with Store(db) as store:  # a snapshot as a server leaves it, then a record while no server runs
        last = snapshot.publish(store)[0].generation
        store.ingest([{"record_id": "offline-1", "citizen_id": ZHANG, "behaviour": "court_defaulter_listing",
                       "occurred_at": "2026-08-01T10:00", "reported_by": "local_peoples_court",
                       "attributes": {"ground": 1, "term_days": 0}}])  # fmt: skip
    answered: list[httpx.Response] = []
    proc = serve(db, free_port(), tmp_path / "serve.log", ready="/api/v1/register?q=Zhang", answered=answered)
    stop(proc)
    assert int(answered[0].headers["x-socialcredit-snapshot"]) > last


def test_the_writer_and_readers_stop_when_their_supervisor_is_killed(base, tmp_path):
    """A supervisor killed outright cannot stop its children: they notice it is gone and stop themselves, so
    no orphaned writer keeps the store locked (and no reader answers from an old snapshot)."""
    path, _ = base
    db = tmp_path / "orphaned.duckdb"
    shutil.copyfile(path, db)
    port = free_port()
    proc = serve(db, port, tmp_path / "serve.log", ready="/api/v1/register?q=Zhang")
    children = [status_of(db)["writer"], *status_of(db)["readers"]]
    os.kill(proc.pid, signal.SIGKILL)  # the supervisor only, as the OOM killer would
    proc.wait()
    deadline = time.monotonic() + 30
    alive = children
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [
            pid
            for pid in alive
            if Path(f"/proc/{pid}").exists()
            and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        ]
    assert alive == [], "children outlived their supervisor"
    with Store(db) as store:  # no one holds it any more
        assert store.con.execute("SELECT count(*) FROM citizens").fetchall()[0][0] > 0


def fresh_answers(snapshot: Path, asked: list[dict[str, Any]], tmp: Path) -> list[dict[str, Any]]:
    """What a fresh engine run over the snapshot's facts (as of the snapshot's run) decides for `asked`."""
    fresh = tmp / f"fresh-{snapshot.stem}.duckdb"
    with Store(fresh) as store:
        store.init(load_shipped_rulebooks=False)
        store.con.execute("ATTACH ? AS snap (READ_ONLY)", [str(snapshot)])
        for table in (
            "jurisdictions",
            "behaviours",
            "citizens",
            "relation_changes",
            "records",
            "retractions",
            "batches",
            "rulebook_versions",
            "citizen_profiles",
        ):
            store.con.execute(f"DELETE FROM {table}")
            store.con.execute(f"INSERT INTO {table} SELECT * FROM snap.{table}")
        as_of = store.con.execute("SELECT as_of FROM snap.engine_run").fetchall()[0][0]
        store.con.execute("DETACH snap")
        Engine(store).run(as_of=as_of)
        got = decisions.decide_many(
            store, [(a["citizen_id"], a["service"], dt.datetime.fromisoformat(a["at"])) for a in asked], record=False
        )
        # the fresh side names each time explicitly, so its `clock` says "asked" where the service said whose
        # clock it used; the answers themselves must agree
        return [
            {k: v for k, v in decisions.jsonable(d.to_json()).items() if k != "reasons"} | {"clock": a["clock"]}
            for d, a in zip(got, asked, strict=True)
        ]


def run_load(base, tmp_path, monkeypatch, clients: int, seconds: float) -> None:
    path, tokens = base
    db = tmp_path / "load.duckdb"
    shutil.copyfile(path, db)
    monkeypatch.setenv("SOCIALCREDIT_SNAPSHOTS_KEEP", "100000")  # every generation stays, to be checked after
    port = free_port()
    proc = serve(db, port, tmp_path / "serve.log", ready="/api/v1/register?q=Zhang")
    url = f"http://127.0.0.1:{port}/api/v1"
    load = Load(url, tokens, seconds)
    try:
        agencies = max(1, clients // 16)
        threads = [threading.Thread(target=load.decide, args=(i,)) for i in range(clients - agencies)]
        threads += [threading.Thread(target=load.submit, args=(i,)) for i in range(agencies)]
        for t in threads:
            t.start()
        first = status_of(db)
        time.sleep(seconds * 0.3)
        os.kill(first["readers"][0], signal.SIGKILL)  # one reader killed outright
        time.sleep(seconds * 0.2)
        os.kill(first["writer"], signal.SIGKILL)  # the writer killed: the supervisor restarts it
        for t in threads:
            t.join(timeout=seconds + 120)
        assert not any(t.is_alive() for t in threads), "a client is still waiting"
        after = status_of(db)
        assert after["writer"] != first["writer"] and first["readers"][0] not in after["readers"]
        assert proc.poll() is None
    finally:
        stop(proc)
    print(
        f"\n{clients} clients, {seconds:.0f} s: {dict(load.statuses)}; {load.resets} dropped connections "
        f"re-sent; {len(load.decided)} decisions over {len({g for g, _ in load.decided})} snapshots; "
        f"{len(load.acked)} records acknowledged"
    )
    assert load.bad == []  # every answer a 200 in the end: no 5xx but the retryable 503, nothing refused
    assert set(load.statuses) <= {200, 503}
    assert load.decided and load.acked
    with Store(db) as store:
        assert verify(store).ok
        stored = store.con.execute(
            "SELECT count(*), count(DISTINCT record_id) FROM records WHERE record_id LIKE 'load-%'"
        ).fetchall()[0]
        ids = {
            r for (r,) in store.con.execute("SELECT record_id FROM records WHERE record_id LIKE 'load-%'").fetchall()
        }
    assert stored[0] == stored[1], "a record stored twice"
    assert load.acked <= ids, f"{len(load.acked - ids)} acknowledged records lost"
    # every decision equals a fresh engine run's over the facts of the snapshot that answered it
    by_generation: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for generation, answer in load.decided:
        by_generation[generation].append(answer)
    generations = sorted(by_generation)
    checked = {generations[0], generations[-1]}  # the first and the last (an engine run from scratch each)
    for generation in sorted(checked):
        asked = by_generation[generation][:2000]
        snap = db.with_name(db.name + ".snapshots") / f"{generation}.duckdb"
        assert fresh_answers(snap, asked, tmp_path) == asked, f"snapshot {generation}"


REDUCED = (8, 8.0)  # clients, seconds


def test_load_with_a_reader_killed_and_the_writer_restarted(base, tmp_path, monkeypatch):
    run_load(base, tmp_path, monkeypatch, *REDUCED)


@pytest.mark.slow
@pytest.mark.parametrize("clients", [32, 128])
def test_load_with_faults_at_full_size(base, tmp_path, monkeypatch, clients):
    if clients * SCALE < 2 * REDUCED[0]:
        pytest.skip("at this SOCIALCREDIT_SLOW_SCALE the reduced test above stands for it")
    run_load(base, tmp_path, monkeypatch, int(clients * SCALE), max(REDUCED[1], 20 * SCALE))
