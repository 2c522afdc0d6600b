"""The store: one DuckDB file, one writer, append-only facts.

Facts (citizens, relation changes, records, retractions, rulebook versions) are only ever appended; the
engine's results (ledger, list entries, score log) are derived tables it recomputes (the record
ledger it extends with the new records' entries while the rulebooks stay the same), so any
past standing can be recomputed from the facts. Records are kept physically clustered by citizen
(each batch is written in citizen order, and `compact` rewrites the table in that order), so the
engine's per-citizen sums read a citizen's records together; the order changes no result. Every
batch is validated set-wise in SQL against the catalog before anything is written: a batch with any
bad row is rejected whole, with every problem. Relations are dated: a tie begins and ends by appended
facts (`add_relations`, `end_relations`, the only writers besides registration), never by a deletion.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from sqlglot import exp

from socialcredit import frames, ids, schema, text
from socialcredit.catalog import Catalog, default_catalog
from socialcredit.clock import EARLIEST, utc_naive
from socialcredit.rulebook import Layer, RulebookSet, parse_layer, shipped_dir
from socialcredit.sqltemplates import create_temp, fill, union_all
from socialcredit.store.ingest import BatchRejected, Problem
from socialcredit.yamlio import LocatedError, first_of

DEFAULT_DB = "socialcredit.duckdb"


def default_path() -> Path:
    return Path(os.environ.get("SOCIALCREDIT_DB") or DEFAULT_DB)


# DuckDB's words when another process has the file open: 'Could not set lock on file "…": Conflicting lock is
# held in /usr/bin/python3.11 (PID 4242)' (an IOException, the same for read-only and read-write opens)
_LOCK_HELD = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")


class StoreLocked(RuntimeError):
    """Another process has the store's file open. DuckDB lets one process at a time open a file (even to
    read), so while `socialcredit serve` runs on a store, every other process is refused; the message says
    who holds it and what to do instead of DuckDB's lock error."""

    def __init__(self, path: Path, pid: int, program: str) -> None:
        self.path = path
        self.pid = pid
        self.program = program
        super().__init__(
            f"{path}: the store is held by another process (PID {pid}: {program}); DuckDB lets only one process "
            f"open a store file. Stop that process, or, if it is `socialcredit serve`, ask the running service "
            f"through its HTTP API (/api/v1, described at /docs) instead."
        )


def _command_line(pid: int, fallback: str) -> str:
    """What process `pid` is, from /proc where there is one (Linux); DuckDB's own word otherwise."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return fallback
    words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    return " ".join(words) or fallback


def connect(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file; a file another process holds raises StoreLocked (naming the holder), not IOException."""
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as e:
        held = _LOCK_HELD.search(str(e))
        if held is None:
            raise
        pid = int(held["pid"])
        raise StoreLocked(Path(path), pid, _command_line(pid, held["program"])) from None


@dataclass
class IngestReport:
    batch: int | None
    accepted: int
    duplicates: int
    duplicate_ids: list[str] = field(default_factory=list)
    citizens: list[str] = field(default_factory=list)
    """the resident IDs the stored records are about, as stored (at most 1,000): what an audit entry names"""


# What a generated population knows beyond the registry (income, occupation, household), kept out of the
# citizens table so the registry's shape stays what every other part of the system reads.
@functools.lru_cache(maxsize=512)
def _parsed(source: str, origin: str) -> Layer:
    """A stored version's layer, parsed once per process: layers are immutable once parsed, and every new
    `Store` of the same file (a CLI call, a preview's scratch copy) would otherwise parse them all again."""
    return parse_layer(source, origin)


# what a registry row may carry (add_citizens); anything else is refused, not silently dropped
CITIZEN_FIELDS = frozenset(
    {"citizen_id", "name", "name_latin", "sex", "birth_date", "city", "parents", "spouse", "contacts"}
)

# add_population's input columns and the SQL type each is read as; a missing optional column is NULL
_POP_REQUIRED = {
    "ckey": "BIGINT",
    "citizen_id": "VARCHAR",
    "name": "VARCHAR",
    "sex": "VARCHAR",
    "birth_date": "DATE",
    "city": "VARCHAR",
}
_POP_OPTIONAL = {
    "name_latin": "VARCHAR",
    "avatar_seed": "BIGINT",
    "income_decile": "INTEGER",
    "occupation": "VARCHAR",
    "household": "BIGINT",
}
_REL_REQUIRED = {"ckey": "BIGINT", "other": "BIGINT", "kind": "VARCHAR"}
_MIRROR = {"parent": "child", "child": "parent", "spouse": "spouse", "contact": "contact"}
_MAX_PROBLEMS = 1000  # a systematically broken million-row batch is reported by its first problems
# When a tie registered with the citizens began: the register says who is related, not since when, so such a
# tie is in force as far back as the system reasons (clock.EARLIEST), as every tie was before relations had
# dates; a store made before then gets the same start for its ties (`_migrate_relations`), so no result moves.
UNDATED = utc_naive(EARLIEST)


@functools.cache
def _on_demand_ddl(name: str) -> str:
    """The `CREATE TABLE IF NOT EXISTS` of an on-demand table, generated by sqlglot once per process."""
    return schema.create(schema.ON_DEMAND[name])


def _id_problem(col: exp.Expression) -> exp.Expression:
    """ids.problem in SQL for a whole column at once: the same checks in the same order, the same words."""
    digits = [
        fill("(ord(substr($c, $at, 1)) - 48) * $weight", c=col.copy(), at=i + 1, weight=w)
        for i, w in enumerate(ids.WEIGHTS)
    ]
    weighted = functools.reduce(lambda x, y: exp.Add(this=x, expression=y), digits)
    check = fill("substr($check, ($weighted) % 11 + 1, 1)", check=ids.CHECK, weighted=weighted)
    return fill(
        """CASE
        WHEN length($c) != 18 THEN 'a resident ID has 18 characters'
        WHEN NOT regexp_full_match($c, $pattern)
            THEN 'a resident ID is 6-digit region, 8-digit birth date, 3-digit sequence, check character'
        WHEN try_strptime(substr($c, 7, 8), '%Y%m%d') IS NULL
            THEN 'the birth date inside the resident ID does not exist'
        WHEN $check != substr($c, 18, 1) THEN 'wrong check character (expected ' || $check || ')'
        END""",
        c=col,
        pattern=ids.PATTERN.pattern,
        check=check,
    )


def _col(name: str, table: str | None = None) -> exp.Expression:
    return exp.column(name, table=table, quoted=True)


