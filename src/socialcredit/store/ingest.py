"""Staging and set-wise validation of a record batch (CSV, JSON Lines, Parquet, Arrow or dicts).

Every input becomes one all-text staging table, so every check is a SQL query that names the row
and field it fails on; the checks run over the whole batch before a single row is written.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from socialcredit import ids
from socialcredit.catalog import ENVELOPE, RESERVED_NAMES
from socialcredit.clock import EARLIEST
from socialcredit.text import problem as text_problem
from socialcredit.yamlio import LocatedError

if TYPE_CHECKING:
    from socialcredit.catalog import Catalog


class Store(Protocol):
    """What staging and validation need of the store: its connection and its catalog. A protocol, not the
    store's class, because the store calls ingest (one direction only: no import circle)."""

    con: duckdb.DuckDBPyConnection
    catalog: Catalog


@dataclass
class Problem:
    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.message}"


class BatchRejected(ValueError):
    """A batch with at least one bad row; nothing of it was written."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        shown = "\n".join(f"{source}: {p}" for p in problems[:50])
        more = f"\n… and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"batch rejected, nothing written ({len(problems)} problems):\n{shown}{more}")


RECORD_FIELDS = ENVELOPE
SQL_TYPES = {"int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN", "str": "VARCHAR"}
MAX_ID_LENGTH = 200
_PARAMETER = re.compile(r"\$([a-z0-9_]+)")
_CSV_ERROR = re.compile(r"CSV Error on Line: (\d+).*?Expected Number of Columns: (\d+) Found: (\d+)", re.S)


def q(name: str) -> str:
    """Quote a catalog identifier (already restricted to [a-z0-9_] by the catalog models)."""
    return '"' + name.replace('"', '""') + '"'


def key_problems(row: int, top: list[str], nested: list[str] | None) -> list[Problem]:
    """Why one input row's keys cannot be staged, whatever the format it came in.

    The envelope (SPEC §6) is set by its own fields only: an attribute named like an envelope field would
    let a submitter override who reported the record, whose it is or its idempotency key. A key given
    twice (twice at the top, twice in attributes, or both at the top and in attributes) has no single
    meaning, so it is refused rather than resolved by whichever reader wins.
    """

    out: list[Problem] = []
    for k in sorted({k for k in top if top.count(k) > 1}):
        out.append(Problem(row, k, "given twice in this record"))
    for k in sorted(set(nested or [])):
        where = f"attributes.{k}"
        if k in RESERVED_NAMES:
            out.append(Problem(row, where, "the record envelope comes from its own fields, never from attributes"))
        elif nested and nested.count(k) > 1:
            out.append(Problem(row, where, "given twice in this record"))
        elif k in top:
            out.append(Problem(row, where, f"{k} given both as a field and in attributes"))
    return out


def _text_table(rows: list[dict[str, Any]]) -> tuple[pa.Table, list[Problem]]:

    flat: list[dict[str, str | None]] = []
    problems: list[Problem] = []
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict):
            problems.append(Problem(i, "record", "not an object"))
            continue
        attributes = r.get("attributes") or {}
        if not isinstance(attributes, dict):
            problems.append(Problem(i, "attributes", "not an object of attribute values"))
            attributes = {}
        top = [k for k in r if k != "attributes"]
        problems.extend(key_problems(i, top, list(attributes)))
        d: dict[str, str | None] = {}
        for k, v in [*((k, r[k]) for k in top), *attributes.items()]:
            name = k if k in top else f"attributes.{k}"
            if not isinstance(k, str):
                problems.append(Problem(i, str(k), "field names are text"))
                continue
            value = None if v is None else _text(v)
            why = None if value is None else text_problem(value)
            if why is not None:
                problems.append(Problem(i, name, why))
                continue
            d.setdefault(k, value)
        flat.append(d)
    names = list(dict.fromkeys(k for d in flat for k in d))
    return pa.table({n: pa.array([d.get(n) for d in flat], pa.string()) for n in names}), problems


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.datetime):
        return v.isoformat()
    return str(v)


def _column_names(names: list[str], label: str) -> None:
    """A flat file's columns: each named once, none reserved (attributes are plain columns there)."""
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise LocatedError(f"{label}: column(s) {', '.join(twice)} appear more than once in the header")
    reserved = [n for n in names if n in ("row", "attributes")]
    if reserved:
        raise LocatedError(
            f"{label}: column {reserved[0]!r} is reserved; in CSV and Parquet each attribute is its own column"
        )


