"""Decisions per second: in process (single and batch) and over HTTP on loopback with concurrent clients.

Usage: python benchmarks/decide.py [--citizens 200000] [--months 6] [--http-seconds 10] [--readers 2]
                                  [--no-before] [--stacks uvicorn granian hypercorn]

A synthetic population lives a few months of generated behaviour (scaled up so lists fill), the engine
runs once, then decisions are timed. The baseline, measured in the same run, is the library's
`decisions.decide`, which asks the store before each call whether facts changed (a few SQL queries); the
service's `Decider` skips that because it sees every write itself, and reads the in-memory stay index.
The HTTP part starts `socialcredit serve` (its readers beside one writer) in a subprocess and drives it
with wrk (Debian's package, one thread, keep-alive connections, each request a random citizen) at 1, 32
and 128 connections; then the floor: the same wrk script against an empty FastAPI endpoint on the same
stack (as many uvicorn workers on one socket as the service has readers). Client and servers share this
machine's two cores, and other work may share them too: every line carries the load averages.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from memory import peak_gib
from socialcredit import decisions, snapshot
from socialcredit.engine import Engine
from socialcredit.keys import create_key
from socialcredit.simulate.behaviour import BehaviourRates, generate_records
from socialcredit.simulate.population import generate_population, regions_of
from socialcredit.store import Store

out = Console(width=200)  # one line per measurement, also in a log
CITIES = {"rongcheng": 0.3, "shanghai": 0.4, "shenzhen": 0.3}
SERVICES = ["rail.ticket", "rail.high_speed"]


def build(path: Path, citizens: int, months: int) -> list[str]:
    store = Store(path)
    store.init()
    sizes = {c: int(citizens * share) for c, share in CITIES.items()}
    pop = generate_population(sizes, 11, dt.date(2025, 1, 1), regions=regions_of(store.rulebooks()))
    store.add_population(pop.citizens, pop.relations, source="decide benchmark")
    rates = BehaviourRates(scale=3.0)
    first = 0
    for m in range(months):
        month = dt.date(2025, 1 + m, 1)
        recs = generate_records(store, month, rates, first=first)
        first += recs.num_rows
        store.ingest(recs, name=f"month {m}")
    Engine(store).run(as_of=dt.datetime(2025, months + 1, 1, tzinfo=dt.UTC) - dt.timedelta(hours=9))
    ids = [r[0] for r in store.con.execute("SELECT citizen_id FROM citizens").fetchall()]
    listed = store.con.execute("SELECT count(DISTINCT ckey) FROM list_entries").fetchall()[0][0]
    out.print(f"population {len(ids):,}, records {first:,}, citizens with a list stay {listed:,}")
    store.close()
    return ids


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f} /s"


def in_process(path: Path, ids: list[str], at: dt.datetime) -> dict[str, float]:
    store = Store(path)
    rnd = random.Random(5)
    sample = [rnd.choice(ids) for _ in range(200_000)]
    res: dict[str, float] = {}
    n = 300
    t = time.perf_counter()
    for cid in sample[:n]:
        decisions.decide(store, cid, "rail.ticket", at, record=False)
    res["library decide (checks facts per call)"] = n / (time.perf_counter() - t)
    dec = decisions.Decider(store, check_facts=False, clock=lambda: at)  # as the service builds it: with a clock
    dec.decide(sample[0], "rail.ticket", at, record=False)
    n = 50_000
    t = time.perf_counter()
    for cid in sample[:n]:
        dec.decide(cid, "rail.ticket", at, record=False)
    res["Decider.decide, single"] = n / (time.perf_counter() - t)
    reqs = [(cid, SERVICES[i % 2], at) for i, cid in enumerate(sample)]
    t = time.perf_counter()
    dec.decide_many(reqs, record=False)
    res["Decider.decide_many, batch of 200,000"] = len(reqs) / (time.perf_counter() - t)
    t = time.perf_counter()
    dec.decide_many(reqs, record=True)
    res["Decider.decide_many, batch, recorded"] = len(reqs) / (time.perf_counter() - t)
    store.close()
    return res


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load() -> str:
    """The machine's load averages (1, 5, 15 min): it is shared, so every number is printed with them."""
    return "load " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


WRK_SCRIPT = """
local ids = {IDS}
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("POST", "/api/v1/decisions",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer TOKEN"},
    '{"citizen_id": "' .. id .. '", "service": "rail.ticket"}')
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d\\n", summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9)))
end
"""
CONNECTIONS = (1, 32, 128)