def _typed(columns: dict[str, str], given: tuple[str, ...]) -> list[exp.Expression]:
    """add_population's typed columns: each given one TRY_CAST to its type and `bad_<name>` where it would not
    convert; one not given NULL (never bad), but for the avatar seed, derived from the ID as add_citizens does."""
    out: list[exp.Expression] = []
    for c, t in columns.items():
        bad = exp.to_identifier(f"bad_{c}", quoted=True)
        if c in given:
            cast = exp.TryCast(this=_col(c), to=exp.DataType.build(t))
            out.append(exp.Alias(this=cast, alias=exp.to_identifier(c, quoted=True)))
            out.append(
                exp.Alias(this=fill("($c IS NOT NULL AND $cast IS NULL)", c=_col(c), cast=cast.copy()), alias=bad)
            )
        else:
            value = (
                fill("('0x' || substr(sha256(CAST(citizen_id AS VARCHAR)), 1, 12))::BIGINT")
                if c == "avatar_seed"
                else exp.cast(exp.null(), exp.DataType.build(t))
            )
            out.append(exp.Alias(this=value, alias=exp.to_identifier(c, quoted=True)))
            out.append(exp.Alias(this=exp.false(), alias=bad))
    return out


@functools.lru_cache(maxsize=64)
def _population_staging(given: tuple[str, ...]) -> str:
    """`_pop_c`, add_population's citizens typed (`_typed`) with each ID's problem, if any; generated once per
    set of columns given."""
    query = fill(
        "SELECT *, $id_problem AS id_problem FROM (SELECT _row AS row, $typed FROM _pop_c_in)",
        id_problem=_id_problem(exp.column("citizen_id")),
        typed=_typed({**_POP_REQUIRED, **_POP_OPTIONAL}, given),
    )
    return create_temp("TABLE", "_pop_c", query)


@functools.cache
def _relations_staging() -> str:
    """`_pop_r`, add_population's relations typed."""
    query = fill("SELECT _row AS row, $typed FROM _pop_r_in", typed=_typed(_REL_REQUIRED, tuple(_REL_REQUIRED)))
    return create_temp("TABLE", "_pop_r", query)


# Each relation and its mirror fall on one undirected pair (a, b) of one family (parent-child, spouse,
# contact): "forward" is (child, parent, parent) or a < b, "back" the other way. One aggregation finds
# repeats and missing mirrors at once; only the pairs with a problem are kept.
_KIND_FWD = "CASE fam WHEN 0 THEN 'parent' WHEN 1 THEN 'spouse' ELSE 'contact' END"
_KIND_BACK = "CASE fam WHEN 0 THEN 'child' WHEN 1 THEN 'spouse' ELSE 'contact' END"


@functools.cache
def _population_pairs() -> str:
    """`_pop_pairs`: the undirected pairs of add_population's relations that repeat or lack a mirror."""
    query = fill(
        """SELECT a, b, fam, count(*) FILTER (NOT is_back) AS fwd, count(*) FILTER (is_back) AS back,
               min(row) FILTER (NOT is_back) AS first_fwd, max(row) FILTER (NOT is_back) AS last_fwd,
               min(row) FILTER (is_back) AS first_back, max(row) FILTER (is_back) AS last_back
        FROM (SELECT row, fam, is_back, CASE WHEN is_back THEN other ELSE ckey END AS a,
                     CASE WHEN is_back THEN ckey ELSE other END AS b
              FROM (SELECT row, ckey, other,
                           CASE kind WHEN 'spouse' THEN 1 WHEN 'contact' THEN 2 ELSE 0 END AS fam,
                           kind = 'child' OR (kind IN ('spouse', 'contact') AND ckey > other) AS is_back
                    FROM _pop_r WHERE kind IN ($kinds) AND ckey != other))
        GROUP BY a, b, fam HAVING fwd != 1 OR back != 1""",
        kinds=list(_MIRROR),
    )
    return create_temp("TABLE", "_pop_pairs", query)


# add_population's checks beyond each column's type and presence, over `_pop_c`, `_pop_r` and `_pop_pairs`:
# (row, field, message) each; `$kinds` are the relation kinds, `$cities` the store's cities (bound)
_POPULATION_CHECKS = (
    """SELECT row, 'citizen_id', '''' || citizen_id || ''': ' || id_problem FROM _pop_c
       WHERE id_problem IS NOT NULL""",
    """SELECT c.row, 'citizen_id', c.citizen_id || ' appears twice in this batch (also row ' || d.first || ')'
       FROM _pop_c c JOIN (SELECT citizen_id, min(row) AS first FROM _pop_c GROUP BY 1 HAVING count(*) > 1) d
       USING (citizen_id) WHERE c.row > d.first""",
    """SELECT row, 'citizen_id', citizen_id || ' is already registered' FROM _pop_c
       WHERE citizen_id IN (SELECT citizen_id FROM citizens)""",
    """SELECT c.row, 'ckey', 'ckey ' || c.ckey || ' is used twice in this batch (also row ' || d.first || ')'
       FROM _pop_c c JOIN (SELECT ckey, min(row) AS first FROM _pop_c GROUP BY 1 HAVING count(*) > 1) d
       USING (ckey) WHERE c.row > d.first""",
    """SELECT row, 'city', 'unknown city ''' || city || ''' (cities: ' || array_to_string($cities, ', ') || ')'
       FROM _pop_c WHERE city != '' AND NOT list_contains($cities, city)""",
    "SELECT row, 'sex', 'must be M or F' FROM _pop_c WHERE sex != '' AND sex NOT IN ('M', 'F')",
    """SELECT row, 'sex', 'the resident ID''s sequence says ' || id_sex FROM (
         SELECT *, CASE WHEN (ord(substr(citizen_id, 17, 1)) - 48) % 2 = 1 THEN 'M' ELSE 'F' END AS id_sex
         FROM _pop_c WHERE id_problem IS NULL AND sex IN ('M', 'F')) WHERE sex != id_sex""",
    """SELECT row, 'birth_date', 'does not match the resident ID (' || id_born || ')' FROM (
         SELECT *, strptime(substr(citizen_id, 7, 8), '%Y%m%d')::DATE AS id_born
         FROM _pop_c WHERE id_problem IS NULL) WHERE birth_date != id_born""",
    """SELECT row, 'income_decile', 'an income decile is 1 to 10' FROM _pop_c
       WHERE income_decile NOT BETWEEN 1 AND 10""",
    """SELECT row, 'relations.kind', '''' || kind || ''' is not one of ' || $kinds_text
        FROM _pop_r WHERE kind != '' AND kind NOT IN ($kinds)""",
    """SELECT r.row, 'relations.ckey', 'unknown citizen: ckey ' || r.ckey || ' is not in this batch'
       FROM _pop_r r ANTI JOIN _pop_c c ON r.ckey = c.ckey WHERE r.ckey IS NOT NULL""",
    """SELECT r.row, 'relations.other', 'unknown citizen: ckey ' || r.other || ' is not in this batch'
       FROM _pop_r r ANTI JOIN _pop_c c ON r.other = c.ckey WHERE r.other IS NOT NULL""",
    "SELECT row, 'relations.other', 'a citizen is not their own relation' FROM _pop_r WHERE ckey = other",
    "SELECT last_fwd, 'relations.kind', 'repeats row ' || first_fwd FROM _pop_pairs WHERE fwd > 1",
    "SELECT last_back, 'relations.kind', 'repeats row ' || first_back FROM _pop_pairs WHERE back > 1",
    """SELECT first_fwd, 'relations.kind', 'no mirror relation (' || b || ', ' || a || ', ' || $kind_back
           || '): every relation goes both ways' FROM _pop_pairs WHERE back = 0""",
    """SELECT first_back, 'relations.kind', 'no mirror relation (' || a || ', ' || b || ', ' || $kind_fwd
           || '): every relation goes both ways' FROM _pop_pairs WHERE fwd = 0""",
    """SELECT row, 'relations.kind', 'a second spouse of ckey ' || ckey || ' (first in row ' || first || ')'
       FROM (SELECT row, ckey, min(row) OVER (PARTITION BY ckey) AS first FROM _pop_r WHERE kind = 'spouse')
       WHERE row > first""",
)


