"""A run directory opened for reading: its store, its calendar and what produced it.

Why a read-only connection: a report must never change the run it describes, and DuckDB enforces
that for us. The run's calendar (first month, number of months, the engine's last `as_of`) is set as
DuckDB session variables, so every query the report shows can be pasted into
`duckdb -readonly RUN_DIR/store.duckdb` after the same `SET VARIABLE` lines and give the same numbers.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import yaml

from socialcredit.catalog import default_catalog
from socialcredit.clock import CST
from socialcredit.engine.sql import cst_shift
from socialcredit.report.sql import cte, set_variable, statement
from socialcredit.rulebook import Rulebook, RulebookSet, parse_layer
from socialcredit.store import StoreLocked, connect
from socialcredit.yamlio import LocatedError

# China has no daylight saving time, so CST midnight is always 16:00 UTC the day before (the clock's CST)
CST_OFFSET_HOURS = int((CST.utcoffset(None) or dt.timedelta()).total_seconds()) // 3600

# The assessment instants of the run: the first day of each month (CST) from the first simulated month to
# the month after the last, as the naive UTC the store keeps. Every time series in the report uses it.
MONTHS_CTE = cte(
    "months",
    """SELECT i, (getvariable('first_month') + to_months(i))::DATE AS month,
              (getvariable('first_month') + to_months(i))::TIMESTAMP - INTERVAL 8 HOUR AS instant
       FROM range(0, getvariable('months') + 1) r(i)""",
)
# Month i of the run is the period (at_i, at_i+1]; the first also takes anything before the run began, as
# the simulator's own Parquet series count it.
PERIODS_CTE = cte(
    "periods",
    """SELECT i, month, CASE WHEN i = 0 THEN TIMESTAMP '-infinity' ELSE instant END AS since,
              lead(instant) OVER (ORDER BY i) AS until
       FROM months QUALIFY until IS NOT NULL""",
)


@dataclass
class Query:
    """One query the report ran: its name, its exact text and its answer (shown under the figure)."""

    name: str
    sql: str
    table: pa.Table
    inputs: dict[str, pa.Table] = field(default_factory=dict)  # tables it reads that the report registered

    @property
    def is_input(self) -> bool:
        """An input the report derived from the rulebooks (shown, not queried), rather than a query's answer."""
        return self.sql.startswith("--")

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.table.to_pylist()


