"""Executors: what runs the engine's compiled steps.

The engine's steps are sqlglot expressions, never dialect text (SPEC §4: one compiled form, several
executors). An executor is the one place that turns them into a dialect and runs them: DuckDB embedded
in the store (the default), or Apache Spark over the store's facts as Parquet. Every step the engine
runs goes through this small protocol, so a differential test can run the same steps on both and compare
the derived tables row for row, and `portable` can refuse a step that sqlglot cannot generate for
every dialect we execute.
"""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa
from sqlglot import exp
from sqlglot.errors import ErrorLevel

DIALECTS = ("duckdb", "spark")


class Executor(Protocol):
    """Runs sqlglot expressions against named tables; nothing else about the engine leaks in."""

    dialect: str

    def materialize(self, name: str, query: exp.Expression) -> None:
        """`name` becomes the result of `query`, computed now (replacing any table of that name)."""

    def view(self, name: str, query: exp.Expression) -> None:
        """`name` becomes `query`, evaluated lazily each time it is read."""

    def load(self, name: str, table: pa.Table) -> None:
        """`name` becomes a copy of an Arrow table (compiled rulebook tables, periods)."""

    def fetch(self, query: exp.Expression) -> pa.Table:
        """The rows of `query`, as Arrow (small control results and the derived tables brought home)."""

    def drop(self, name: str) -> None:
        """Forget `name` if it exists."""


def sql(expression: exp.Expression, dialect: str) -> str:
    """The expression in `dialect`, refusing anything sqlglot can only approximate there."""
    return expression.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE)


def portable(expression: exp.Expression) -> dict[str, str]:
    """The expression in every executed dialect; raises `sqlglot.errors.UnsupportedError` when one cannot say it."""
    return {d: sql(expression, d) for d in DIALECTS}