def stage_batch(store: Store, source: str | Path | pa.Table | list[dict[str, Any]], label: str) -> None:
    """Stage a batch as all-text rows; raises LocatedError (the whole input) or BatchRejected (by row)."""

    con = store.con
    con.execute("DROP TABLE IF EXISTS _stage")
    if isinstance(source, list):
        source, problems = _text_table(source)
        if problems:
            raise BatchRejected(label, problems)
    if isinstance(source, pa.Table):
        _column_names(source.schema.names, label)
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
                _stage_csv(store, path)
            elif suffix in (".jsonl", ".ndjson", ".json"):
                _stage_jsonl(store, path)
            elif suffix == ".parquet":
                _column_names(pq.read_schema(path).names, str(path))
                con.execute("CREATE TEMP TABLE _raw AS SELECT * FROM read_parquet(?)", [str(path)])
                cols = [r[0] for r in con.execute("DESCRIBE _raw").fetchall()]
                casts = ", ".join(f"{q(c)}::VARCHAR AS {q(c)}" for c in cols)
                con.execute(f"CREATE TEMP TABLE _stage AS SELECT row_number() OVER () AS row, {casts} FROM _raw")
                con.execute("DROP TABLE _raw")
            else:
                raise LocatedError(f"{path}: unknown format {suffix!r}; use .csv, .jsonl or .parquet")
        except (LocatedError, BatchRejected):
            con.execute("DROP TABLE IF EXISTS _raw")
            raise
        except Exception as e:  # duckdb and pyarrow raise many kinds for unreadable files
            con.execute("DROP TABLE IF EXISTS _raw")
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


