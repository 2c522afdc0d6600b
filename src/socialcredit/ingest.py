"""Staging and set-wise validation of a record batch (CSV, JSON Lines, Parquet, Arrow or dicts).

Every input becomes one all-text staging table, so every check is a SQL query that names the row
and field it fails on; the checks run over the whole batch before a single row is written.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from socialcredit import ids
from socialcredit.yamlio import LocatedError

if TYPE_CHECKING:
    from socialcredit.store import Problem, Store

RECORD_FIELDS = ("record_id", "citizen_id", "behaviour", "occurred_at", "reported_by")
SQL_TYPES = {"int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN", "str": "VARCHAR"}


def q(name: str) -> str:
    """Quote a catalog identifier (already restricted to [a-z0-9_] by the catalog models)."""
    return '"' + name.replace('"', '""') + '"'


def _text_table(rows: list[dict[str, Any]]) -> pa.Table:
    flat: list[dict[str, str | None]] = []
    for r in rows:
        d: dict[str, Any] = {k: v for k, v in r.items() if k != "attributes"}
        d.update(r.get("attributes") or {})
        flat.append({k: None if v is None else _text(v) for k, v in d.items()})
    names = list(dict.fromkeys(k for d in flat for k in d))
    return pa.table({n: pa.array([d.get(n) for d in flat], pa.string()) for n in names})


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.datetime):
        return v.isoformat()
    return str(v)


def stage_batch(store: Store, source: str | Path | pa.Table | list[dict[str, Any]], label: str) -> None:
    con = store.con
    con.execute("DROP TABLE IF EXISTS _stage")
    if isinstance(source, list):
        source = _text_table(source)
    if isinstance(source, pa.Table):
        table = source.cast(pa.schema([(f.name, pa.string()) for f in source.schema]))
        con.register("_incoming", table)
        con.execute("CREATE TEMP TABLE _stage AS SELECT row_number() OVER () AS row, * FROM _incoming")
        con.unregister("_incoming")
    else:
        path = Path(source)
        if not path.exists():
            raise LocatedError(f"{path}: no such file")
        suffix = path.suffix.lower()
        try:
            if suffix == ".csv":
                con.execute(
                    "CREATE TEMP TABLE _stage AS SELECT row_number() OVER () AS row, * "
                    "FROM read_csv(?, all_varchar = true, header = true)",
                    [str(path)],
                )
            elif suffix in (".jsonl", ".ndjson", ".json"):
                _stage_jsonl(store, path)
            elif suffix == ".parquet":
                con.execute("CREATE TEMP TABLE _raw AS SELECT * FROM read_parquet(?)", [str(path)])
                cols = [r[0] for r in con.execute("DESCRIBE _raw").fetchall()]
                casts = ", ".join(f"{q(c)}::VARCHAR AS {q(c)}" for c in cols)
                con.execute(f"CREATE TEMP TABLE _stage AS SELECT row_number() OVER () AS row, {casts} FROM _raw")
                con.execute("DROP TABLE _raw")
            else:
                raise LocatedError(f"{path}: unknown format {suffix!r}; use .csv, .jsonl or .parquet")
        except LocatedError:
            raise
        except Exception as e:  # duckdb raises many kinds for unreadable files
            raise LocatedError(f"{path}: cannot read as {suffix[1:]}: {str(e).splitlines()[0]}") from None
    cols = [r[0] for r in con.execute("DESCRIBE _stage").fetchall()]
    allowed = {"row", *RECORD_FIELDS, *store.catalog.attributes}
    unknown = [c for c in cols if c not in allowed]
    if unknown:
        con.execute("DROP TABLE _stage")
        raise LocatedError(
            f"{label}: unknown field(s) {', '.join(unknown)}; records have "
            f"{', '.join(RECORD_FIELDS)} and the catalog attributes "
            f"({', '.join(store.catalog.attributes)})"
        )
    for c in [*RECORD_FIELDS, *store.catalog.attributes]:
        if c not in cols:
            con.execute(f"ALTER TABLE _stage ADD COLUMN {q(c)} VARCHAR")


def _stage_jsonl(store: Store, path: Path) -> None:
    con = store.con
    con.execute(
        "CREATE TEMP TABLE _raw AS SELECT row_number() OVER () AS row, json FROM "
        "read_json_objects(?, format = 'newline_delimited')",
        [str(path)],
    )
    found = con.execute("SELECT row FROM _raw WHERE json_type(json) <> 'OBJECT' LIMIT 1").fetchall()
    bad = found[0] if found else None
    if bad:
        con.execute("DROP TABLE _raw")
        raise LocatedError(f"{path}:{bad[0]}: each line must be a JSON object")
    keys = {k for (k,) in con.execute("SELECT DISTINCT unnest(json_keys(json)) FROM _raw").fetchall()}
    akeys = {
        k
        for (k,) in con.execute(
            "SELECT DISTINCT unnest(json_keys(json -> '$.attributes')) FROM _raw "
            "WHERE json_type(json -> '$.attributes') = 'OBJECT'"
        ).fetchall()
    }
    fields = [*RECORD_FIELDS, *store.catalog.attributes]
    extra = sorted((keys - {*fields, "attributes"}) | (akeys - set(store.catalog.attributes)))
    selects = []
    for f in fields:
        top = f"json ->> {_lit('$.' + f)}"
        if f in store.catalog.attributes:
            selects.append(f"coalesce({top}, json ->> {_lit('$.attributes.' + f)}) AS {q(f)}")
        else:
            selects.append(f"{top} AS {q(f)}")
    extras = ", ".join(f"json ->> {_lit('$.' + k)} AS {q(k)}" for k in extra)
    con.execute(
        f"CREATE TEMP TABLE _stage AS SELECT row, {', '.join(selects)}{', ' if extras else ''}{extras} FROM _raw"
    )
    con.execute("DROP TABLE _raw")


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def validate_stage(store: Store, now: dt.datetime | None) -> tuple[list[Problem], list[str]]:
    from socialcredit.store import Problem

    con, cat = store.con, store.catalog
    attrs = cat.attributes
    con.execute("DROP TABLE IF EXISTS _allowed; DROP TABLE IF EXISTS _declared")
    allowed = [(a.code, b) for a in cat.agencies.values() for b in a.behaviours]
    declared = [(b.code, a, a in b.required) for b in cat.behaviours.values() for a in b.attributes]
    con.execute("CREATE TEMP TABLE _allowed(agency VARCHAR, behaviour VARCHAR)")
    con.executemany("INSERT INTO _allowed VALUES (?, ?)", allowed)
    con.execute("CREATE TEMP TABLE _declared(behaviour VARCHAR, attribute VARCHAR, required BOOLEAN)")
    con.executemany("INSERT INTO _declared VALUES (?, ?, ?)", declared)
    typed_attrs = ", ".join(
        f"try_cast(nullif(trim(s.{q(a.name)}), '') AS {SQL_TYPES[a.type]}) AS {q(a.name)}" for a in attrs.values()
    )
    digest_parts = ", ".join(f"coalesce({q(a)}::VARCHAR, '')" for a in attrs)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _typed AS
        SELECT s.row, trim(s.record_id) AS record_id, trim(s.reported_by) AS agency, c.ckey, c.jkey, b.bkey,
               trim(s.citizen_id) AS citizen_id, trim(s.behaviour) AS behaviour,
               (try_cast(s.occurred_at AS TIMESTAMPTZ) AT TIME ZONE 'UTC') AS occurred_at, {typed_attrs}
        FROM _stage s
        LEFT JOIN citizens c ON c.citizen_id = trim(s.citizen_id)
        LEFT JOIN behaviours b ON b.code = trim(s.behaviour)""")
    con.execute(f"""ALTER TABLE _typed ADD COLUMN digest VARCHAR;
        UPDATE _typed SET digest = md5(concat_ws('|', agency, record_id, citizen_id, behaviour,
            strftime(occurred_at, '%Y-%m-%dT%H:%M:%S.%f'), {digest_parts}))""")
    # the batch's ids already in the store, looked up once: a hash join probed by one scan of the records'
    # keys (both checks below read this small table, not the records table)
    con.execute("""CREATE OR REPLACE TEMP TABLE _stored AS
        SELECT t.row, r.digest FROM _typed t JOIN records r ON r.agency = t.agency AND r.record_id = t.record_id""")
    now_utc = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None)
    checks = [
        *[f"SELECT row, '{f}', 'missing' FROM _stage WHERE nullif(trim({q(f)}), '') IS NULL" for f in RECORD_FIELDS],
        "SELECT s.row, 'occurred_at', 'not a timestamp: ' || s.occurred_at FROM _stage s JOIN _typed t USING (row) "
        "WHERE t.occurred_at IS NULL AND nullif(trim(s.occurred_at), '') IS NOT NULL",
        "SELECT row, 'occurred_at', 'in the future: ' || strftime(occurred_at, '%Y-%m-%d %H:%M:%S') || ' UTC' "
        "FROM _typed WHERE occurred_at > ?",
        "SELECT row, 'behaviour', 'unknown behaviour ' || behaviour FROM _typed WHERE bkey IS NULL AND behaviour <> ''",
        "SELECT row, 'reported_by', 'unknown agency ' || agency FROM _typed "
        "WHERE agency <> '' AND agency NOT IN (SELECT agency FROM _allowed)",
        "SELECT row, 'behaviour', 'agency ' || agency || ' may not report ' || behaviour FROM _typed t "
        "WHERE bkey IS NOT NULL AND agency IN (SELECT agency FROM _allowed) AND NOT EXISTS "
        "(SELECT 1 FROM _allowed a WHERE a.agency = t.agency AND a.behaviour = t.behaviour)",
        "SELECT row, 'record_id', 'sent twice in this batch with different content' FROM _typed t WHERE EXISTS "
        "(SELECT 1 FROM _typed u WHERE u.agency = t.agency AND u.record_id = t.record_id AND u.digest <> t.digest)",
        "SELECT t.row, 'record_id', 'already stored with different content (record ' || t.record_id || ')' "
        "FROM _typed t JOIN _stored r USING (row) WHERE r.digest <> t.digest",
    ]
    for a in attrs.values():
        col = q(a.name)
        checks.append(
            f"SELECT s.row, '{a.name}', 'not a{'n' if a.type == 'int' else ''} {a.type}: ' || s.{col} "
            f"FROM _stage s JOIN _typed t USING (row) WHERE nullif(trim(s.{col}), '') IS NOT NULL AND t.{col} IS NULL"
        )
        checks.append(
            f"SELECT t.row, '{a.name}', 'behaviour ' || t.behaviour || ' has no attribute {a.name}' FROM _typed t "
            f"WHERE t.{col} IS NOT NULL AND t.bkey IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM _declared d WHERE d.behaviour = t.behaviour AND d.attribute = '{a.name}')"
        )
    checks.append(
        "SELECT t.row, d.attribute, 'required for ' || t.behaviour FROM _typed t JOIN _declared d "
        "ON d.behaviour = t.behaviour AND d.required JOIN _stage s USING (row) WHERE "
        + " OR ".join(f"(d.attribute = '{a}' AND nullif(trim(s.{q(a)}), '') IS NULL)" for a in attrs)
    )
    sql = " UNION ALL ".join(f"({c})" for c in checks)
    found = con.execute(f"SELECT * FROM ({sql}) ORDER BY 1, 2", [now_utc]).fetchall()
    problems = [Problem(int(r), f, m) for r, f, m in found]
    unknown = con.execute("SELECT row, citizen_id FROM _typed WHERE ckey IS NULL AND citizen_id <> ''").fetchall()
    for row, cid in unknown:
        why = ids.problem(cid)
        problems.append(Problem(int(row), "citizen_id", f"{cid!r}: {why}" if why else f"unknown citizen {cid}"))
    problems.sort(key=lambda p: (p.row, p.field))
    # a duplicate is stored already, or a repeat of an earlier row of this batch
    con.execute("""ALTER TABLE _typed ADD COLUMN duplicate BOOLEAN;
        UPDATE _typed SET duplicate = d.duplicate FROM (
            SELECT row, row IN (SELECT row FROM _stored)
                        OR row > min(row) OVER (PARTITION BY agency, record_id) AS duplicate FROM _typed) d
        WHERE d.row = _typed.row""")
    dups = [r for (r,) in con.execute("SELECT record_id FROM _typed WHERE duplicate ORDER BY row").fetchall()]
    return problems, dups
