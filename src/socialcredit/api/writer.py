"""The writer of a served store: the one process that holds it read-write, and publishes snapshots of it.

It is the whole single-process service (`create_app`: every route, one lock) on a loopback socket that
only the supervisor and the readers know (`socialcredit.api.workers`), plus two duties:

- **Publishing.** After commits that changed facts (records, retractions, a scheduled rulebook, an
  upheld case) it reruns the engine where needed and publishes a snapshot (`socialcredit.snapshot`): once
  the writes have paused for `QUIET_S`, or `SETTLE_S` after the first unpublished one if they never pause;
  when only decisions and audit entries were added, at most every `LOG_PUBLISH_S`; and whenever the clock
  passes what the last snapshot can answer. Why wait for a pause: an agency sends its batches one after the
  other, and publishing after each made every batch but the first wait for an engine run over the one before
  (2.3-2.8 s a batch on the sample for records back-dated a year; 0.1-0.6 s without the run), for a snapshot
  the next batch made stale at once.

  The engine runs on a connection of its own (`Store.beside`), outside this process's lock, so writes go on
  committing while it runs; only the copy holds the lock (a checkpoint and a file copy). A run that writes made
  stale meanwhile is not published: the next poll runs again, over them too. So that a steady stream of writes
  cannot hold the snapshots back, once the first unpublished change is `SETTLE_S` old the engine catches up
  under the lock (writes then wait for that last, short run). Readers never wait: they keep answering from
  the snapshot they have until the next one is whole.
- **Group commits of what readers answered.** A reader ships the decisions it answered and the audit
  entries of its reads in batches (`POST /internal/v1/shipments`, with the supervisor's token); each
  batch is one transaction here: its audit entries join the one hash chain in arrival order, its
  decisions take the next decision IDs, and the (origin, sequence number) of the batch is stored with
  them, so a batch re-sent after a lost answer is recorded once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
from typing import Any

import pyarrow as pa
from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from socialcredit import decisions, snapshot
from socialcredit.api.processes import SHUTDOWN_GRACE_S, TOKEN_ENV, TOKEN_HEADER
from socialcredit.api.service import Service
from socialcredit.engine import computed_at, run_state
from socialcredit.store.shipments import ensure_shipments, record_shipment

PUBLISH_POLL_S = 0.2
QUIET_S = 0.4
"""Changed facts are published once no write has changed facts for this long (see the module's docstring)."""
SETTLE_S = 3.0
"""...or this long after the first change not yet published, if writes never pause that long."""
LOG_PUBLISH_S = 10.0
KEEP_ENV = "SOCIALCREDIT_SNAPSHOTS_KEEP"
log = logging.getLogger("socialcredit.writer")


class Publisher:
    """Publishes snapshots of the service's store (see the module's docstring for when)."""

    def __init__(self, svc: Service, keep: int = 3) -> None:
        self.svc = svc
        self.keep = keep
        # monotonic times of the first and the last change not yet published (None: every change is)
        self.first_change: float | None = None
        self.last_change = 0.0
        self.changes = 0  # how many writes changed facts: a run that began at another count missed some
        self.logged = False
        self.last = 0.0
        self.computed: Any = None  # the engine run (computed_at) the last snapshot holds
        self.current: snapshot.Snapshot | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="publish", daemon=True)
        svc.on_change.append(self.changed)
        svc.on_close.append(self.stop)

    def changed(self) -> None:
        """A write changed facts (called under the service's lock, as publishing is)."""
        now = time.monotonic()
        if self.first_change is None:
            self.first_change = now
        self.last_change = now
        self.changes += 1

    def publish(self) -> snapshot.Snapshot | None:
        """Run the engine where the facts or the clock need it, beside the writes, then publish under the lock;
        None when writes changed facts during the run and the first unpublished change is not yet `SETTLE_S`
        old (the next poll runs again). See the module's docstring."""
        svc = self.svc
        with svc.lock:
            changes = self.changes
        svc.fresh_beside(svc.now())
        with svc.lock:
            missed = self.changes != changes  # written during the run: the run did not see it
            if missed and self.first_change is not None and time.monotonic() - self.first_change < SETTLE_S:
                return None
            self.first_change = None
            self.logged = False
            svc.flush()
            decisions.ensure_fresh(svc.store, svc.now())  # nothing to do, unless writes came during the run
            self.computed = computed_at(svc.store)
            self.current, seconds = snapshot.publish(svc.store, self.keep)
        self.last = time.monotonic()
        log.info("published snapshot %d in %.3f s", self.current.generation, seconds)
        return self.current

    def due(self) -> bool:
        with self.svc.lock:  # writes call `changed` under it: a write this poll waited for is seen here
            if self.first_change is not None:  # published once writes pause, and only then (run_state sees them)
                now = time.monotonic()
                return now - self.last_change >= QUIET_S or now - self.first_change >= SETTLE_S
            if self.logged and time.monotonic() - self.last >= LOG_PUBLISH_S:
                return True
            # the engine ran here (a question ahead), or the clock passed what the last run answers
            last, changed, _ = run_state(self.svc.store)
            if last is None or changed or computed_at(self.svc.store) != self.computed:
                return True
            return self.svc.now() >= decisions.answers_until(self.svc.store, last)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(PUBLISH_POLL_S):
            try:
                if self.due():
                    self.publish()
            except Exception:  # a failed publish leaves the last snapshot in place; the next poll tries again
                log.exception("publishing a snapshot failed")


