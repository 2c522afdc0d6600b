"""Staging and set-wise validation of a record batch (CSV, JSON Lines, Parquet, Arrow or dicts).

Every input becomes one all-text staging table, so every check is a SQL query that names the row
and field it fails on; the checks run over the whole batch before a single row is written.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from socialcredit import ids
from socialcredit.catalog import ENVELOPE, RESERVED_NAMES, Attribute
from socialcredit.clock import EARLIEST
from socialcredit.sqltemplates import create_temp, fill
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
_CSV_ERROR = re.compile(r"CSV Error on Line: (\d+).*?Expected Number of Columns: (\d+) Found: (\d+)", re.S)


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
        attributes = store.catalog.attributes
        kept = {f.name for f in source.schema if f.name in attributes and _typed_as(f.type, attributes[f.name].type)}
        table = source.cast(pa.schema([(f.name, f.type if f.name in kept else pa.string()) for f in source.schema]))
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
                # every column as text, under its own name (DuckDB's COLUMNS keeps the names)
                con.execute(
                    "CREATE TEMP TABLE _stage AS SELECT row_number() OVER () AS row, COLUMNS(*)::VARCHAR FROM _raw"
                )
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
            con.execute(_add_column(c))


def _typed_as(arrow: pa.DataType, kind: str) -> bool:
    """Whether an Arrow column already holds an attribute's catalog type, so that it is staged as it is.

    Why: text would be printed, trimmed and parsed back for nothing (a generated month's batch, 0.07 s of its
    ingest at a million citizens). Only an exact kind stays typed: an int attribute from a float column (4.5)
    or any other type goes through text and its checks as from a file; a typed value still meets every check
    that concerns values (range, finite, declared, required)."""
    if kind == "int":
        return bool(pa.types.is_signed_integer(arrow))  # int8 to int64: BIGINT holds them all
    if kind == "float":
        return bool(pa.types.is_float64(arrow) or pa.types.is_float32(arrow))
    return kind == "bool" and bool(pa.types.is_boolean(arrow))


@functools.lru_cache(maxsize=256)
def _add_column(name: str) -> str:
    """`ALTER TABLE _stage ADD COLUMN "name" VARCHAR`: a field the batch did not give, staged as all NULL."""
    column = exp.ColumnDef(this=exp.to_identifier(name, quoted=True), kind=exp.DataType.build("VARCHAR"))
    return exp.Alter(this=exp.to_table("_stage"), kind="TABLE", actions=[column]).sql("duckdb")


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
    con.execute(_jsonl_stage(tuple(fields), tuple(store.catalog.attributes), tuple(extra)))
    con.execute("DROP TABLE _raw")


@functools.lru_cache(maxsize=64)
def _jsonl_stage(fields: tuple[str, ...], attributes: tuple[str, ...], extra: tuple[str, ...]) -> str:
    """`_stage` from the JSON objects in `_raw`: each field's text at the top, an attribute's also under
    `attributes`, and the keys no record has (`extra`), so that the check after names them. The same for
    every batch of a catalog but those with unknown keys: generated once."""

    def text(path: str) -> exp.Expression:  # json ->> 'path', the path a literal (the key never parsed as SQL)
        return exp.Anonymous(this="json_extract_string", expressions=[exp.column("json"), exp.Literal.string(path)])

    def top(f: str) -> exp.Expression:
        at = text("$." + f)
        return exp.Coalesce(this=at, expressions=[text("$.attributes." + f)]) if f in attributes else at

    columns = [_named(top(f), f) for f in fields]
    columns += [_named(text("$." + k), k) for k in extra]
    return create_temp("TABLE", "_stage", fill("SELECT row, $columns FROM _raw", columns=columns))


def _column(name: str, table: str | None = None) -> exp.Expression:
    return exp.column(name, table=table, quoted=True)


def _named(value: exp.Expression, name: str) -> exp.Expression:
    """`value AS "name"`."""
    return exp.Alias(this=value, alias=exp.to_identifier(name, quoted=True))


def _bound(name: str) -> exp.Expression:
    """`$name`, a named parameter the statement binds when it runs (a value of this batch: now, a limit)."""
    return exp.Placeholder(this=name)


Check = tuple[str, exp.Expression, exp.Expression]
"""(field, message, condition): one check of a staged row, its message and condition sqlglot trees"""

# Every check of a staged batch, as (field, message, condition) over one row of the join in `_MESSAGES` (the
# typed row `t`, its text trimmed `g` (`_given`; the messages also read it as staged, `s`), the catalog's answers
# about its agency `ka`, agency × behaviour `al`, behaviour's attributes `d`, its id within the batch `dk`, and
# whether it differs from the record stored under its id `sd`).
# Values reach them as named parameters ($now …), never in the text. Each suspect row is joined once and asked
# every check (`$checks`: one struct per check, `hit` its condition); the checks it fails are its problems.
_MESSAGES = """SELECT row, c.field AS field, c.message AS message FROM (
    SELECT t.row AS row, unnest([$checks]) AS c
    FROM _typed t JOIN _given g USING (row)
    LEFT JOIN _agencies ka ON ka.agency = t.agency
    LEFT JOIN _allowed al ON al.agency = t.agency AND al.behaviour = t.behaviour
    LEFT JOIN _declared d ON d.behaviour = t.behaviour
    LEFT JOIN _twice dk ON dk.agency = t.agency AND dk.record_id = t.record_id
    LEFT JOIN _differs sd ON sd.row = t.row
    JOIN _stage s USING (row) JOIN _suspects USING (row))
    WHERE c.hit ORDER BY row, field, c.ordinal"""
_CHECK = "{'hit': $condition, 'field': $field, 'message': $message, 'ordinal': $ordinal}"


def _checks(
    attrs: tuple[Attribute, ...], g: str = "g", messages: bool = True, typed: frozenset[str] = frozenset()
) -> list[Check]:
    """The (field, message, condition) of every check (their parameters: `_parameters`); `g` is the alias the
    conditions read the trimmed text by. Without `messages`, each message is NULL (the typing statement tests
    the conditions only, and is generated on a batch's first ingest: half the trees, half the time).
    `typed`: the attributes staged typed (`_typed_as`), whose given value is the value: it is no text to
    parse, so only a float's finiteness is left of the type check."""

    def given(f: str) -> exp.Expression:
        return exp.column(_given(f), table=g, quoted=True)

    def c(field: str, message: str, condition: str, **values: object) -> Check:
        """A check from templates: `$name` placeholders filled (columns, bound parameters), the rest as written;
        each tree gets its own copy of the values (a node belongs to one tree)."""

        def own() -> dict[str, object]:
            return {k: v.copy() if isinstance(v, exp.Expression) else v for k, v in values.items()}

        return field, fill(message, **own()) if messages else exp.null(), fill(condition, **own())

    checks = [c(f, "'missing'", "$given IS NULL", given=given(f)) for f in RECORD_FIELDS]
    checks += [
        c("occurred_at", "'not a timestamp: ' || s.occurred_at", "t.occurred_at IS NULL AND $given IS NOT NULL",
          given=given("occurred_at")),
        c("occurred_at", "'in the future: ' || strftime(t.occurred_at, '%Y-%m-%d %H:%M:%S') || ' UTC'",
          "t.occurred_at > $now", now=_bound("now")),
        c("occurred_at", "'before ' || $earliest_day || ' (CST), the earliest time a record may carry: ' "
          "|| s.occurred_at", "t.occurred_at < $earliest", earliest_day=_bound("earliest_day"),
          earliest=_bound("earliest")),
        c("record_id", "'longer than ' || $max_id || ' characters'", "length(t.record_id) > $max_id",
          max_id=_bound("max_id")),
        c("behaviour", "'unknown behaviour ' || t.behaviour", "t.bkey IS NULL AND t.behaviour <> ''"),
        c("reported_by", "'unknown agency ' || t.agency", "t.agency <> '' AND ka.agency IS NULL"),
        c("behaviour", "'agency ' || t.agency || ' may not report ' || t.behaviour",
          "t.bkey IS NOT NULL AND ka.agency IS NOT NULL AND al.agency IS NULL"),
        c("record_id", "'sent twice in this batch with different content'", "dk.agency IS NOT NULL"),
        c("record_id", "'already stored with different content (record ' || t.record_id || ')'",
          "sd.row IS NOT NULL"),
    ]  # fmt: skip
    for a in attrs:
        name = a.name
        cols = {
            "col": exp.column(name, table="t", quoted=True),
            "staged": exp.column(name, table="s", quoted=True),
            "given": given(name),
        }
        kind_check = (
            # a cast would round 4.5 to 5: an int is written as one, or as a number with a zero fraction
            "($col IS NULL OR NOT regexp_full_match($given, '[+-]?[0-9]+([.]0*)?'))"
            if a.type == "int" and name not in typed
            else "($col IS NULL OR NOT isfinite($col))"
            if a.type == "float"
            else "$col IS NULL"
        )
        checks.append(c(name, "$not_a || CAST($staged AS VARCHAR)", "$given IS NOT NULL AND $typed", **cols,
                        typed=fill(kind_check, col=cols["col"].copy(), given=cols["given"].copy()),
                        not_a=f"not a{'n' if a.type == 'int' else ''} {a.type}: "))  # fmt: skip
        if a.min is not None and a.max is not None:
            checks.append(c(
                name,
                "'outside the catalog range [' || $min_text || ', ' || $max_text || ']: ' || $col::VARCHAR",
                "isfinite($col::DOUBLE) AND ($col < $min OR $col > $max)",
                **cols, min_text=_bound(f"min_text_{name}"), max_text=_bound(f"max_text_{name}"),
                min=_bound(f"min_{name}"), max=_bound(f"max_{name}"),
            ))  # fmt: skip
        if a.type == "str":
            checks.append(c(name, "'longer than ' || $length || ' characters'", "length($col) > $length",
                            **cols, length=_bound(f"length_{name}")))  # fmt: skip
        has = exp.column(f"has_{name}", table="d", quoted=True)
        needs = exp.column(f"needs_{name}", table="d", quoted=True)
        checks.append(c(name, "'behaviour ' || t.behaviour || $no_attribute",
                        "$col IS NOT NULL AND t.bkey IS NOT NULL AND NOT coalesce($has, false)",
                        **cols, has=has, no_attribute=f" has no attribute {name}"))  # fmt: skip
        checks.append(c(name, "'required for ' || t.behaviour", "coalesce($needs, false) AND $given IS NULL",
                        **cols, needs=needs))  # fmt: skip
    return checks


def _parameters(attrs: tuple[Attribute, ...]) -> dict[str, object]:
    """The named parameters the catalog gives the checks: each number's range (and as text), each text's length."""
    params: dict[str, object] = {"max_id": MAX_ID_LENGTH}
    for a in attrs:
        if a.min is not None and a.max is not None:
            params |= {f"min_text_{a.name}": f"{a.min:g}", f"max_text_{a.name}": f"{a.max:g}",
                       f"min_{a.name}": a.min, f"max_{a.name}": a.max}  # fmt: skip
        if a.type == "str":
            params[f"length_{a.name}"] = a.max_length
    return params


def _given(field: str) -> str:
    """The column of `_given` holding a field's staged text, trimmed, NULL where empty: whether it was given."""
    return f"given {field}"


@functools.cache
def _copy_arrow(name: str) -> str:
    """`CREATE OR REPLACE TEMP TABLE name AS SELECT * FROM name_arrow`: a registered Arrow table kept as a table."""
    return create_temp("TABLE", name, exp.select("*").from_(exp.to_table(f"{name}_arrow")))


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
            con.execute(_copy_arrow(name))
        finally:
            con.unregister(f"{name}_arrow")


@dataclass(frozen=True)
class _Statement:
    """A statement as DuckDB text, and the named parameters it binds (DuckDB refuses any other)."""

    sql: str
    names: frozenset[str]

    @staticmethod
    def of(tree: exp.Expression) -> _Statement:
        return _Statement(tree.sql("duckdb"), frozenset(p.name for p in tree.find_all(exp.Placeholder)))

    def bind(self, params: dict[str, object]) -> dict[str, object]:
        return {k: v for k, v in params.items() if k in self.names}


@functools.lru_cache(maxsize=32)
def _given_view(fields: tuple[str, ...], typed: frozenset[str]) -> str:
    """The `_given` view: each field's staged text trimmed, NULL where empty (`_given`); a typed one as it is."""
    return create_temp(
        "VIEW", "_given", fill("SELECT row AS row, $given FROM _stage", given=_given_columns(fields, typed))
    )


def _given_columns(fields: tuple[str, ...], typed: frozenset[str]) -> list[exp.Expression]:
    return [_named(_column(f) if f in typed else fill("nullif(trim($f), '')", f=_column(f)), _given(f)) for f in fields]


# The checks that need more than the row at hand: an id sent twice in this batch with different content (`dk`),
# and a row whose id is stored already under different content (`sd`). They are asked after the typing, of the
# few rows whose id repeats or is stored (`_twice`, `_differs`), not of every row as it is typed.
_BATCH_WIDE = frozenset({"dk", "sd"})


@functools.lru_cache(maxsize=32)
def _typing(attrs: tuple[Attribute, ...], typed: frozenset[str] = frozenset()) -> _Statement:
    """`_typed`: the batch typed, marked for duplicates and for rows failing any check, in one statement
    generated by sqlglot once per catalog and set of attributes staged typed (`typed`: its shape follows
    those only; the batch's values are bound when it runs)."""
    fields = (*RECORD_FIELDS, *(a.name for a in attrs))
    col = _column

    def trimmed(f: str) -> exp.Expression:  # trim(s.f), as given: NULL if absent, '' if blank
        return fill(
            "CASE WHEN $raw IS NULL THEN NULL ELSE coalesce($given, '') END", raw=col(f, "s"), given=col(_given(f), "s")
        )

    typed_attrs = [
        _named(
            col(_given(a.name), "s")
            if a.name in typed
            else exp.TryCast(this=col(_given(a.name), "s"), to=exp.DataType.build(SQL_TYPES[a.type])),
            a.name,
        )
        for a in attrs
    ]
    row_checks = [
        cond
        for _, _, cond in _checks(attrs, g="t", messages=False, typed=typed)
        if all(c.table not in _BATCH_WIDE for c in cond.find_all(exp.Column))
    ]
    any_fails = exp.or_(*(exp.paren(cond) for cond in row_checks))  # NULL OR NULL: no failure, as in a WHERE
    typing = fill(
        """CREATE OR REPLACE TEMP TABLE _typed AS
        WITH given AS (SELECT row, $envelope, $given FROM _stage),
        typed AS (
            SELECT s.row, $record_id AS record_id, $reported_by AS agency,
                   c.ckey, c.jkey, b.bkey, $citizen_id AS citizen_id, $behaviour AS behaviour,
                   (try_cast(s.occurred_at AS TIMESTAMPTZ) AT TIME ZONE 'UTC') AS occurred_at, $typed_attrs,
                   st.row IS NOT NULL AS stored,
                   s.* EXCLUDE (row, $envelope)
            FROM given s
            LEFT JOIN citizens c ON c.citizen_id = s."given citizen_id"
            LEFT JOIN behaviours b ON b.code = s."given behaviour"
            LEFT JOIN _stored st ON st.row = s.row)
        SELECT t.* EXCLUDE (stored, $given_columns),
               -- a duplicate is stored already, or a repeat of an earlier row of this batch
               t.stored OR coalesce(t.row > k.first, false) AS duplicate,
               coalesce($any_fails, false) AS suspect
        FROM typed t
        LEFT JOIN _repeated k ON k.agency IS NOT DISTINCT FROM t.agency AND k.record_id IS NOT DISTINCT FROM t.record_id
        LEFT JOIN _agencies ka ON ka.agency = t.agency
        LEFT JOIN _allowed al ON al.agency = t.agency AND al.behaviour = t.behaviour
        LEFT JOIN _declared d ON d.behaviour = t.behaviour""",
        envelope=[col(f) for f in RECORD_FIELDS],
        given=_given_columns(fields, typed),
        record_id=trimmed("record_id"),
        reported_by=trimmed("reported_by"),
        citizen_id=trimmed("citizen_id"),
        behaviour=trimmed("behaviour"),
        typed_attrs=typed_attrs,
        given_columns=[col(_given(f)) for f in fields],
        any_fails=any_fails,
    )
    return _Statement.of(typing)


@functools.lru_cache(maxsize=32)
def _content_checks(attrs: tuple[Attribute, ...]) -> tuple[str, str]:
    """`_twice` and `_differs`: the ids this batch gives twice with different content, and its rows whose id
    is stored already under different content. The content is what the record says (citizen, behaviour,
    time and every attribute, as typed); each compares only the few rows whose id repeats or is stored (a
    semi join of the batch with `_repeated`, a join with `_stored` and those records), so a batch of new ids
    pays two joins with empty tables, not a content hash of every row."""
    names = [_column(a.name) for a in attrs]
    content = exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier(f"c{i}"), expression=e)
            for i, e in enumerate([_column("citizen_id"), _column("behaviour"), _column("occurred_at"), *names])
        ]
    )
    twice = fill(
        """CREATE OR REPLACE TEMP TABLE _twice AS
        SELECT t.agency, t.record_id FROM _typed t
        SEMI JOIN _repeated k ON k.agency IS NOT DISTINCT FROM t.agency AND k.record_id IS NOT DISTINCT FROM t.record_id
        GROUP BY ALL HAVING count(DISTINCT $content) > 1""",
        content=content,
    )
    differs = exp.or_(
        *(
            fill("$a IS DISTINCT FROM $b", a=_column(n, "t"), b=_column(n, "r"))
            for n in ("ckey", "bkey", "occurred_at", *(a.name for a in attrs))
        )
    )
    stored = fill(
        """CREATE OR REPLACE TEMP TABLE _differs AS
        SELECT t.row FROM _typed t JOIN _stored st ON st.row = t.row JOIN records r ON r.rkey = st.rkey
        WHERE $differs""",
        differs=differs,
    )
    return twice.sql("duckdb"), stored.sql("duckdb")


