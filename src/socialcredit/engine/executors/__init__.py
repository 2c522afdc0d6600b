"""Executors: what runs the engine's compiled steps.

The engine's steps are sqlglot expressions, never dialect text (SPEC §4: one compiled form, several
executors). An executor is the one place that turns them into a dialect and runs them: DuckDB embedded
in the store (the default), or Apache Spark over the store's facts as Parquet. Every step the engine
runs goes through this small protocol, so a differential test can run the same steps on both and compare
the derived tables row for row, and `portable` can refuse a step that sqlglot cannot generate for
every dialect we execute.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import ParamSpec, Protocol, TypeVar

import pyarrow as pa
from sqlglot import exp
from sqlglot.errors import ErrorLevel

DIALECTS = ("duckdb", "spark")
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Step:
    """A statement whose tree follows from its arguments alone (times, month numbers, flags: hashable).

    Why: the month loop's statements are the same each time a month is assessed again (a resumed run redoes
    the last month or two; the simulator runs the engine every month; a test's full runs redo them all),
    and on a small store turning a tree into text cost about as much as DuckDB running it. An executor keeps
    a Step's text by (dialect, what it does with it, the step), so a month seen before costs no sqlglot at
    all; the tree is built only when the text is not kept. Only a function that reads nothing but its
    arguments (module templates, no context, no rulebooks) may be a Step's `build`."""

    build: Callable[..., exp.Expression]
    args: tuple[Hashable, ...] = ()

    def tree(self) -> exp.Expression:
        return self.build(*self.args)


def step(build: Callable[..., exp.Expression], *args: Hashable) -> Step:
    """`build(*args)` as a Step (`Step`)."""
    return Step(build, args)


Query = exp.Expression | Step
"""What an executor is handed: a tree made for this statement, or a Step."""


def tree(query: Query) -> exp.Expression:
    """The query's tree (a Step's built now)."""
    return query.tree() if isinstance(query, Step) else query


