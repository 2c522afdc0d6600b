"""What every step reads: the compiled rulebooks, the catalog, the dimension keys and the executor.

A step is a function from this context (and the period it works on) to sqlglot expressions; the runner
hands them to `ctx.executor`. Small control results (a count, the months that are busy) come back through
`rows`/`scalar`, the only way a step's driver looks at data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from socialcredit.catalog import Catalog
from socialcredit.compiler import Compiled
from socialcredit.engine.executors import Executor, Query
from socialcredit.rulebook import Rulebook


def rows(executor: Executor, query: Query) -> list[tuple[Any, ...]]:
    """A small result as Python tuples."""
    table = executor.fetch(query)
    cols = [c.to_pylist() for c in table.columns]
    return list(zip(*cols, strict=True)) if cols else []


@dataclass
class Context:
    executor: Executor
    compiled: Compiled
    catalog: Catalog
    jkeys: dict[str, int]
    bkeys: dict[str, int]
    # what load_compiled found: the last rkey `record_entries` holds (-1: none), and whether it stored them
    through: int = -1
    stored: bool = False
    memo: dict[str, Any] = field(default_factory=dict)

    def rows(self, query: Query) -> list[tuple[Any, ...]]:
        """A small result as Python tuples."""
        return rows(self.executor, query)

    def scalar(self, query: Query) -> Any:
        """The first column of the first row (None without rows)."""
        rows = self.rows(query)
        return rows[0][0] if rows else None

    def segments_at(self, t: dt.datetime) -> dict[int, Rulebook]:
        """The rulebook in force in each city at `t`."""
        return {s.jkey: s.rulebook for s in self.compiled.segments if _holds(s.start, s.end, t)}

    def epochs_at(self, t: dt.datetime) -> dict[int, int]:
        """The epoch of each city's segment at `t` (a rulebook in force across change points is one object in
        several epochs: the time says which)."""
        return {s.jkey: s.epoch for s in self.compiled.segments if _holds(s.start, s.end, t)}


def _holds(start: dt.datetime | None, end: dt.datetime | None, t: dt.datetime) -> bool:
    return (start is None or start <= t) and (end is None or t < end)