def _stage_csv(store: Store, path: Path) -> None:
    """RFC 4180 CSV with a header: the dialect is fixed, not sniffed, so a short row is named by its line
    (a sniffer guesses another delimiter for it and reports the whole header as unknown fields)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), None)
    if not header:
        raise LocatedError(f"{path}:1: no header line (CSV records start with a header naming their fields)")
    _column_names(header, str(path))
    try:
        store.con.execute(
            "CREATE TEMP TABLE _stage AS SELECT row_number() OVER () AS row, * FROM read_csv(?, auto_detect = false, "
            "header = true, delim = ',', quote = '\"', escape = '\"', columns = ?)",
            [str(path), {n: "VARCHAR" for n in header}],
        )
    except duckdb.Error as e:
        m = _CSV_ERROR.search(str(e))
        if m:
            line, want, got = m.groups()
            raise LocatedError(f"{path}:{line}: {got} field(s) where the header names {want}") from None
        raise


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
    # rows whose keys break the envelope rules (found set-wise; only those few reach Python for the message)
    suspects = con.execute(
        """SELECT row, k, ak, jt FROM (
               SELECT row, json_keys(json) AS k, json_type(json -> '$.attributes') AS jt,
                      CASE WHEN json_type(json -> '$.attributes') = 'OBJECT'
                           THEN json_keys(json -> '$.attributes') ELSE []::VARCHAR[] END AS ak FROM _raw)
           WHERE len(k) <> len(list_distinct(k)) OR len(ak) <> len(list_distinct(ak))
              OR len(list_intersect(ak, list_concat(k, ?))) > 0 OR (jt IS NOT NULL AND jt NOT IN ('OBJECT', 'NULL'))
           ORDER BY row LIMIT 1000""",
        [sorted(RESERVED_NAMES)],
    ).fetchall()
    if suspects:
        problems: list[Problem] = []
        for row, k, ak, jt in suspects:
            problems.extend(key_problems(int(row), [x for x in k if x != "attributes"], ak))
            if jt is not None and jt not in ("OBJECT", "NULL"):
                problems.append(Problem(int(row), "attributes", "not an object of attribute values"))
        con.execute("DROP TABLE _raw")
        raise BatchRejected(str(path), problems)
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


# Every check of a staged batch, as (field, message, condition) over one row of `_CHECKED` (the typed
# row `t`, its text trimmed `g` (`_given`; the messages also read it as staged, `s`), the catalog's answers about
# its agency `ka`, agency × behaviour `al`, behaviour's attributes `d` and id within the batch `dk`).
# Values reach them as named parameters ($now …), never in the text.
_CHECKED = """_typed t JOIN _given g USING (row)
    LEFT JOIN _agencies ka ON ka.agency = t.agency
    LEFT JOIN _allowed al ON al.agency = t.agency AND al.behaviour = t.behaviour
    LEFT JOIN _declared d ON d.behaviour = t.behaviour
    LEFT JOIN _twice dk ON dk.agency = t.agency AND dk.record_id = t.record_id"""


def _checks(store: Store, g: str = "g") -> tuple[list[tuple[str, str, str]], dict[str, object]]:
    """The (field, message, condition) of every check, and the named parameters they bind; `g` is the
    alias the conditions read the trimmed text by."""
    attrs = store.catalog.attributes
    checks = [(f"'{f}'", "'missing'", f"{g}.{q(_given(f))} IS NULL") for f in RECORD_FIELDS]
    checks += [
        ("'occurred_at'", "'not a timestamp: ' || s.occurred_at",
         f"t.occurred_at IS NULL AND {g}.{q(_given('occurred_at'))} IS NOT NULL"),
        ("'occurred_at'", "'in the future: ' || strftime(t.occurred_at, '%Y-%m-%d %H:%M:%S') || ' UTC'",
         "t.occurred_at > $now"),
        ("'occurred_at'", "'before ' || $earliest_day || ' (CST), the earliest time a record may carry: ' "
         "|| s.occurred_at", "t.occurred_at < $earliest"),
        ("'record_id'", "'longer than ' || $max_id || ' characters'", "length(t.record_id) > $max_id"),
        ("'behaviour'", "'unknown behaviour ' || t.behaviour", "t.bkey IS NULL AND t.behaviour <> ''"),
        ("'reported_by'", "'unknown agency ' || t.agency", "t.agency <> '' AND ka.agency IS NULL"),
        ("'behaviour'", "'agency ' || t.agency || ' may not report ' || t.behaviour",
         "t.bkey IS NOT NULL AND ka.agency IS NOT NULL AND al.agency IS NULL"),
        ("'record_id'", "'sent twice in this batch with different content'", "dk.agency IS NOT NULL"),
        ("'record_id'", "'already stored with different content (record ' || t.record_id || ')'",
         "t.stored_digest <> t.digest"),
    ]  # fmt: skip
    params: dict[str, object] = {"max_id": MAX_ID_LENGTH}
    for a in attrs.values():
        col, name, given = q(a.name), a.name, f"{g}.{q(_given(a.name))}"
        typed = (
            # a cast would round 4.5 to 5: an int is written as one, or as a number with a zero fraction
            f"(t.{col} IS NULL OR NOT regexp_full_match({given}, '[+-]?[0-9]+([.]0*)?'))"
            if a.type == "int"
            else f"(t.{col} IS NULL OR NOT isfinite(t.{col}))"
            if a.type == "float"
            else f"t.{col} IS NULL"
        )
        article = "n" if a.type == "int" else ""
        checks.append((f"'{name}'", f"'not a{article} {a.type}: ' || s.{col}",
                       f"{given} IS NOT NULL AND {typed}"))  # fmt: skip
        if a.min is not None and a.max is not None:
            checks.append((
                f"'{name}'",
                f"'outside the catalog range [' || $min_text_{name} || ', ' || $max_text_{name} || ']: ' "
                f"|| t.{col}::VARCHAR",
                f"isfinite(t.{col}::DOUBLE) AND (t.{col} < $min_{name} OR t.{col} > $max_{name})",
            ))  # fmt: skip
            params |= {f"min_text_{name}": f"{a.min:g}", f"max_text_{name}": f"{a.max:g}",
                       f"min_{name}": a.min, f"max_{name}": a.max}  # fmt: skip
        if a.type == "str":
            checks.append((f"'{name}'", f"'longer than ' || $length_{name} || ' characters'",
                           f"length(t.{col}) > $length_{name}"))  # fmt: skip
            params[f"length_{name}"] = a.max_length
        checks.append(
            (
                f"'{name}'",
                f"'behaviour ' || t.behaviour || ' has no attribute {name}'",
                f"t.{col} IS NOT NULL AND t.bkey IS NOT NULL AND NOT coalesce(d.{q('has_' + name)}, false)",
            )
        )
        checks.append(
            (
                f"'{name}'",
                "'required for ' || t.behaviour",
                f"coalesce(d.{q('needs_' + name)}, false) AND {given} IS NULL",
            )
        )
    return checks, params


def _given(field: str) -> str:
    """The column of `_given` holding a field's staged text, trimmed, NULL where empty: whether it was given."""
    return f"given {field}"