@functools.cache
def _population_checks() -> str:
    """Every check of add_population's staged batch as one query: (row, field, message, how many problems in
    all), relations last, at most _MAX_PROBLEMS + 1 rows. Generated once; the store's cities bind ($cities)."""
    checks: list[exp.Expression] = []
    for table, cols, prefix in (
        ("_pop_c", {**_POP_REQUIRED, **_POP_OPTIONAL}, ""),
        ("_pop_r", _REL_REQUIRED, "relations."),
    ):
        for col, t in cols.items():
            what = {"DATE": "a date (YYYY-MM-DD)", "VARCHAR": "text"}.get(t, "an integer")
            field, bad = exp.Literal.string(prefix + col), _col(f"bad_{col}")
            checks.append(exp.select("row", field, exp.Literal.string(f"is not {what}")).from_(table).where(bad))
            if col in _POP_REQUIRED or table == "_pop_r":
                missing = fill("($c IS NULL OR $c = '')" if t == "VARCHAR" else "$c IS NULL", c=_col(col))
                condition = fill("NOT $bad AND ($missing)", bad=bad.copy(), missing=missing)
                checks.append(
                    exp.select("row", field.copy(), exp.Literal.string("missing")).from_(table).where(condition)
                )
    kinds = list(_MIRROR)
    checks += [
        fill(
            c,
            kinds=kinds,
            kinds_text=", ".join(kinds),
            kind_fwd=fill(_KIND_FWD),
            kind_back=fill(_KIND_BACK),
            cities=exp.Placeholder(this="cities"),
        )
        for c in _POPULATION_CHECKS
    ]
    return fill(
        """SELECT *, count(*) OVER () FROM __checks AS p(row, field, message)
        ORDER BY starts_with(field, 'relations.'), row, field LIMIT $limit""",
        checks=union_all(checks),
        limit=_MAX_PROBLEMS + 1,
    ).sql("duckdb")


# Every refusal of a relation change, over `_rel_in` (the ties asked), `_rel` (with their mirrors) and
# `_rel_now` (as they stand): (row, field, message) each; `$at` is the change's time (bound)
_TIE = "'the tie (' || ckey || ', ' || other || ', ' || kind || ')'"
_RELATION_CHECKS = (
    """SELECT row, 'ckey', 'unknown citizen: ckey ' || ckey FROM _rel_in
       WHERE ckey NOT IN (SELECT ckey FROM citizens)""",
    """SELECT row, 'other', 'unknown citizen: ckey ' || other FROM _rel_in
       WHERE other NOT IN (SELECT ckey FROM citizens)""",
    "SELECT row, 'other', 'a citizen is not their own relation' FROM _rel_in WHERE ckey = other",
    """SELECT max(row), 'other', 'repeats row ' || min(row) FROM _rel
       WHERE ckey <> other GROUP BY ckey, other, kind HAVING count(*) > 1""",
)
_RELATION_CHECKS_BY_CHANGE = {
    "start": (
        """SELECT min(row), 'other', $tie || ' is already in force' FROM _rel_now
           WHERE open IS NOT NULL GROUP BY ckey, other, kind""",
        """SELECT min(row), 'at', $tie || ' last changed at ' || last || ' UTC, after this'
           FROM _rel_now WHERE last > $at GROUP BY ckey, other, kind, last""",
    ),
    "end": (
        """SELECT min(row), 'other', $tie || ' is not in force, so cannot end' FROM _rel_now
           WHERE open IS NULL GROUP BY ckey, other, kind""",
        """SELECT min(row), 'at', $tie || ' began at ' || last || ' UTC, after this' FROM _rel_now
           WHERE open IS NOT NULL AND last > $at GROUP BY ckey, other, kind, last""",
    ),
}


@functools.cache
def _relation_checks(change: str) -> str:
    """Every refusal of a relation change (`start` or `end`) as one query: distinct (row, field, message), at
    most 1,001. Generated once per kind of change; `$at` binds the change's time."""
    checks = [*_RELATION_CHECKS, *_RELATION_CHECKS_BY_CHANGE[change]]
    return fill(
        "SELECT DISTINCT * FROM __checks AS p(row, field, message) ORDER BY row, field, message LIMIT 1001",
        checks=union_all([fill(c, tie=fill(_TIE), at=exp.Placeholder(this="at")) for c in checks]),
    ).sql("duckdb")


@functools.lru_cache(maxsize=32)
def _records_insert(attrs: tuple[str, ...], every_row: bool) -> str:
    """The validated batch (`_typed`) appended to the records, clustered by citizen: the catalog's attribute
    columns in its order; `$base` (the first new rkey) and `$batch` bind.

    The new records' keys follow the batch's row order from `$base`. `every_row`: no row is a duplicate, so
    a row's key is `$base + row - 1` (staged rows are numbered 1..n), what numbering the new rows would give
    without the window's sort of the whole batch (the insert of 208,000 records: 0.275 -> 0.236 s)."""
    key = "$base + row - 1" if every_row else "$base + row_number() OVER (ORDER BY row) - 1"
    return fill(
        """INSERT INTO records
        SELECT $key, record_id, agency, ckey, jkey, bkey, occurred_at, $attrs, $batch, timezone('UTC', now()), digest
        FROM _typed WHERE NOT duplicate ORDER BY ckey, occurred_at, row""",
        key=fill(key, base=exp.Placeholder(this="base")),
        batch=exp.Placeholder(this="batch"),
        attrs=[_col(a) for a in attrs],
    ).sql("duckdb")


_RULEBOOK_CACHE: dict[tuple, RulebookSet] = {}  # parsing 1,000-rule rulebooks is slow; they are immutable