def wrk(base: str, script: Path, seconds: int, clients: int) -> dict[str, Any]:
    """wrk (C, one thread) with `clients` keep-alive connections; the percentiles come from its own histogram."""
    run = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    )
    m = re.search(r"^RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", run.stdout, re.M)
    if m is None:
        raise RuntimeError(f"unexpected wrk output:\n{run.stdout}\n{run.stderr}")
    n, us, status, socket_errors, p50, p99, p999 = (int(x) for x in m.groups())
    return {
        "connections": clients,
        "requests": n,
        "errors": status + socket_errors,
        "throughput": n / (us / 1e6),
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "p999_ms": p999 / 1000,
        "load": load(),
    }


def wait_up(base: str, proc: subprocess.Popen[bytes], path: str = "/openapi.json", timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server stopped (status {proc.returncode})")
        try:
            if httpx.get(base + path, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def script_for(ids: list[str], token: str) -> Path:
    rnd = random.Random(9)
    script = Path(tempfile.mkdtemp()) / "decide.lua"
    script.write_text(
        WRK_SCRIPT.replace("IDS", ", ".join(f'"{rnd.choice(ids)}"' for _ in range(5000))).replace("TOKEN", token)
    )
    return script


@contextlib.contextmanager
def served(path: Path, ids: list[str], readers: int) -> Iterator[tuple[str, str]]:
    """`socialcredit serve --readers N` in a subprocess, warmed up; yields its base URL and a service key."""
    store = Store(path)
    _, token = create_key(store, "service", "rail")
    store.close()
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "socialcredit.cli",
            "serve",
            "--db",
            str(path),
            "--port",
            str(port),
            "--readers",
            str(readers),
        ],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(base, server)
        for _ in range(8):  # untimed: the first decision of each reader loads its stay index
            httpx.post(
                base + "/api/v1/decisions",
                json={"citizen_id": ids[0], "service": "rail.ticket"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=600,
            ).raise_for_status()
        yield base, token
    finally:
        stop(server)


@contextlib.contextmanager
def echo(workers: int, stack: str = "uvicorn") -> Iterator[str]:
    """`echo_app.py` (FastAPI, an endpoint doing no work) on the same stack: `workers` uvicorn processes
    sharing one socket, as `serve` runs its readers (or another ASGI server, for `--stacks`)."""
    port = free_port()
    cmd = {
        "uvicorn": [
            sys.executable,
            "-m",
            "uvicorn",
            "echo_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *(["--workers", str(workers)] if workers > 1 else []),
        ],
        "granian": [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "echo_app:app",
        ],
        "hypercorn": [sys.executable, "-m", "hypercorn", "-b", f"127.0.0.1:{port}", "-w", str(workers), "echo_app:app"],
    }[stack]
    server = subprocess.Popen(cmd, cwd=Path(__file__).parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(base, server, "/docs", 60)
        yield base
    finally:
        stop(server)


def batch_rate(base: str, token: str, ids: list[str]) -> float:
    """Decisions per second through the batch endpoint: trains of 1,000 passengers."""
    rnd = random.Random(3)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        train = {"requests": [{"citizen_id": rnd.choice(ids), "service": "rail.ticket"} for _ in range(1000)]}
        c.post("/api/v1/decisions", json=train).raise_for_status()
        t0 = time.perf_counter()
        for _ in range(5):
            c.post("/api/v1/decisions", json=train).raise_for_status()
        return 5 * len(train["requests"]) / (time.perf_counter() - t0)


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput (its latencies with it: one real run, not a blend)."""
    return sorted(runs, key=lambda r: r["throughput"])[len(runs) // 2]


def publish_cost(path: Path) -> tuple[float, int]:
    """What publishing one snapshot costs on this store (checkpoint and copy), and the file's size."""
    store = Store(path)
    try:
        snap, seconds = snapshot.publish(store)
    finally:
        store.close()
    size = snap.path.stat().st_size
    shutil.rmtree(snapshot.snapshot_dir(path))
    return seconds, size


def row(label: str, r: dict[str, Any], floor: dict[str, Any] | None = None) -> str:
    ratio = f"  {r['throughput'] / floor['throughput']:.2f}× floor" if floor else ""
    return (
        f"  {label:<34} {r['connections']:>4} conn  {r['throughput']:>8,.0f}/s  p50 {r['p50_ms']:6.1f}  "
        f"p99 {r['p99_ms']:6.1f}  p99.9 {r['p999_ms']:6.1f} ms  errors {r['errors']}{ratio}  ({r['load']})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--citizens", type=int, default=200_000)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--http-seconds", type=int, default=10, help="per connection count")
    ap.add_argument("--readers", type=int, default=2, help="`serve --readers`, and the floor's uvicorn workers")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each (floor, service) pair; the median is shown")
    ap.add_argument(
        "--no-before",
        dest="before",
        action="store_false",
        help="skip the single-process service (--readers 0) at 32 connections",
    )
    ap.add_argument(
        "--stacks",
        nargs="*",
        default=[],
        choices=["uvicorn", "granian", "hypercorn"],
        help="also measure the floor of these ASGI servers (1 and 2 workers, 32 connections)",
    )
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "decide.duckdb"
        with out.status("building population, records and standings"):
            ids = build(path, a.citizens, a.months)
        at = dt.datetime(2025, a.months, 20, 4, tzinfo=dt.UTC)
        with out.status("in-process decisions"):
            res = in_process(path, ids, at)
        base = res["library decide (checks facts per call)"]
        out.print("[bold]in process[/bold] (rail tickets, random citizens)")
        for name, r in res.items():
            out.print(f"  {name:<42} {r:>12,.0f} decisions/s   {r / base:>8.1f}× baseline")
        target = res["Decider.decide_many, batch of 200,000"]
        out.print(f"  batch target ≥ 100,000/s: {'met' if target >= 100_000 else 'NOT met'} ({target:,.0f}/s)")
        seconds, size = publish_cost(path)
        out.print(
            f"[bold]snapshot[/bold]: publishing one (checkpoint + copy of the {size / 2**20:,.0f} MiB file) "
            f"took {seconds:.2f} s  ({load()})"
        )
        out.print(
            f"[bold]over HTTP[/bold] on 127.0.0.1 (wrk, one thread, {a.http_seconds} s a run), one decision per "
            f"request; floor = the same load on an empty FastAPI endpoint on {a.readers} uvicorn workers "
            f"sharing one socket; floor and service runs alternate, {a.repeat} each, the median shown"
        )
        pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        with (
            out.status("HTTP: the service and the floor, alternating"),
            served(path, ids, a.readers) as (service_base, token),
            echo(a.readers) as floor_base,
        ):
            script = script_for(ids, token)
            for c in CONNECTIONS:
                floors, services = [], []
                for _ in range(a.repeat):
                    floors.append(wrk(floor_base, script, a.http_seconds, c))
                    services.append(wrk(service_base, script, a.http_seconds, c))
                pairs.append((median_run(services), median_run(floors)))
                out.print(row("floor (empty endpoint)", pairs[-1][1]))
                out.print(row(f"service, {a.readers} readers + writer", pairs[-1][0], pairs[-1][1]))
            batch = batch_rate(service_base, token, ids)
            batch_load = load()
        at32 = next((r, f) for r, f in pairs if r["connections"] == 32)
        at128 = next(r for r, _ in pairs if r["connections"] == 128)
        out.print(
            f"  targets: p99 < 20 ms at 32 connections: {'met' if at32[0]['p99_ms'] < 20 else 'NOT met'} "
            f"({at32[0]['p99_ms']:.1f} ms; the floor's own p99 {at32[1]['p99_ms']:.1f} ms"
            f"{', above 20 ms itself' if at32[1]['p99_ms'] >= 20 else ''}); throughput ≥ 0.8× the floor's: "
            f"{'met' if at32[0]['throughput'] >= 0.8 * at32[1]['throughput'] else 'NOT met'} "
            f"({at32[0]['throughput'] / at32[1]['throughput']:.2f}×); at 128: no error "
            f"{'met' if at128['errors'] == 0 else 'NOT met'}, p99 < 100 ms "
            f"{'met' if at128['p99_ms'] < 100 else 'NOT met'} ({at128['p99_ms']:.1f} ms)"
        )
        out.print(f"  batch endpoint, 1,000 passengers per call: {batch:,.0f} decisions/s  ({batch_load})")
        if a.before:
            with (
                out.status("HTTP: one process, one lock (--readers 0), 32 connections"),
                served(path, ids, 0) as (one_base, token),
            ):
                one = wrk(one_base, script_for(ids, token), a.http_seconds, 32)
            out.print(row("before: one process (--readers 0)", one, at32[1]))
        for stack in a.stacks:
            for workers in (1, 2):
                with echo(workers, stack) as floor_base:
                    out.print(row(f"floor, {stack} × {workers}", wrk(floor_base, script, a.http_seconds, 32)))
        out.print(f"peak memory of the benchmark process {peak_gib():.2f} GiB")


if __name__ == "__main__":
    main()