DECIDED = ("ckey", "service", "asked_at", "outcome", "reasons", "asked_by", "rulebook_version")  # as shipped
AUDITED = ("principal", "action", "citizen_id", "detail", "logged_at")
_DECIDED_TYPES = (pa.int32(), pa.string(), pa.timestamp("us"), pa.string(), pa.string(), pa.string(), pa.string())


class BadShipment(ValueError):
    """A shipment not in the readers' form; nothing of it is written (the reader logs the refusal)."""


def _columns(body: dict[str, Any], part: str, names: tuple[str, ...]) -> list[list[Any]]:
    cols = body[part]
    if not isinstance(cols, dict) or set(cols) != set(names):
        raise BadShipment(f"{part}: expected the columns {', '.join(names)}")
    out = [cols[n] for n in names]
    if any(not isinstance(c, list) or len(c) != len(out[0]) for c in out):
        raise BadShipment(f"{part}: every column must be a list, all of one length")
    return out


def _naive(text: Any, where: str) -> dt.datetime:
    at = dt.datetime.fromisoformat(text)
    if at.tzinfo is not None:
        raise BadShipment(f"{where}: {text!r} is not a naive UTC time")
    return at


class Shipments:
    """What readers shipped: each batch written once, in one transaction (see the module's docstring).

    The last sequence number written per origin is kept in memory (read from `shipments` the first time an
    origin is seen, so a restarted writer still knows what it wrote), not queried for every batch."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self._last: dict[str, int] = {}
        with svc.lock:  # the publisher's thread may be using the connection (DuckDB refuses a second call)
            ensure_shipments(svc.store)

    def record(self, body: dict[str, Any]) -> int:
        """Write one reader's batch; the number of decisions and entries written (0 if written already)."""
        try:
            origin, seq = str(body["origin"]), int(body["seq"])
            decided = pa.table(
                [
                    pa.array(c, pa.string()).cast(t) if t == pa.timestamp("us") else pa.array(c, t)
                    for c, t in zip(_columns(body, "decisions", DECIDED), _DECIDED_TYPES, strict=True)
                ],
                names=list(DECIDED),
            )
            learned = [(int(c), _naive(at, "learned"), str(m)) for c, at, m in body["learned"]]
            principals, actions, citizen_ids, details, ats = _columns(body, "audit", AUDITED)
            logged_at = [_naive(at, "audit: logged_at") for at in ats]
        except (KeyError, TypeError, ValueError, pa.ArrowException) as e:  # BadShipment is a ValueError
            raise BadShipment(f"a shipment not in the readers' form: {e}") from e
        svc = self.svc
        with svc.lock:
            con = svc.store.con
            if origin not in self._last:
                done = con.execute("SELECT max(seq) FROM shipments WHERE origin = ?", [origin]).fetchall()[0][0]
                self._last[origin] = -1 if done is None else int(done)
            if self._last[origin] >= seq:
                return 0
            svc.flush()  # this service's own buffered rows first, in their own commit
            try:
                with svc.store.transaction():
                    svc.audit.append_shipped(principals, actions, citizen_ids, details, logged_at)
                    svc.decider.record_elsewhere_decided(decided, learned)
                    record_shipment(svc.store, origin, seq, first=self._last[origin] < 0)
            except BaseException as e:
                svc.audit.resync()  # the chain continues from what was committed, not from these
                svc.decider.resync()
                if isinstance(e, ValueError) and not isinstance(e, BadShipment):  # an entry the trail refused
                    raise BadShipment(str(e)) from e
                raise
            self._last[origin] = seq
        return decided.num_rows + len(details)


