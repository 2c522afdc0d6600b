"""The state one running server shares across requests: the store, its decider, its audit trail, a lock.

Why a lock: a DuckDB connection serves one statement at a time, and FastAPI runs plain endpoints on a
thread pool. Requests therefore take turns on the store; decisions stay fast because they read the
in-memory stay index (`Decider` with `check_facts=False`), and every write through this door calls
`changed()`, which is what lets the decider skip the per-call "did facts change?" query. An engine run a
question needs is made beside the writes, with the lock let go (`question`), so writes never wait for it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from socialcredit import decisions
from socialcredit.audit import AuditTrail
from socialcredit.decisions import Decider, install
from socialcredit.engine import Engine, utc_naive
from socialcredit.keys import Principal, authenticate
from socialcredit.store import Store

FLUSH_SECONDS = 0.5
DEADLINE_S = 2.0
"""The longest a request may hold the service (the lock). Every time a request names is bounded
(`socialcredit.clock`) before the lock is taken, so the engine work a question can trigger is at most the
assessments up to a month past the clock, run once and then reused by every later question; on the
shipped sample and the demo society that is well under this deadline (the figures are in the README)."""


class Service:
    """`as_of` fixes the service's clock: a simulated world is served as it stood at the end of its run
    (its stays and scores are about then, not about the wall clock's today). None is the real present."""

    def __init__(self, db: str | Path, as_of: dt.datetime | None = None) -> None:
        self.as_of = utc_naive(as_of) if as_of is not None else None
        self.store = Store(db)
        self.store.require_init()
        self.store.ensure_on_demand("api_keys")
        self.store.ensure_on_demand("cases")
        self.lock = threading.RLock()
        self.decider = Decider(self.store, check_facts=False, buffered=True, clock=self.now)
        install(self.store, self.decider)
        self.audit = AuditTrail(self.store)
        # compile every city's rulebooks now (about a second), not in the first request that reruns the engine
        Engine(self.store).prepare()
        self.principals: dict[str, Principal] = {}
        self.on_change: list[Callable[[], None]] = []  # e.g. the writer's publisher of snapshots
        self.on_close: list[Callable[[], None]] = []  # called first when the service closes
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="flush", daemon=True)
        self._flusher.start()

    def authenticate(self, token: str) -> Principal | None:
        """Keys by token digest, cached: keys change only through the CLI, which cannot open the store
        while this server holds it, so a restart is what makes a created or revoked key count."""
        who = self.principals.get(token)
        if who is None:
            with self.lock:
                who = authenticate(self.store, token)
            if who is not None:
                self.principals[token] = who
        return who

    def now(self) -> dt.datetime:
        """The time the service answers about when a request names none (naive UTC, as the store keeps)."""
        return self.as_of if self.as_of is not None else utc_naive(None)

    def changed(self) -> None:
        """Facts changed through this door: the next decision re-reads the engine's output."""
        self.decider.invalidate()
        for listener in self.on_change:
            listener()

    @contextlib.contextmanager
    def question(self, at: dt.datetime, citizen_id: str | None = None) -> Iterator[None]:
        """The service's lock for a question about `at` (naive UTC), with the engine's output brought up to it;
        a question about a citizen unknown to the store is refused first, before any engine work.

        When that needs an engine run, the run is made beside the writes (`Store.beside`) with the lock let go:
        writes go on committing meanwhile, and only questions wait. Back under the lock, what a write added
        meanwhile is run over too (a short run, which writes wait for). Why: a question the last run cannot
        answer (a time a month past it, say) held every write behind its run."""
        with self.lock:
            if citizen_id is not None:
                self.store.ckey(citizen_id)
            if not self.decider.valid_for(at) and decisions.run_needed(self.store, at):
                if not self.store.read_only:  # a reader's snapshot runs no engine: `ensure_fresh` says so below
                    self.lock.release()
                    try:
                        self.fresh_beside(at)
                    finally:
                        self.lock.acquire()
                decisions.ensure_fresh(self.store, at)
            yield

    def fresh_beside(self, at: dt.datetime) -> None:
        """`ensure_fresh` for `at` on a connection beside the service's (`Store.beside`), without holding the lock
        but to open it: the writes the service takes meanwhile commit instead of waiting for the run."""
        with self.lock:  # a cursor is opened while no statement runs on the connection
            beside = self.store.beside()
        try:
            decisions.ensure_fresh(beside, at)
        finally:
            beside.close()

    def audit_write(self, principal: str, action: str, citizen_id: str | None = None, **detail: Any) -> None:
        """The audit entry of a write, on disk before the write is acknowledged. Reads' entries are buffered
        (a crash can lose the last half second of them); an entry for a batch an agency was told was
        accepted must not be lost with them."""
        with self.lock:
            self.audit.append(principal, action, citizen_id, **detail)
            self.flush()

    def flush(self) -> None:
        """Write buffered decisions and audit entries, so tables and pages see them."""
        with self.lock:
            if not (self.decider.has_pending or self.audit.has_pending):
                return
            with self.store.transaction():  # one commit (one WAL sync) for both tables
                self.decider.flush()
                self.audit.flush_within()

    def _flush_loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()

    def close(self) -> None:
        for listener in self.on_close:
            listener()
        self._stop.set()
        self._flusher.join()
        with self.lock:
            self.flush()
            self.store.close()