class Store:
    """The single owner of the DuckDB connection; readers go through it too."""

    def __init__(
        self,
        path: str | Path | None = None,
        catalog: Catalog | None = None,
        read_only: bool = False,
        views: bool = True,
    ) -> None:
        """Open (or create) a store. `read_only=True` opens an existing file for reading only — DuckDB refuses
        every write, and several read-only openers may share the file (not beside a writer; a served store's
        published snapshot is opened so). `views` makes the readable views on a read-only open: an analyst
        wants them, a reader process of the service does not pay ~0.2 s per snapshot for them."""
        self.path = Path(path) if path is not None else default_path()
        self.catalog = catalog or default_catalog()
        self.read_only = read_only
        if read_only and not self.path.exists():
            raise LocatedError(f"{self.path}: no store here to open read-only")
        self._main = connect(self.path, read_only=read_only)
        self._main.execute("SET TimeZone = 'Asia/Shanghai'")
        self._opener = threading.get_ident()
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._rulebooks: RulebookSet | None = None
        self._file: int | None = None  # a descriptor kept open for copies (see copy_file)
        self._in_tx = False  # a transaction is open (`transaction`): one opened inside it joins it
        if not read_only:
            self._upgrade()
        if read_only and views:  # an analyst's open: the readable views come with it (a writer asks, `readable()`)
            self.readable()

    def to_arrow(self, name: str = "citizens") -> pa.Table:
        """A readable view as Arrow: `citizens`, `relations`, `records`, `retractions`, `ledger`, `score_log`,
        `list_entries`, `decisions` or `notifications` (socialcredit.views: IDs, cities, CST-zoned times)."""
        view = f"{name}_view"
        if view not in self.readable():
            from socialcredit.views import VIEWS

            known = ", ".join(v.removesuffix("_view") for v in VIEWS)
            raise LocatedError(
                f"{name!r}: no such readable table in this store (tables: {known}; ledger, "
                "score_log and list_entries appear after the first engine run)"
            )
        return self.con.table(view).to_arrow_table()

    def to_pandas(self, name: str = "citizens") -> Any:
        """`to_arrow(name)` as a pandas DataFrame (the `pandas` extra)."""
        frames.require("pandas")
        return self.to_arrow(name).to_pandas()

    def to_polars(self, name: str = "citizens") -> Any:
        """`to_arrow(name)` as a polars DataFrame (the `polars` extra)."""
        return frames.require("polars").from_arrow(self.to_arrow(name))

    def _repr_html_(self) -> str:
        last = self.con.execute("SELECT max(as_of) FROM engine_run").fetchall()[0][0] if self.initialised else None
        return frames.fields_html(f"Store {self.path}", [
            ("opened", "read-only" if self.read_only else "read-write"),
            *(self.counts().items() if self.initialised else [("initialised", "no")]),
            ("last engine run (the store's clock)", last),
        ])  # fmt: skip

    def readable(self) -> list[str]:
        """(Re)make the readable views over the keys (socialcredit.views); their names. A read-only open makes
        them; a writer (every CLI command, the service) does not pay for them (binding the view over the
        engine's ledger costs ~0.2 s) until it asks, as `to_arrow` and `export` do."""
        from socialcredit.store.views import install

        return install(self.con, self.catalog)

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The store's connection. A read-only store is read by many threads at once (a reader process of the
        service answers on a thread pool), and DuckDB refuses a call on a connection busy with another one, so
        every other thread than the opener's reads through a cursor of its own; a writable store has one
        writer, whose doors serialise their calls (the service's lock), so it is one connection."""
        if not self.read_only or threading.get_ident() == self._opener:
            return self._main
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "con", None)
        if cur is None:
            cur = self._main.cursor()
            cur.execute("SET TimeZone = 'Asia/Shanghai'")
            with self._cursors_lock:
                self._cursors.append(cur)
            self._local.con = cur
        return cur

    @con.setter
    def con(self, value: duckdb.DuckDBPyConnection) -> None:
        """Replace the opener's connection (a fault-injection test wraps it to stop between two writes)."""
        self._main = value

    def close(self) -> None:
        with self._cursors_lock:
            for cur in self._cursors:
                cur.close()
            self._cursors.clear()
        self._main.close()
        if self._file is not None:
            os.close(self._file)
            self._file = None

    def copy_file(self, to: Path) -> int:
        """Copy the store's file (checkpointed by the caller, with no statement in flight) to `to`; its size.

        DuckDB keeps other processes out of the file with a POSIX record lock, and POSIX drops every lock a
        process holds on a file when the process closes *any* descriptor of it: `shutil.copyfile(path)` in the
        serving process would let a second process open the store read-write. So copies read through one
        descriptor opened once and closed only with the store."""
        if self._file is None:
            self._file = os.open(self.path, os.O_RDONLY)
        size = os.fstat(self._file).st_size
        with open(to, "wb") as out:
            done = 0
            while done < size:
                n = os.sendfile(out.fileno(), self._file, done, size - done)
                if n == 0:
                    break
                done += n
        return size

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ schema

    @property
    def initialised(self) -> bool:
        return bool(
            self.con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'records'").fetchall()[
                0
            ][0]
        )

    def init(self, load_shipped_rulebooks: bool = True) -> None:
        """Create the tables (idempotent) and load the shipped rulebooks not yet in the store."""
        with self.transaction():  # one commit: ~150 COMMENT statements cost 20 times more one by one
            self.ensure_tables()
            self.comment_tables()
        self._sync_dimensions()
        if load_shipped_rulebooks:
            known = {
                (j, v) for j, v in self.con.execute("SELECT jurisdiction, version FROM rulebook_versions").fetchall()
            }
            for path in sorted(shipped_dir().glob("*.yaml")):
                text = path.read_text(encoding="utf-8")
                layer = _parsed(text, f"rulebooks/{path.name}")
                if (layer.jurisdiction, layer.version) not in known:
                    self._insert_layer(layer, text, f"shipped:{path.name}")
            self.rulebooks()  # resolves and checks every version now, not at first use
            self._sync_dimensions()

    def _upgrade(self) -> None:
        """A store an earlier version made gets what this version declares (new fact tables, the dated
        relations) when it is opened for writing, before anything reads it: every question reads through the
        declared schema, and a table missing there was a traceback in whatever door asked first. A store not
        initialised yet is left to `init`; a read-only open cannot upgrade (the writer of a served store has)."""
        declared = {t.name for t in schema.all_tables(self.catalog)} | {v.name for v in schema.VIEWS}
        have = {
            name
            for (name,) in self._main.execute(
                """SELECT table_name FROM information_schema.tables
               WHERE table_catalog = current_database() AND table_schema = 'main'"""
            ).fetchall()
        }
        if "records" in have and not declared <= have:
            with self.transaction():
                self.ensure_tables()
                self.comment_tables()

    def ensure_tables(self, names: tuple[str, ...] | None = None) -> None:
        """Every table `socialcredit.schema` declares (or those named), created if missing (facts and the
        derived tables the engine fills, empty until its first run), so no reader needs to ask the database
        what exists."""
        tables = [t for t in schema.all_tables(self.catalog) if names is None or t.name in names]
        self.con.execute(";\n".join(schema.create(t) for t in tables))
        if names is None or "relation_changes" in names:
            self._migrate_relations()

    def ensure_on_demand(self, name: str) -> None:
        """A table `schema.ON_DEMAND` declares (keys, cases, the audit trail ...), created if missing: the
        store's modules for those facts call it before they write one (and some pages on every request)."""
        self.con.execute(_on_demand_ddl(name))

    def _migrate_relations(self) -> None:
        """The `relations` view over the relation changes; a store made when relations were an undated table
        has its ties moved into `relation_changes` first, as starts at UNDATED (what the engine then read
        them as: in force at every time), and the old table dropped, in the caller's transaction."""
        found = dict(
            self.con.execute(
                """SELECT table_name, table_type FROM information_schema.tables
               WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = 'relations'"""
            ).fetchall()
        )
        if found.get("relations") == "VIEW":
            return
        if found.get("relations") == "BASE TABLE":
            self.con.execute(
                """INSERT INTO relation_changes
                   SELECT (SELECT coalesce(max(seq) + 1, 0) FROM relation_changes)
                          + row_number() OVER (ORDER BY ckey, other, kind) - 1, ckey, other, kind, 'start', $at, NULL
                   FROM relations""",
                {"at": UNDATED},
            )
            self.con.execute("DROP TABLE relations")
        self.con.execute(";\n".join([schema.RELATIONS.create(), *schema.RELATIONS.comments()]))

    def comment_tables(self, names: tuple[str, ...] | None = None) -> None:
        """`COMMENT ON` every table and column from the schema's sentences (or those of the tables named):
        the engine replaces tables whole, and a replaced table has lost its comments. Call it inside a
        transaction (the engine's run, `init`): committed one by one they are slow."""
        tables = [t for t in schema.all_tables(self.catalog) if names is None or t.name in names]
        views = [v for v in schema.VIEWS if names is None or v.name in names]
        self.con.execute(
            ";\n".join([*(c for t in tables for c in schema.comments(t)), *(c for v in views for c in v.comments())])
        )

    def _sync_dimensions(self) -> None:
        """A key for every behaviour the catalog names and every city a rulebook names, new ones numbered
        after the last (keys, once given, never change: every fact and derived row holds them)."""
        have = {c for (c,) in self.con.execute("SELECT code FROM behaviours").fetchall()}
        n = self.con.execute("SELECT coalesce(max(bkey) + 1, 0) FROM behaviours").fetchall()[0][0]
        new = [code for code in self.catalog.behaviours if code not in have]
        if new:
            # one statement with the new rows as two lists (executemany runs a statement per row)
            self.con.execute("INSERT INTO behaviours SELECT unnest(?), unnest(?)", [list(range(n, n + len(new))), new])
        have = {c for (c,) in self.con.execute("SELECT code FROM jurisdictions").fetchall()}
        n = self.con.execute("SELECT coalesce(max(jkey) + 1, 0) FROM jurisdictions").fetchall()[0][0]
        cities = [
            code
            for (code,) in self.con.execute("SELECT DISTINCT jurisdiction FROM rulebook_versions ORDER BY 1").fetchall()
            if code not in have
        ]
        if cities:
            self.con.execute(
                "INSERT INTO jurisdictions SELECT unnest(?), unnest(?), NULL", [list(range(n, n + len(cities))), cities]
            )

    def require_init(self) -> None:
        if not self.initialised:
            raise LocatedError(f"{self.path}: not a socialcredit store yet; run `socialcredit init` first")

    # ------------------------------------------------------------------ rulebooks

    def rulebooks(self) -> RulebookSet:
        if self._rulebooks is None:
            rows = self.con.execute(
                "SELECT text, origin, digest FROM rulebook_versions ORDER BY jurisdiction, version"
            ).fetchall()
            key = (id(self.catalog), tuple(d for _, _, d in rows))
            if key not in _RULEBOOK_CACHE:
                rbs = RulebookSet([_parsed(t, o) for t, o, _ in rows], self.catalog)
                rbs.all_resolved()
                if len(_RULEBOOK_CACHE) >= 4:  # a few sets: a preview's scratch copy must not evict the store's own
                    _RULEBOOK_CACHE.clear()
                _RULEBOOK_CACHE[key] = rbs
            self._rulebooks = _RULEBOOK_CACHE[key]
        return self._rulebooks

    def check_rulebook(self, text: str, origin: str) -> Layer:
        """The version `text` would add, checked in the context of every version already stored (a new
        version number, and every city still resolving), without adding it: what a preview checks first."""
        layer = _parsed(text, origin)
        rows = self.con.execute("SELECT text, origin FROM rulebook_versions").fetchall()
        existing = [_parsed(t, o) for t, o in rows]
        for e in existing:
            if e.jurisdiction == layer.jurisdiction and e.version == layer.version:
                raise LocatedError(f"{origin}:1: {layer.key} is already in the store; give it a new version")
        candidate = RulebookSet([*existing, layer], self.catalog)
        candidate.all_resolved()
        return layer

    def add_rulebook(self, text: str, origin: str) -> Layer:
        """Add one rulebook version; it is checked in the context of every version already stored."""
        layer = self.check_rulebook(text, origin)
        self._insert_layer(layer, text, origin)
        self._rulebooks = None
        self._sync_dimensions()
        return layer

    def _insert_layer(self, layer: Layer, text: str, origin: str) -> None:
        self.con.execute(
            "INSERT INTO rulebook_versions VALUES (?, ?, ?, ?, ?, timezone('UTC', now()), ?)",
            [
                layer.jurisdiction,
                layer.version,
                layer.effective_from,
                text,
                hashlib.sha256(text.encode()).hexdigest(),
                origin,
            ],
        )
        self._rulebooks = None

    # ------------------------------------------------------------------ citizens

    def add_citizens(self, citizens: list[dict[str, Any]] | pa.Table, source: str = "citizens") -> int:
        """Register citizens (and their parents, spouse, contacts); rejected whole on any problem."""
        self.require_init()
        rows = citizens.to_pylist() if isinstance(citizens, pa.Table) else list(citizens)
        problems: list[Problem] = []
        known = dict(self.con.execute("SELECT citizen_id, ckey FROM citizens").fetchall())
        cities = set(self.rulebooks().cities)
        batch_ids: dict[str, int] = {}
        for i, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                problems.append(Problem(i, "citizen", "not an object"))
                continue
            for f in ("citizen_id", "name", "sex", "birth_date", "city"):
                if row.get(f) in (None, ""):
                    problems.append(Problem(i, f, "missing"))
            unknown = sorted(set(row) - CITIZEN_FIELDS)
            if unknown:
                problems.append(
                    Problem(
                        i,
                        unknown[0],
                        f"unknown field(s) {', '.join(unknown)}; citizens have {', '.join(sorted(CITIZEN_FIELDS))}",
                    )
                )
            for f, limit in (("name", 64), ("name_latin", 128), ("city", 64), ("sex", 1)):
                if row.get(f) not in (None, "") and (why := text.problem(row[f], limit)) is not None:
                    problems.append(Problem(i, f, why))
            for f in ("parents", "contacts"):
                if row.get(f) is not None and not isinstance(row[f], list):
                    problems.append(Problem(i, f, "a list of resident IDs"))
                    row = {**row, f: None}
                    rows[i - 1] = row
            cid = row.get("citizen_id")
            if not isinstance(cid, str):
                continue
            if (why := ids.problem(cid)) is not None:
                problems.append(Problem(i, "citizen_id", f"{cid!r}: {why}"))
                continue
            if cid in known or cid in batch_ids:
                problems.append(Problem(i, "citizen_id", f"{cid} is already registered"))
            batch_ids[cid] = i
            if row.get("city") and row["city"] not in cities:
                problems.append(
                    Problem(i, "city", f"unknown city {row['city']!r} (cities: {', '.join(sorted(cities))})")
                )
            if row.get("sex") not in (None, "", "M", "F"):
                problems.append(Problem(i, "sex", "must be M or F"))
            elif row.get("sex") and ids.sex_of(cid) != row["sex"]:
                problems.append(Problem(i, "sex", f"the resident ID's sequence says {ids.sex_of(cid)}"))
            bd = row.get("birth_date")
            try:
                bdate = bd if isinstance(bd, dt.date) else dt.date.fromisoformat(str(bd))
                if bdate != ids.birth_date_of(cid):
                    problems.append(
                        Problem(i, "birth_date", f"does not match the resident ID ({ids.birth_date_of(cid)})")
                    )
            except ValueError:
                problems.append(Problem(i, "birth_date", f"{bd!r} is not a date (YYYY-MM-DD)"))
        everyone = set(known) | set(batch_ids)
        for i, row in enumerate(rows, start=1):
            if not isinstance(row, dict):  # named above; it has no ties to check
                continue
            for f in ("parents", "contacts"):
                for other in row.get(f) or []:
                    if other not in everyone:
                        problems.append(Problem(i, f, f"unknown citizen {other!r}"))
            sp = row.get("spouse")
            if sp and sp not in everyone:
                problems.append(Problem(i, "spouse", f"unknown citizen {sp!r}"))
        if problems:
            raise BatchRejected(source, problems)
        start = self.con.execute("SELECT coalesce(max(ckey) + 1, 0) FROM citizens").fetchall()[0][0]
        jkeys = dict(self.con.execute("SELECT code, jkey FROM jurisdictions").fetchall())
        keys = dict(known)
        for n, row in enumerate(rows):
            keys[row["citizen_id"]] = start + n
        ctable = pa.table(
            {
                "ckey": pa.array([keys[r["citizen_id"]] for r in rows], pa.int32()),
                "citizen_id": [r["citizen_id"] for r in rows],
                "name": [r["name"] for r in rows],
                "name_latin": [r.get("name_latin") for r in rows],
                "sex": [r["sex"] for r in rows],
                "birth_date": pa.array([ids.birth_date_of(r["citizen_id"]) for r in rows], pa.date32()),
                "city": [r["city"] for r in rows],
                "jkey": pa.array([jkeys[r["city"]] for r in rows], pa.int16()),
                "avatar_seed": pa.array(
                    [int(hashlib.sha256(r["citizen_id"].encode()).hexdigest()[:12], 16) for r in rows], pa.int64()
                ),
            }
        )
        rel: list[tuple[int, int, str]] = []
        for r in rows:
            me = keys[r["citizen_id"]]
            for p in r.get("parents") or []:
                rel += [(me, keys[p], "parent"), (keys[p], me, "child")]
            if r.get("spouse"):
                rel += [(me, keys[r["spouse"]], "spouse"), (keys[r["spouse"]], me, "spouse")]
            for c in r.get("contacts") or []:
                rel += [(me, keys[c], "contact"), (keys[c], me, "contact")]
        rtable = pa.table(
            {
                "ckey": pa.array([x[0] for x in rel], pa.int32()),
                "other": pa.array([x[1] for x in rel], pa.int32()),
                "kind": [x[2] for x in rel],
            }
        )
        with self.transaction():
            self.con.register("_new_citizens", ctable)
            self.con.register("_new_relations", rtable)
            self.con.execute("INSERT INTO citizens SELECT * FROM _new_citizens")
            self.con.execute(
                """INSERT INTO relation_changes
                SELECT (SELECT coalesce(max(seq) + 1, 0) FROM relation_changes)
                       + row_number() OVER (ORDER BY ckey, other, kind) - 1, ckey, other, kind, 'start', $at, NULL
                FROM (SELECT DISTINCT * FROM _new_relations n
                      WHERE NOT EXISTS (SELECT 1 FROM relations r WHERE r.ckey = n.ckey AND r.other = n.other
                                        AND r.kind = n.kind AND r.valid_to IS NULL))""",
                {"at": UNDATED},
            )
            self.con.unregister("_new_citizens")
            self.con.unregister("_new_relations")
        return len(rows)

    def add_population(self, citizens: pa.Table, relations: pa.Table, source: str = "population") -> int:
        """Register a whole generated population at once: validated set-wise in SQL and written in one
        transaction, or rejected whole (BatchRejected, problems by row and field) with nothing written.

        Why beside add_citizens: that path checks and converts one citizen per Python call, fine for a
        sample, hopeless for millions. Here `citizens` (ckey, citizen_id, name, sex, birth_date, city;
        optionally name_latin, avatar_seed, income_decile, occupation, household) and `relations`
        (ckey, other, kind: parent/child/spouse/contact, every edge in both directions) are Arrow
        tables whose ckeys are local to the batch; relations may only point at citizens of the batch.
        The store gives the citizens dense ckeys continuing from its largest, in row order, numbers
        households after those already stored, and keeps income, occupation and household in
        `citizen_profiles`. A relation's problem names its row in `relations` and the field
        `relations.<column>`; a missing column is reported as row 0.
        """
        self.require_init()
        self.ensure_tables(("citizen_profiles",))
        problems = [
            Problem(0, col, f"the {table} table has no column {col!r}")
            for table, have, need in (
                ("citizens", citizens.column_names, _POP_REQUIRED),
                ("relations", relations.column_names, _REL_REQUIRED),
            )
            for col in need
            if col not in have
        ]
        if problems:
            raise BatchRejected(source, problems)
        rows = pa.array(np.arange(1, citizens.num_rows + 1))
        self.con.register("_pop_c_in", citizens.append_column("_row", rows))
        self.con.register("_pop_r_in", relations.append_column("_row", pa.array(np.arange(1, relations.num_rows + 1))))
        try:
            self._stage_population(citizens.column_names)
            problems = self._population_problems()
            if problems:
                raise BatchRejected(source, problems)
            self._append_population()
        finally:
            self.con.unregister("_pop_c_in")
            self.con.unregister("_pop_r_in")
            self.con.execute(
                "DROP TABLE IF EXISTS _pop_c; DROP TABLE IF EXISTS _pop_r; DROP TABLE IF EXISTS _pop_pairs"
            )
        return citizens.num_rows

    def _stage_population(self, columns: list[str]) -> None:
        """Typed copies of the batch: TRY_CAST every column and flag the values that would not convert."""
        known = tuple(c for c in {**_POP_REQUIRED, **_POP_OPTIONAL} if c in columns)
        self.con.execute(_population_staging(known))
        self.con.execute(_relations_staging())

    def _population_problems(self) -> list[Problem]:
        """Every check is one set-wise query over the staged batch; all run before anything is written."""
        cities = sorted(self.rulebooks().cities)
        self.con.execute(_population_pairs())
        found = self.con.execute(_population_checks(), {"cities": cities}).fetchall()
        problems = [Problem(int(r), f, m) for r, f, m, _ in found[:_MAX_PROBLEMS]]
        if len(found) > _MAX_PROBLEMS:
            problems.append(Problem(0, "batch", f"{found[0][3] - _MAX_PROBLEMS} more problems not listed"))
        return problems

    def _append_population(self) -> None:
        """Write the staged batch (citizens, relations, profiles) under store keys, in one transaction."""
        with self.transaction():
            base = self.con.execute("SELECT coalesce(max(ckey) + 1, 0) FROM citizens").fetchall()[0][0]
            households = self.con.execute("SELECT coalesce(max(household) + 1, 0) FROM citizen_profiles").fetchall()
            self.con.execute(
                """
                INSERT INTO citizens (ckey, citizen_id, name, name_latin, sex, birth_date, city, jkey, avatar_seed)
                SELECT $base + c.row - 1, c.citizen_id, c.name, c.name_latin, c.sex, c.birth_date, c.city, j.jkey,
                       c.avatar_seed
                FROM _pop_c c JOIN jurisdictions j ON j.code = c.city ORDER BY c.row""",
                {"base": base},
            )
            dense = self.con.execute("SELECT coalesce(bool_and(ckey = row - 1), true) FROM _pop_c").fetchall()[0][0]
            # registered ties start at UNDATED; their changes are numbered on from the store's last, in row order
            seq = self.con.execute("SELECT coalesce(max(seq) + 1, 0) FROM relation_changes").fetchall()[0][0]
            params = {"base": base, "seq": seq, "at": UNDATED}
            if dense:  # local keys are 0 … n-1 in row order, as generated: no lookup needed
                self.con.execute(
                    """INSERT INTO relation_changes
                    SELECT $seq + row - 1, $base + ckey, $base + other, kind, 'start', $at, NULL FROM _pop_r""",
                    params,
                )
            else:
                self.con.execute(
                    """
                    INSERT INTO relation_changes
                    SELECT $seq + r.row - 1, $base + a.row - 1, $base + b.row - 1, r.kind, 'start', $at, NULL
                    FROM _pop_r r JOIN _pop_c a ON a.ckey = r.ckey JOIN _pop_c b ON b.ckey = r.other
                    ORDER BY r.row""",
                    params,
                )
            self.con.execute(
                """
                INSERT INTO citizen_profiles
                SELECT $base + row - 1, income_decile, occupation, household - min(household) OVER () + $households
                FROM _pop_c ORDER BY row""",
                {"base": base, "households": households[0][0]},
            )

    # ------------------------------------------------------------------ relations over time

    def add_relations(self, ckey: Any, other: Any, kind: str, at: dt.datetime, source: str = "relations") -> int:
        """Ties of one `kind` that begin at `at`: `other[i]` becomes `kind` to `ckey[i]` (and `ckey[i]` the
        mirror kind to `other[i]`), appended as `start` facts; how many ties. Refused whole (BatchRejected,
        rows numbered from 1) when a citizen is unknown, a tie is its own, repeated, already in force, or
        would begin before its last change. `at`: naive UTC, or aware."""
        return self._change_relations("start", ckey, other, kind, at, source)

    def end_relations(self, ckey: Any, other: Any, kind: str, at: dt.datetime, source: str = "relations") -> int:
        """Ties of one `kind` in force that end at `at` (and their mirrors), appended as `end` facts naming the
        start each ends: nothing is deleted, so the tie stays readable for the times it was in force. Refused
        whole when a tie is not in force or began after `at`."""
        return self._change_relations("end", ckey, other, kind, at, source)

    def _change_relations(self, change: str, ckey: Any, other: Any, kind: str, at: dt.datetime, source: str) -> int:
        self.require_init()
        a = np.asarray(ckey, dtype=np.int64).reshape(-1)
        b = np.asarray(other, dtype=np.int64).reshape(-1)
        if kind not in _MIRROR:
            raise BatchRejected(source, [Problem(0, "kind", f"{kind!r} is not one of {', '.join(_MIRROR)}")])
        if a.shape != b.shape:
            raise BatchRejected(source, [Problem(0, "other", f"{b.size} others for {a.size} citizens")])
        if not a.size:
            return 0
        when = utc_naive(at)
        self.con.register("_rel_in", pa.table({"row": np.arange(1, a.size + 1), "ckey": a, "other": b}))
        params: dict[str, object] = {"kind": kind, "mirror": _MIRROR[kind]}
        try:
            self.con.execute(
                """CREATE OR REPLACE TEMP TABLE _rel AS
                   SELECT row, 0 AS dir, ckey, other, $kind AS kind FROM _rel_in
                   UNION ALL SELECT row, 1, other, ckey, $mirror FROM _rel_in""",
                params,
            )
            # the ties concerned as they stand: the open start of each, and the time of its last change
            self.con.execute(
                """CREATE OR REPLACE TEMP TABLE _rel_now AS
                   SELECT r.row, r.dir, r.ckey, r.other, r.kind, max(c.changed_at) AS last,
                          max(c.seq) FILTER (WHERE c.change = 'start' AND e.ends IS NULL) AS open
                   FROM _rel r LEFT JOIN relation_changes c ON c.ckey = r.ckey AND c.other = r.other
                        AND c.kind = r.kind
                   LEFT JOIN (SELECT ends FROM relation_changes WHERE change = 'end') e ON e.ends = c.seq
                   GROUP BY r.row, r.dir, r.ckey, r.other, r.kind"""
            )
            found = self.con.execute(_relation_checks(change), {"at": when}).fetchall()
            if found:
                raise BatchRejected(source, [Problem(int(r), f, m) for r, f, m in found[:_MAX_PROBLEMS]])
            with self.transaction():
                seq = self.con.execute("SELECT coalesce(max(seq) + 1, 0) FROM relation_changes").fetchall()[0][0]
                self.con.execute(
                    """INSERT INTO relation_changes
                       SELECT $seq + row_number() OVER (ORDER BY row, dir) - 1, ckey, other, kind,
                              $change, $at, CASE WHEN $change = 'end' THEN open END
                       FROM _rel_now ORDER BY row, dir""",
                    {"seq": seq, "change": change, "at": when},
                )
        finally:
            self.con.unregister("_rel_in")
            self.con.execute("DROP TABLE IF EXISTS _rel; DROP TABLE IF EXISTS _rel_now")
        return int(a.size)

    def transaction(self) -> _Tx:
        return _Tx(self)

    def ckey(self, citizen_id: str) -> int:
        why = ids.problem(citizen_id)  # a malformed ID (or one that is not even text) never reaches SQL
        if why is not None:
            raise LocatedError(f"citizen {citizen_id!r}: {why}")
        found = self.con.execute("SELECT ckey FROM citizens WHERE citizen_id = ?", [citizen_id]).fetchall()
        if not found:
            raise LocatedError(f"citizen {citizen_id!r}: no such citizen in the store")
        return int(found[0][0])

    # ------------------------------------------------------------------ records

    def ingest(
        self,
        source: str | Path | pa.Table | list[dict[str, Any]],
        name: str | None = None,
        now: dt.datetime | None = None,
    ) -> IngestReport:
        """Append a batch of records: all valid and new, or nothing (see BatchRejected)."""
        from socialcredit.store.ingest import stage_batch, validate_stage

        self.require_init()
        label = name or (str(source) if isinstance(source, (str, Path)) else "batch")
        stage_batch(self, source, label)
        try:
            problems, dup_ids = validate_stage(self, now)
            if problems:
                raise BatchRejected(label, problems)
            return self._append_stage(label, dup_ids)
        finally:
            self.con.execute("DROP TABLE IF EXISTS _stage; DROP TABLE IF EXISTS _typed; DROP TABLE IF EXISTS _stored")

    def _append_stage(self, label: str, dup_ids: list[str]) -> IngestReport:
        attrs = list(self.catalog.attributes)
        counted = "SELECT count(*) FILTER (WHERE NOT duplicate), count(*) FROM _typed"
        new, staged = self.con.execute(counted).fetchall()[0]
        if new == 0:
            return IngestReport(None, 0, len(dup_ids), dup_ids)
        about = [
            c
            for (c,) in self.con.execute(
                "SELECT DISTINCT citizen_id FROM _typed WHERE NOT duplicate ORDER BY 1 LIMIT 1000"
            ).fetchall()
        ]
        with self.transaction():
            batch = self.con.execute("SELECT coalesce(max(batch) + 1, 1) FROM batches").fetchall()[0][0]
            base = self.con.execute("SELECT coalesce(max(rkey) + 1, 0) FROM records").fetchall()[0][0]
            self.con.execute(_records_insert(tuple(attrs), new == staged), {"base": base, "batch": batch})
            self.con.execute(
                "INSERT INTO batches VALUES (?, ?, timezone('UTC', now()), ?, ?)", [batch, label, new, len(dup_ids)]
            )
        return IngestReport(batch, new, len(dup_ids), dup_ids, about)

    def compact(self) -> bool:
        """Rewrite the records table clustered by (ckey, occurred_at, rkey), like a CLUSTER; a no-op when no
        record arrived since the last compaction. Contents, keys and every result stay the same; only the
        physical order changes, so the engine's per-citizen aggregation reads each citizen's records
        together (and DuckDB's zone maps on ckey become selective for one citizen's explanation).
        Returns whether the table was rewritten."""
        self.require_init()
        mark = str(self.con.execute("SELECT coalesce(max(rkey), -1) || '/' || count(*) FROM records").fetchall()[0][0])
        done = self.con.execute("SELECT value FROM meta WHERE key = 'records_clustered'").fetchall()
        if done and done[0][0] == mark:
            return False
        with self.transaction():
            self.con.execute("CREATE TABLE records_clustered AS SELECT * FROM records ORDER BY ckey, occurred_at, rkey")
            self.con.execute("DROP TABLE records")
            self.con.execute("ALTER TABLE records_clustered RENAME TO records")
            self.con.execute("DELETE FROM meta WHERE key = 'records_clustered'")
            self.con.execute("INSERT INTO meta VALUES ('records_clustered', ?)", [mark])
        self.con.execute("CHECKPOINT")
        return True

    def retract(self, agency: str, record_ids: list[str], reason: str, requested_by: str) -> int:
        """Withdraw records (objection upheld, agency correction); the records themselves stay."""
        rows = self.con.execute(
            "SELECT record_id, rkey FROM records WHERE agency = ? AND record_id IN (SELECT unnest(?))",
            [agency, record_ids],
        ).fetchall()
        found = dict(rows)
        missing = [r for r in record_ids if r not in found]
        if missing:
            raise LocatedError(f"retract: agency {agency!r} has no records {first_of(missing)}")
        with self.transaction():
            for rid in record_ids:
                self.con.execute(
                    """INSERT INTO retractions SELECT ?, ?, ?, timezone('UTC', now()), ?, ?
                    WHERE NOT EXISTS (SELECT 1 FROM retractions WHERE rkey = ?)""",
                    [found[rid], agency, rid, reason, requested_by, found[rid]],
                )
        return len(record_ids)

    def counts(self) -> dict[str, int]:
        out = {}
        for t in ("citizens", "relations", "records", "retractions", "rulebook_versions", "decisions"):
            out[t] = self.con.table(t).count("*").fetchall()[0][0]
        return out


class _Tx:
    """A transaction on the store's connection; one opened inside another joins it (the outer one commits or
    rolls back), so a caller can make several of the store's writes one change (contact avoidance ends some
    ties and starts others at once)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.con = store.con
        self.outer = False

    def __enter__(self) -> None:
        self.outer = not self.store._in_tx
        if self.outer:
            self.con.execute("BEGIN TRANSACTION")
            self.store._in_tx = True

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self.outer:
            self.store._in_tx = False
            self.con.execute("ROLLBACK" if exc_type else "COMMIT")