def internal_router(svc: Service, publisher: Publisher, shipments: Shipments) -> APIRouter:
    """`/internal/v1/…`: for the service's own readers only (the supervisor's token); never proxied to."""
    router = APIRouter(include_in_schema=False)
    token = os.environ.get(TOKEN_ENV, "")

    @router.post("/internal/v1/shipments")
    async def shipped(request: Request) -> dict[str, Any]:
        if not token or request.headers.get(TOKEN_HEADER, "") != token:
            raise HTTPException(404, "Not Found")
        body = await request.json()
        try:
            n = await run_in_threadpool(shipments.record, body)
        except BadShipment as e:
            raise HTTPException(400, str(e)) from None
        publisher.logged = publisher.logged or n > 0
        return {"recorded": n}

    @router.get("/internal/v1/ready")
    async def ready(request: Request) -> dict[str, Any]:
        if not token or request.headers.get(TOKEN_HEADER, "") != token:
            raise HTTPException(404, "Not Found")
        return {"generation": publisher.current.generation if publisher.current else None}

    return router


def exit_with_supervisor(interval_s: float = 0.2) -> None:
    """Stop this process (gracefully, as SIGTERM does) when the supervisor that started it is gone.

    A supervisor killed outright (SIGKILL, the OOM killer) cannot stop its children; an orphaned writer would
    keep the store locked and an orphaned reader keep answering from an old snapshot. The kernel re-parents an
    orphan, so a change of parent is the signal (polled: portable, unlike Linux's PR_SET_PDEATHSIG)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-supervisor", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    """`python -m socialcredit.api.writer --db STORE --fd N [--as-of T]`: started by the supervisor only."""
    import uvicorn

    from socialcredit.api.app import build_app

    ap = argparse.ArgumentParser(description="the writer of a served store (started by `socialcredit serve`)")
    ap.add_argument("--db", required=True)
    ap.add_argument("--fd", type=int, required=True, help="a listening socket inherited from the supervisor")
    ap.add_argument("--as-of", default="", help="the service's fixed clock, naive UTC ISO 8601")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="writer %(process)d: %(message)s")
    exit_with_supervisor()
    svc = Service(a.db, dt.datetime.fromisoformat(a.as_of) if a.as_of else None)
    shipments = Shipments(svc)
    publisher = Publisher(svc, int(os.environ.get(KEEP_ENV, "3")))
    publisher.publish()  # readers start from this one
    publisher.start()
    app = build_app(svc)
    app.include_router(internal_router(svc, publisher, shipments))
    sock = socket.socket(fileno=a.fd)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
