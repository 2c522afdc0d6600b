"""The engine: compiled steps from records to ledger, scores, grades, list entries and measures.

Each module is one step along the run (see `runner.py` for the order); every statement is a sqlglot
expression executed through `socialcredit.engine.executors`. The public names stay here.
"""

from socialcredit.clock import month_start_utc, next_month_utc, utc_naive
from socialcredit.engine.entries import LedgerUpdate
from socialcredit.engine.runner import STEPS, Engine, Progress, RunSummary
from socialcredit.engine.runstate import computed_at, next_record_after, run_state, store_clock, watermark

__all__ = [
    "STEPS",
    "Engine",
    "LedgerUpdate",
    "Progress",
    "RunSummary",
    "computed_at",
    "month_start_utc",
    "next_month_utc",
    "next_record_after",
    "run_state",
    "store_clock",
    "utc_naive",
    "watermark",
]
