"""A reader of the served store: CPU per decision request in process, against the empty endpoint's.

Usage: python benchmarks/reader.py [--requests 20000] [--rounds 5]

`benchmarks/decide.py` measures the service over HTTP against the floor of an empty FastAPI endpoint; on two
shared cores the HTTP server and the client take most of the time, and what the reader's own Python costs
per request is hard to see. This drives the same two ASGI apps in process (no server, no socket: one
request's scope, body and `send` made here): the reader's `Front` over a published snapshot of a scored
sample store (the common single decision, `{citizen_id, service}` from a service key, shipped to a writer
that is not there — its batches are taken and encoded as the ship thread would, inside the timing), and
`echo_app.py`, the floor's app. The rounds alternate, the median is shown; times are the process's CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from echo_app import app as echo
from socialcredit import snapshot
from socialcredit.api.reader import Shipper, reader_app
from socialcredit.api.service import Service
from socialcredit.engine import Engine
from socialcredit.keys import create_key
from socialcredit.sample import load_sample
from socialcredit.store import Store


def load() -> str:
    return "load " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def drive(app: Any, bodies: list[bytes], headers: list[tuple[bytes, bytes]], n: int) -> None:
    """`n` decision requests through `app`, one at a time; every answer must be a 200."""
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for i in range(n):
        body = bodies[i % len(bodies)]

        async def receive(body: bytes = body) -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/v1/decisions",
            "raw_path": b"/api/v1/decisions",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 8000),
        }
        await app(scope, receive, send)
    assert statuses == [200] * n, sorted(set(statuses))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20_000, help="per round")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "reader.duckdb"
        with Store(db) as s:
            s.init()
            load_sample(s)
            Engine(s).run()
            _, token = create_key(s, "service", "rail")
            ids = [r[0] for r in s.con.execute("SELECT citizen_id FROM citizens").fetchall()]
        svc = Service(db)
        snapshot.publish(svc.store)
        svc.close()
        shipper = Shipper("http://127.0.0.1:9", "unused")  # never started: its batches are taken here
        front, _ = reader_app(str(db), None, "http://127.0.0.1:9", shipper)
        rnd = random.Random(3)
        bodies = [json.dumps({"citizen_id": rnd.choice(ids), "service": "rail.ticket"}).encode() for _ in range(1000)]
        headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-length", str(len(bodies[0])).encode()),
        ]

        def reader_round() -> None:
            asyncio.run(drive(front, bodies, headers, a.requests))
            while (batch := shipper._next()) is not None:  # what the ship thread does with them
                json.dumps(batch).encode()

        asyncio.run(drive(front, bodies, headers, 200))  # warm: the first request goes through the app (the key)
        shipper._next()
        cpu: dict[str, list[float]] = {"reader": [], "floor": []}
        for _ in range(a.rounds):
            for key, f in (
                ("reader", reader_round),
                ("floor", lambda: asyncio.run(drive(echo, bodies, headers, a.requests))),
            ):
                t = time.process_time()
                f()
                cpu[key].append((time.process_time() - t) / a.requests * 1e6)
        reader, floor = statistics.median(cpu["reader"]), statistics.median(cpu["floor"])
        print(f"in process, {a.requests:,} decision requests a round, {a.rounds} rounds, median ({load()})")
        print(f"  reader (Front: decide, audit, ship)            {reader:6.1f} µs CPU per request")
        print(f"  floor (echo_app: FastAPI, the empty endpoint)   {floor:6.1f} µs CPU per request")
        print(f"  reader/floor: {reader / floor:.2f}")


if __name__ == "__main__":
    main()