class Texts:
    """Statement texts by key, the most recently used `size` kept (one per process, all executors)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._texts: OrderedDict[Hashable, str] = OrderedDict()
        self._lock = threading.Lock()

    def text(self, query: Query, key: Hashable, make: Callable[[exp.Expression], str]) -> str:
        """`make(tree)`, kept under `key` when the query is a Step (a plain tree is made for one statement)."""
        if not isinstance(query, Step):
            return make(query)
        # the arguments' types too: True == 1 == 1.0 in Python, but they are three different literals in SQL
        full = (key, query, tuple(type(a) for a in query.args))
        with self._lock:
            text = self._texts.get(full)
            if text is not None:
                self._texts.move_to_end(full)
                return text
        text = make(query.tree())
        with self._lock:
            self._texts[full] = text
            while len(self._texts) > self.size:
                self._texts.popitem(last=False)
        return text


TEXTS = Texts()


class Executor(Protocol):
    """Runs sqlglot expressions against named tables; nothing else about the engine leaks in."""

    dialect: str

    def materialize(self, name: str, query: Query, temporary: bool = False) -> None:
        """`name` becomes the result of `query`, computed now (replacing any table of that name; `query` may
        read the table it replaces). `temporary`: a working table of one run, never written to the store
        (an extension of the first protocol: the engine's month loop rewrites a few such tables each month)."""

    def view(self, name: str, query: Query, temporary: bool = False) -> None:
        """`name` becomes `query`, evaluated lazily each time it is read (`temporary`: for this run only)."""

    def load(self, name: str, table: pa.Table, temporary: bool = False) -> None:
        """`name` becomes a copy of an Arrow table (compiled rulebook tables, periods)."""

    def append(self, name: str, query: Query) -> int:
        """The rows of `query` added to the existing table `name` (same columns, in order); how many.

        An extension of the first protocol: the record ledger is append-only (`record_entries` grows by the
        records appended since the last run, SPEC §4), and rewriting millions of stored rows to add a
        thousand would cost what the incremental run saves; the month loop appends each month's changes.
        """

    def extend(self, name: str, query: Query) -> None:
        """As `append`, for a caller that does not ask how many: an executor that must run a job to count
        (Spark) may add the rows lazily, computed when the table is next read (the month loop's three appends
        a month: a job each on Spark, for a number nobody reads)."""

    def delete(self, name: str, condition: Query) -> None:
        """The rows of the table `name` for which `condition` holds removed (those it is NULL for kept, as in
        SQL's DELETE). An extension of the first protocol: the month loop's pending expiries lose each month
        those it spent and keep the rest where they are; rewriting them would copy every record entry still
        in force, every month (an executor without deletes may rewrite: Spark does)."""

    def update(self, name: str, key: str, query: Query) -> None:
        """The rows of the table `name` whose `key` equals that of a row of `query` take that row's other
        columns (by name); the other rows and columns are kept. `query` gives each key at most once and may
        read `name`. An extension of the first protocol: a month changes the state of the citizens who moved,
        and rewriting every citizen's row for it twice a month was the loop's largest write (at 1M citizens
        after a year, the two rewrites and the restore 0.145 s a month, the two updates and the restore
        0.12 s; an executor without updates may rewrite: Spark does)."""

    def fetch(self, query: Query) -> pa.Table:
        """The rows of `query`, as Arrow (small control results and the derived tables brought home)."""

    def drop(self, name: str) -> None:
        """Forget `name` if it exists."""

    def keep(self, name: str) -> None:
        """The view `name` will read the same rows for the rest of the run: an executor that plans a view
        anew at every statement reading it (Spark) may compute it once now; one that does not, ignores this."""

    def release(self) -> None:
        """Put back whatever the executor changed in a connection it was given, for the connection's other
        users (the engine calls it at the end of each of its calls; the executor may change it again at its
        next statement)."""


def releasing(method: Callable[P, R]) -> Callable[P, R]:
    """An engine method that releases its executor when it returns or raises (`Executor.release`)."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        finally:
            args[0].executor.release()  # type: ignore[attr-defined]

    return call


def updated_columns(name: str, key: str, query: exp.Expression) -> list[str]:
    """The columns an update of `name` sets (`Executor.update`): every one `query` names but its `key`, which it
    must name too."""
    named = query.named_selects if isinstance(query, exp.Query) else []
    columns = [c for c in named if c != key]
    if key not in named or not columns:
        raise ValueError(f"an update of {name} needs its key {key!r} and another column; the query names {named}")
    return columns


def sql(expression: exp.Expression, dialect: str, copy: bool = True) -> str:
    """The expression in `dialect`, refusing anything sqlglot can only approximate there.

    `copy=False` for a tree made for this one statement (the engine's steps build a fresh tree each time):
    sqlglot's generator may rewrite the tree it is given, so it copies it by default, and copying costs
    as much as generating."""
    return expression.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE, copy=copy)


def portable(expression: exp.Expression) -> dict[str, str]:
    """The expression in every executed dialect; raises `sqlglot.errors.UnsupportedError` when one cannot say it."""
    return {d: sql(expression, d) for d in DIALECTS}


def spark_missing() -> str | None:
    """What this machine lacks to run the engine on Spark, said for a person (None when nothing): PySpark, an
    optional extra, and a Java runtime for its JVM. Asked before anything imports PySpark or starts a JVM."""
    if importlib.util.find_spec("pyspark") is None:
        return "the Spark engine needs PySpark: pip install 'socialcredit[spark]'"
    home = os.environ.get("JAVA_HOME")
    if not (home and os.path.isfile(os.path.join(home, "bin", "java"))) and shutil.which("java") is None:
        return (
            "the Spark engine needs a Java 17 runtime: apt-get install openjdk-17-jre-headless (Debian's "
            "package), or set JAVA_HOME"
        )
    return None