@functools.lru_cache(maxsize=32)
def _messages(attrs: tuple[Attribute, ...], typed: frozenset[str] = frozenset()) -> _Statement:
    """Every failing check's (row, field, message) for the suspect rows, in the checks' order: generated once
    per catalog and set of attributes staged typed, when a batch first has a suspect row (a clean batch
    never asks)."""
    checks = [
        fill(_CHECK, condition=condition, field=field, message=message, ordinal=i)
        for i, (field, message, condition) in enumerate(_checks(attrs, typed=typed))
    ]
    return _Statement.of(fill(_MESSAGES, checks=checks))


def validate_stage(store: Store, now: dt.datetime | None) -> tuple[list[Problem], list[str]]:
    """Every check over the staged batch, set-wise: (problems by row and field, ids of duplicates).

    Why one pass: a batch is typed, marked for duplicates and tested against every check's condition in
    one statement; the two checks that compare content (an id sent twice with different content, or stored
    already with different content) follow it, over the few rows whose id repeats or is stored. Only rows
    that fail some check (none, in a clean batch) are then asked which checks and with what message. Each
    check is written once (`_checks`), so the test and the messages cannot disagree. The statements are the
    catalog's (generated once); this batch's values are bound.
    """

    con = store.con
    attrs = tuple(store.catalog.attributes.values())
    # the attributes staged typed (an Arrow batch's columns of the catalog's kind, `_typed_as`); the rest is text
    typed = frozenset(
        name for name, kind in con.execute("SELECT name, type FROM pragma_table_info('_stage')").fetchall()
        if name in store.catalog.attributes and kind != "VARCHAR"
    )  # fmt: skip
    typing = _typing(attrs, typed)
    _catalog_tables(store)
    # each staged text trimmed (`given …`): computed as the batch is typed, never stored (writing two dozen
    # text columns into a table costs more than all the checks); the view serves the messages of failing rows
    con.execute(_given_view((*RECORD_FIELDS, *store.catalog.attributes), typed))
    # the batch's ids already in the store, looked up once: a hash join probed by one scan of the records'
    # keys (the duplicate marks read this small table; the content check joins the few records it names)
    con.execute("""CREATE OR REPLACE TEMP TABLE _stored AS
        SELECT s.row, r.rkey FROM _stage s
        JOIN records r ON r.agency = trim(s.reported_by) AND r.record_id = trim(s.record_id)""")
    # the ids given more than once in this batch, and the first row of each (a grouping: a window over every id
    # is slow); the later rows are duplicates
    con.execute("""CREATE OR REPLACE TEMP TABLE _repeated AS
        SELECT trim(reported_by) AS agency, trim(record_id) AS record_id, min(row) AS first FROM _stage
        GROUP BY ALL HAVING count(*) > 1""")
    now_utc = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None)
    earliest = EARLIEST.astimezone(dt.UTC).replace(tzinfo=None)  # before it: a typo, never scored
    params = {**_parameters(attrs), "now": now_utc, "earliest": earliest, "earliest_day": f"{EARLIEST:%Y-%m-%d}"}
    con.execute(typing.sql, typing.bind(params))
    twice, differs = _content_checks(attrs)
    con.execute(twice)
    con.execute(differs)
    con.execute("""CREATE OR REPLACE TEMP TABLE _suspects AS
        SELECT row FROM _typed WHERE suspect UNION SELECT row FROM _differs
        UNION SELECT t.row FROM _typed t JOIN _twice dk ON dk.agency = t.agency AND dk.record_id = t.record_id""")
    found: list[tuple[int, str, str]] = []
    if con.execute("SELECT count(*) FROM _suspects").fetchall()[0][0]:
        messages = _messages(attrs, typed)
        found = con.execute(messages.sql, messages.bind(params)).fetchall()
    con.execute("DROP TABLE _suspects; DROP TABLE _twice; DROP TABLE _differs; DROP TABLE _repeated; DROP VIEW _given")
    problems = [Problem(int(r), f, m) for r, f, m in found]
    unknown = con.execute("SELECT row, citizen_id FROM _typed WHERE ckey IS NULL AND citizen_id <> ''").fetchall()
    for row, cid in unknown:
        why = ids.problem(cid)
        problems.append(Problem(int(row), "citizen_id", f"{cid!r}: {why}" if why else f"unknown citizen {cid}"))
    problems.sort(key=lambda p: (p.row, p.field))
    dups = [r for (r,) in con.execute("SELECT record_id FROM _typed WHERE duplicate ORDER BY row").fetchall()]
    return problems, dups
