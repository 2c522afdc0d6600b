"""The state one running server shares across requests: the store, its decider, its audit trail, a lock.

Why a lock: a DuckDB connection serves one statement at a time, and FastAPI runs plain endpoints on a
thread pool. Requests therefore take turns on the store; decisions stay fast because they read the
in-memory stay index (`Decider` with `check_facts=False`), and every write through this door calls
`changed()`, which is what lets the decider skip the per-call "did facts change?" query.
"""

from __future__ import annotations

import threading
from pathlib import Path

from socialcredit.audit import AuditTrail
from socialcredit.decisions import Decider
from socialcredit.keys import KEYS_DDL
from socialcredit.objections import CASES_DDL
from socialcredit.store import Store


class Service:
    def __init__(self, db: str | Path) -> None:
        self.store = Store(db)
        self.store.require_init()
        self.store.con.execute(KEYS_DDL)
        self.store.con.execute(CASES_DDL)
        self.lock = threading.RLock()
        self.decider = Decider(self.store, check_facts=False)
        self.audit = AuditTrail(self.store)

    def changed(self) -> None:
        """Facts changed through this door: the next decision re-reads the engine's output."""
        self.decider.invalidate()

    def close(self) -> None:
        with self.lock:
            self.audit.flush()
            self.store.close()
