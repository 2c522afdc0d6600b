"""Decisions per second: in process (single and batch) and over HTTP on loopback with concurrent clients.

Usage: python benchmarks/decide.py [--citizens 200000] [--months 6] [--http-seconds 15]

A synthetic population lives a few months of generated behaviour (scaled up so lists fill), the engine
runs once, then decisions are timed. The baseline, measured in the same run, is the library's
`decisions.decide`, which asks the store before each call whether facts changed (a few SQL queries); the
service's `Decider` skips that because it sees every write itself, and reads the in-memory stay index.
The HTTP part starts `socialcredit serve` in a subprocess and drives it with wrk (Debian's package, one
thread, 32 keep-alive connections, each request a random citizen), so client and server share this
machine's two cores but the client costs little.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console

from memory import peak_gib
from socialcredit import decisions
from socialcredit.engine import Engine
from socialcredit.keys import create_key
from socialcredit.simulate.behaviour import BehaviourRates, generate_records
from socialcredit.simulate.population import generate_population, regions_of
from socialcredit.store import Store

out = Console()
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
    dec = decisions.Decider(store, check_facts=False)
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


WRK_SCRIPT = """
local ids = {IDS}
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("POST", "/api/v1/decisions",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer TOKEN"},
    '{"citizen_id": "' .. id .. '", "service": "rail.ticket"}')
end
"""


def over_http(path: Path, ids: list[str], seconds: int, clients: int = 32) -> dict[str, float]:
    """32 keep-alive connections from wrk (C, one thread), so the client costs the server little CPU."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `make bench` installs Debian's wrk package")
    store = Store(path)
    _, token = create_key(store, "service", "rail")
    store.close()
    port = free_port()
    env = {**os.environ, "SOCIALCREDIT_DB": str(path)}
    server = subprocess.Popen([sys.executable, "-m", "socialcredit.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/api/v1/register?q=zz", timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server did not start: " + (server.stderr.read().decode() if server.stderr else ""))
        headers = {"Authorization": f"Bearer {token}"}
        rnd = random.Random(9)
        # warm up, untimed: the first decision brings the engine's output up to the service's clock
        warm = httpx.post(base + "/api/v1/decisions", json={"citizen_id": ids[0], "service": "rail.ticket"},
                          headers=headers, timeout=600)
        warm.raise_for_status()
        script = Path(tempfile.mkdtemp()) / "decide.lua"
        script.write_text(WRK_SCRIPT.replace("IDS", ", ".join(f'"{rnd.choice(ids)}"' for _ in range(5000)))
                          .replace("TOKEN", token))
        res = wrk(base, script, seconds, clients)
        # one batch call: a whole train of 1,000 passengers
        with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
            train = {"requests": [{"citizen_id": rnd.choice(ids), "service": "rail.ticket"} for _ in range(1000)]}
            c.post("/api/v1/decisions", json=train)
            t0 = time.perf_counter()
            for _ in range(5):
                c.post("/api/v1/decisions", json=train)
            batch_rate = 5 * len(train["requests"]) / (time.perf_counter() - t0)
    finally:
        server.terminate()
        server.wait(10)
    return {**res, "batch_rate": batch_rate, "floor": echo_floor(script, seconds, clients)}


def wrk(base: str, script: Path, seconds: int, clients: int) -> dict[str, float]:
    run = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", str(script), base],
                         capture_output=True, text=True, check=True)
    text = run.stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if m is None:
            raise RuntimeError(f"wrk printed no {label}% latency:\n{text}")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    total = re.search(r"(\d+) requests in", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if total is None or rps is None:
        raise RuntimeError(f"unexpected wrk output:\n{text}")
    return {"requests": int(total.group(1)), "errors": int(bad.group(1)) if bad else 0,
            "throughput": float(rps.group(1)), "p50_ms": ms("50"), "p99_ms": ms("99")}


def echo_floor(script: Path, seconds: int, clients: int) -> dict[str, float]:
    """The same load against `echo_app.py`: FastAPI + uvicorn + loopback with no work behind them."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "echo_app:app", "--port", str(port),
                               "--log-level", "warning"], cwd=Path(__file__).parent,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(base + "/docs", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        return wrk(base, script, seconds, clients)
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--citizens", type=int, default=200_000)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--http-seconds", type=int, default=15)
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
        with out.status(f"HTTP: 32 connections for {a.http_seconds} s"):
            h = over_http(path, ids, a.http_seconds)
        out.print("[bold]over HTTP[/bold] on 127.0.0.1, 32 concurrent clients, one decision per request")
        out.print(f"  requests {h['requests']:,}  errors {h['errors']}  throughput {h['throughput']:,.0f}/s  "
                  f"p50 {h['p50_ms']:.1f} ms  p99 {h['p99_ms']:.1f} ms  "
                  f"(target p99 < 20 ms: {'met' if h['p99_ms'] < 20 else 'NOT met'})")
        out.print(f"  batch endpoint, 1,000 passengers per call: {h['batch_rate']:,.0f} decisions/s")
        f = h["floor"]
        out.print(f"  floor (same load, empty FastAPI endpoint): {f['throughput']:,.0f}/s  p50 {f['p50_ms']:.1f} ms  "
                  f"p99 {f['p99_ms']:.1f} ms → service at {h['throughput'] / f['throughput']:.2f}× the floor's rate")
        out.print(f"peak memory of the benchmark process {peak_gib():.2f} GiB")


if __name__ == "__main__":
    main()