@dataclass
class RunDir:
    """A simulated run (or a replay of one) and a read-only connection to its store."""

    path: Path
    con: duckdb.DuckDBPyConnection
    first_month: dt.date
    months: int
    as_of: dt.datetime
    meta: dict[str, Any] = field(default_factory=dict)
    scenario: dict[str, Any] = field(default_factory=dict)
    _rulebooks: RulebookSet | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: Path) -> RunDir:
        path = Path(path)
        db = path / "store.duckdb"
        if not db.exists() and (path / "partitions").is_dir():
            parts = sorted(p.name for p in (path / "partitions").iterdir() if (p / "store.duckdb").exists())
            raise LocatedError(
                f"{path}: a partitioned run has one store per partition; report one of them, e.g. "
                f"{path / 'partitions' / (parts[0] if parts else '<partition>')} (the run's own *.parquet "
                f"series add up all {len(parts)})"
            )
        if not db.exists():
            raise LocatedError(f"{path}: not a run directory (no store.duckdb); make one with `socialcredit simulate`")
        meta = _read_json(path / "run.json")
        scenario = _read_yaml(path / "scenario.yaml")
        try:
            con = connect(db, read_only=True)
        except StoreLocked:  # `socialcredit serve` holds it: report the snapshot it published
            from socialcredit.snapshot import current

            snap = current(db)
            if snap is None:
                raise
            con = connect(snap.path, read_only=True)
        try:
            found = con.execute("SELECT as_of FROM engine_run").fetchall()
        except duckdb.CatalogException:
            found = []
        if not found:
            con.close()
            raise LocatedError(f"{db}: the engine has not run on this store, so there is nothing to report")
        as_of = found[0][0]
        first = _first_month(meta, scenario, con)
        months = _month_count(first, as_of)
        run = cls(path, con, first, months, as_of, meta, scenario)
        run.set_variables()
        return run

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def variables(self) -> dict[str, Any]:
        """The session variables every query may read, in the order they are set."""
        return {"first_month": self.first_month, "months": self.months, "as_of": self.as_of}

    def set_variables(self, con: duckdb.DuckDBPyConnection | None = None) -> None:
        for name, value in self.variables.items():
            (con or self.con).execute(set_variable(name), [value])

    def preamble(self) -> str:
        """The `SET VARIABLE` lines that make a shown query reproducible in the DuckDB shell."""
        return "\n".join(set_variable(name, v) + ";" for name, v in self.variables.items())

    def rulebooks(self) -> RulebookSet:
        """The run's rulebook versions as stored in it (a replay's differ from the shipped ones)."""
        if self._rulebooks is None:
            rows = self.con.execute(
                "SELECT text, origin FROM rulebook_versions ORDER BY jurisdiction, version"
            ).fetchall()
            self._rulebooks = RulebookSet([parse_layer(t, o) for t, o in rows], default_catalog())
        return self._rulebooks

    def rulebook_at(self, city: str, at: dt.datetime) -> Rulebook | None:
        """The rulebook in force for `city` at a naive-UTC instant."""
        return self.rulebooks().resolve(city, (at + dt.timedelta(hours=CST_OFFSET_HOURS)).date())

    def cities(self) -> list[str]:
        return [c for (c,) in self.con.execute("SELECT DISTINCT city FROM citizens ORDER BY 1").fetchall()]

    def grade_order(self) -> list[str]:
        """Grades from best to worst across the run's cities (as the rulebooks in force at the end list them)."""
        order: list[str] = []
        for city in self.cities():
            rb = self.rulebook_at(city, self.as_of)
            for g in rb.grades if rb else []:
                if g.grade not in order:
                    order.append(g.grade)
        return order

    def has_table(self, name: str) -> bool:
        """Whether the store has a table that only some runs make (cases, contact_changes …)."""
        found = self.con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name])
        return bool(found.fetchall()[0][0])

    def query(self, name: str, sql: str, inputs: dict[str, pa.Table] | None = None) -> Query:
        """Run one shown query; `inputs` are registered under their names for it (and listed beside it)."""
        for key, table in (inputs or {}).items():
            self.con.register(key, table)
        try:
            return Query(name, sql.strip(), self.con.sql(sql).to_arrow_table(), dict(inputs or {}))
        finally:
            for key in inputs or {}:
                self.con.unregister(key)

    @property
    def title(self) -> str:
        if self.meta.get("replay_of"):
            return f"{self.meta.get('scenario', self.path.name)} replayed under {self.meta.get('rulebook')}"
        return str(self.meta.get("scenario") or self.scenario.get("name") or self.path.name)

    def period_months(self) -> list[dt.date]:
        """The first day (CST) of each simulated month, as the per-month figures label their periods."""
        d = self.first_month
        return [dt.date(d.year + (d.month - 1 + i) // 12, (d.month - 1 + i) % 12 + 1, 1) for i in range(self.months)]


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise LocatedError(f"{path}:{e.lineno}: not JSON: {e.msg}") from None
    return data if isinstance(data, dict) else {}


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _first_month(meta: dict[str, Any], scenario: dict[str, Any], con: duckdb.DuckDBPyConnection) -> dt.date:
    """The run's first month from run.json or scenario.yaml; else the month of the first record (CST)."""
    for source in (meta.get("start"), scenario.get("start")):
        if source:
            day = dt.date.fromisoformat(str(source))
            return day.replace(day=1)
    first = con.execute(statement("SELECT min(occurred_at) + $shift FROM records", shift=cst_shift())).fetchall()[0][0]
    if first is None:
        raise LocatedError("the store holds no records, so the run has no calendar to report on")
    return first.date().replace(day=1)


def _month_count(first: dt.date, as_of: dt.datetime) -> int:
    """Whole months from the first month to the engine's last run (an assessment at a month's start)."""
    local = as_of + dt.timedelta(hours=CST_OFFSET_HOURS)
    return max(1, (local.year - first.year) * 12 + local.month - first.month)


__all__ = ["CST_OFFSET_HOURS", "MONTHS_CTE", "PERIODS_CTE", "Query", "RunDir"]