def _catalog_tables(store: Store) -> None:
    """The catalog as small tables the checks join: agencies, agency × behaviour allowed, and per
    behaviour whether it has (declares) and needs (requires) each attribute."""
    cat, con = store.catalog, store.con
    allowed = [(a.code, b) for a in cat.agencies.values() for b in a.behaviours]
    declared: dict[str, pa.Array] = {"behaviour": pa.array(list(cat.behaviours), pa.string())}
    for name in cat.attributes:
        declared[f"has_{name}"] = pa.array([name in b.attributes for b in cat.behaviours.values()], pa.bool_())
        declared[f"needs_{name}"] = pa.array([name in b.required for b in cat.behaviours.values()], pa.bool_())
    tables = {
        "_agencies": pa.table({"agency": pa.array(sorted({a for a, _ in allowed}), pa.string())}),
        "_allowed": pa.table({"agency": [a for a, _ in allowed], "behaviour": [b for _, b in allowed]}),
        "_declared": pa.table(declared),
    }
    for name, table in tables.items():
        con.register(f"{name}_arrow", table)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
        finally:
            con.unregister(f"{name}_arrow")


def _used(params: dict[str, object], sql: str) -> dict[str, object]:
    """The named parameters `sql` binds (DuckDB refuses any other)."""
    names = set(_PARAMETER.findall(sql))
    return {k: v for k, v in params.items() if k in names}


