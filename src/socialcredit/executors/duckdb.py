"""The embedded executor: steps run in the store's own DuckDB connection."""

from __future__ import annotations

import duckdb
import pyarrow as pa
from sqlglot import exp

from socialcredit.executors import sql


class DuckDBExecutor:
    """Runs steps on a DuckDB connection (the store's, so derived tables land beside the facts)."""

    dialect = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def _name(self, name: str) -> str:
        return exp.to_identifier(name).sql(dialect=self.dialect)

    def materialize(self, name: str, query: exp.Expression) -> None:
        self.con.execute(f"CREATE OR REPLACE TABLE {self._name(name)} AS {sql(query, self.dialect)}")

    def view(self, name: str, query: exp.Expression) -> None:
        self.con.execute(f"CREATE OR REPLACE VIEW {self._name(name)} AS {sql(query, self.dialect)}")

    def load(self, name: str, table: pa.Table) -> None:
        self.con.register("_executor_load", table)
        try:
            self.con.execute(f"CREATE OR REPLACE TABLE {self._name(name)} AS SELECT * FROM _executor_load")
        finally:
            self.con.unregister("_executor_load")

    def fetch(self, query: exp.Expression) -> pa.Table:
        return self.con.sql(sql(query, self.dialect)).to_arrow_table()

    def drop(self, name: str) -> None:
        # DROP TABLE on a view is an error (and an error aborts the store's transaction): ask what it is first
        kinds = self.con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name = ? "
            "AND table_catalog = current_database() AND table_schema = current_schema()",
            [name],
        ).fetchall()
        kind = "VIEW" if ("VIEW",) in kinds else "TABLE"
        self.con.execute(f"DROP {kind} IF EXISTS {self._name(name)}")
