"""The embedded executor: steps run in the store's own DuckDB connection."""

from __future__ import annotations

import duckdb
import pyarrow as pa
from sqlglot import exp

from socialcredit.engine.executors import sql


class DuckDBExecutor:
    """Runs steps on a DuckDB connection (the store's, so derived tables land beside the facts).

    A query handed to it is the caller's to give away: it is turned into SQL without a copy (the engine
    builds a fresh tree for every statement) and may be changed by sqlglot's generator.

    `dense_keys`: the number of dense integer keys the steps group by (citizens). DuckDB aggregates and joins
    on a key whose range fits 2^perfect_ht_threshold with a perfect hash table instead of a general one; the
    setting is DuckDB's own, so it lives here and no step names it. The range is bounded by the keys so that
    a sparse wider key (record keys) does not get a table the size of its range.
    """

    dialect = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection, dense_keys: int | None = None) -> None:
        self.con = con
        if dense_keys is not None:
            bits = max(12, min(26, int(dense_keys).bit_length() + 1))
            con.execute(
                exp.Set(
                    expressions=[exp.EQ(this=exp.column("perfect_ht_threshold"), expression=exp.Literal.number(bits))]
                ).sql(self.dialect)
            )

    def _name(self, name: str) -> str:
        return exp.to_identifier(name).sql(dialect=self.dialect)

    @staticmethod
    def _temp(temporary: bool) -> str:
        return "TEMP " if temporary else ""

    def materialize(self, name: str, query: exp.Expression, temporary: bool = False) -> None:
        text = sql(query, self.dialect, copy=False)
        self.con.execute(f"CREATE OR REPLACE {self._temp(temporary)}TABLE {self._name(name)} AS {text}")

    def view(self, name: str, query: exp.Expression, temporary: bool = False) -> None:
        text = sql(query, self.dialect, copy=False)
        self.con.execute(f"CREATE OR REPLACE {self._temp(temporary)}VIEW {self._name(name)} AS {text}")

    def load(self, name: str, table: pa.Table, temporary: bool = False) -> None:
        self.con.register("_executor_load", table)
        try:
            self.con.execute(
                f"CREATE OR REPLACE {self._temp(temporary)}TABLE {self._name(name)} AS SELECT * FROM _executor_load"
            )
        finally:
            self.con.unregister("_executor_load")

    def append(self, name: str, query: exp.Expression) -> int:
        rows = self.con.execute(f"INSERT INTO {self._name(name)} {sql(query, self.dialect, copy=False)}").fetchall()
        return int(rows[0][0]) if rows else 0

    def fetch(self, query: exp.Expression) -> pa.Table:
        return self.con.sql(sql(query, self.dialect, copy=False)).to_arrow_table()

    def drop(self, name: str) -> None:
        # DROP TABLE on a view is an error (and an error aborts the store's transaction): ask what it is first
        kinds = self.con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name = ? "
            "AND table_catalog = current_database() AND table_schema = current_schema()",
            [name],
        ).fetchall()
        kind = "VIEW" if ("VIEW",) in kinds else "TABLE"
        self.con.execute(f"DROP {kind} IF EXISTS {self._name(name)}")

    def keep(self, name: str) -> None:
        """Nothing: DuckDB plans a view cheaply and reads it where it is used (a copy would cost a write)."""