def validate_stage(store: Store, now: dt.datetime | None) -> tuple[list[Problem], list[str]]:
    """Every check over the staged batch, set-wise: (problems by row and field, ids of duplicates).

    Why one pass: a batch is typed, digested, marked for duplicates and tested against every check's
    condition in one statement (the one batch-wide check, an id sent twice with different content, in one
    grouping after it); only rows that fail some check (none, in a clean batch) are then asked which checks
    and with what message. Each check is written once (`_checks`), so the test and the messages cannot
    disagree.
    """

    con, cat = store.con, store.catalog
    attrs = cat.attributes
    _catalog_tables(store)
    # each staged text trimmed (`given …`): computed as the batch is typed, never stored (writing two dozen
    # text columns into a table costs more than all the checks); the view serves the messages of failing rows
    given = ", ".join(f"nullif(trim({q(f)}), '') AS {q(_given(f))}" for f in [*RECORD_FIELDS, *attrs])
    con.execute(f"CREATE OR REPLACE TEMP VIEW _given AS SELECT row AS row, {given} FROM _stage")

    def trimmed(f: str) -> str:  # trim(s.f), as given: NULL if absent, '' if blank
        return f"CASE WHEN s.{q(f)} IS NULL THEN NULL ELSE coalesce(s.{q(_given(f))}, '') END"

    typed_attrs = ", ".join(
        f"try_cast(s.{q(_given(a.name))} AS {SQL_TYPES[a.type]}) AS {q(a.name)}" for a in attrs.values()
    )
    digest_parts = ", ".join(f"coalesce({q(a)}::VARCHAR, '')" for a in attrs)
    # the batch's ids already in the store, looked up once: a hash join probed by one scan of the records'
    # keys (the checks and the duplicate marks read this small table, not the records table)
    con.execute("""CREATE OR REPLACE TEMP TABLE _stored AS
        SELECT s.row, r.digest FROM _stage s
        JOIN records r ON r.agency = trim(s.reported_by) AND r.record_id = trim(s.record_id)""")
    checks, named = _checks(store)
    now_utc = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None)
    earliest = EARLIEST.astimezone(dt.UTC).replace(tzinfo=None)  # before it: a typo, never scored
    params = {**named, "now": now_utc, "earliest": earliest, "earliest_day": f"{EARLIEST:%Y-%m-%d}"}
    # every check but the batch-wide one (an id sent twice with different content) is tested as the batch
    # is typed, on the trimmed text at hand (`t` here); that one needs the whole batch's digests first
    row_checks = [cond for _, _, cond in _checks(store, g="t")[0] if "dk." not in cond]
    any_fails = " OR ".join(f"({cond})" for cond in row_checks)  # NULL OR NULL: no failure, as in a WHERE
    given_columns = ", ".join(q(_given(f)) for f in [*RECORD_FIELDS, *attrs])
    typing = f"""
        CREATE OR REPLACE TEMP TABLE _typed AS
        WITH given AS (SELECT row, record_id, reported_by, citizen_id, behaviour, occurred_at, {given} FROM _stage),
        typed AS (
            SELECT s.row, {trimmed("record_id")} AS record_id, {trimmed("reported_by")} AS agency,
                   c.ckey, c.jkey, b.bkey, {trimmed("citizen_id")} AS citizen_id, {trimmed("behaviour")} AS behaviour,
                   (try_cast(s.occurred_at AS TIMESTAMPTZ) AT TIME ZONE 'UTC') AS occurred_at, {typed_attrs},
                   st.digest AS stored_digest, st.row IS NOT NULL AS stored,
                   s.* EXCLUDE (row, {", ".join(RECORD_FIELDS)})
            FROM given s
            LEFT JOIN citizens c ON c.citizen_id = s."given citizen_id"
            LEFT JOIN behaviours b ON b.code = s."given behaviour"
            LEFT JOIN _stored st ON st.row = s.row),
        digested AS (
            SELECT *, md5(concat_ws('|', agency, record_id, citizen_id, behaviour,
                                    strftime(occurred_at, '%Y-%m-%dT%H:%M:%S.%f'), {digest_parts})) AS digest
            FROM typed),
        repeated AS (  -- ids given more than once in this batch (a grouping: a window over every id is slow)
            SELECT trim(reported_by) AS agency, trim(record_id) AS record_id, min(row) AS first FROM _stage
            GROUP BY ALL HAVING count(*) > 1)
        SELECT t.* EXCLUDE (stored, {given_columns}),
               -- a duplicate is stored already, or a repeat of an earlier row of this batch
               t.stored OR coalesce(t.row > k.first, false) AS duplicate,
               coalesce({any_fails}, false) AS suspect
        FROM digested t
        LEFT JOIN repeated k ON k.agency IS NOT DISTINCT FROM t.agency AND k.record_id IS NOT DISTINCT FROM t.record_id
        LEFT JOIN _agencies ka ON ka.agency = t.agency
        LEFT JOIN _allowed al ON al.agency = t.agency AND al.behaviour = t.behaviour
        LEFT JOIN _declared d ON d.behaviour = t.behaviour"""
    con.execute(typing, _used(params, typing))
    con.execute("""CREATE OR REPLACE TEMP TABLE _twice AS
        SELECT agency, record_id FROM _typed GROUP BY ALL HAVING min(digest) <> max(digest)""")
    con.execute("""CREATE OR REPLACE TEMP TABLE _suspects AS
        SELECT row FROM _typed WHERE suspect
        UNION SELECT t.row FROM _typed t JOIN _twice dk ON dk.agency = t.agency AND dk.record_id = t.record_id""")
    found: list[tuple[int, str, str]] = []
    if con.execute("SELECT count(*) FROM _suspects").fetchall()[0][0]:
        union = " UNION ALL ".join(
            f"(SELECT t.row, {field}, {message}, {i} FROM {_CHECKED} JOIN _stage s USING (row) "
            f"JOIN _suspects USING (row) WHERE {cond})"
            for i, (field, message, cond) in enumerate(checks)
        )
        sql = (
            f"SELECT row, field, message FROM ({union}) AS u(row, field, message, ordinal) ORDER BY row, field, ordinal"
        )
        found = con.execute(sql, _used(params, sql)).fetchall()
    con.execute("DROP TABLE _suspects; DROP TABLE _twice; DROP VIEW _given")
    problems = [Problem(int(r), f, m) for r, f, m in found]
    unknown = con.execute("SELECT row, citizen_id FROM _typed WHERE ckey IS NULL AND citizen_id <> ''").fetchall()
    for row, cid in unknown:
        why = ids.problem(cid)
        problems.append(Problem(int(row), "citizen_id", f"{cid!r}: {why}" if why else f"unknown citizen {cid}"))
    problems.sort(key=lambda p: (p.row, p.field))
    dups = [r for (r,) in con.execute("SELECT record_id FROM _typed WHERE duplicate ORDER BY row").fetchall()]
    return problems, dups
