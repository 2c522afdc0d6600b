"""Registering citizens: one by one with their ties (`add_citizens`: a sample, a form), or a whole generated
population set-wise in SQL (`add_population`: millions at once).

Both are the store's (`Store.add_citizens`, `Store.add_population`, which say what each takes); they live
here because their checks and statements are most of the store's own text. Either writes everything in
one transaction or nothing: a batch with any problem is rejected whole, with every problem by row and field.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from socialcredit import ids, text
from socialcredit.clock import EARLIEST, utc_naive
from socialcredit.sqltemplates import create_temp, fill, union_all
from socialcredit.store.ingest import BatchRejected, Problem
from socialcredit.store.relations import MAX_PROBLEMS, MIRROR, Registry

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
# When a tie registered with the citizens began: the register says who is related, not since when, so such a
# tie is in force as far back as the system reasons (clock.EARLIEST), as every tie was before relations had
# dates; a store made before then gets the same start for its ties (`Store._migrate_relations`), so no result moves.
UNDATED = utc_naive(EARLIEST)


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
        kinds=list(MIRROR),
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
    all), relations last, at most MAX_PROBLEMS + 1 rows. Generated once; the store's cities bind ($cities)."""
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
    kinds = list(MIRROR)
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
        limit=MAX_PROBLEMS + 1,
    ).sql("duckdb")


def add_citizens(store: Registry, citizens: list[dict[str, Any]] | pa.Table, source: str = "citizens") -> int:
    """`Store.add_citizens`: each row checked in Python (a sample's or a form's few), then the citizens and
    their ties (each tie and its mirror, started at UNDATED) written in one transaction."""
    store.require_init()
    rows = citizens.to_pylist() if isinstance(citizens, pa.Table) else list(citizens)
    problems: list[Problem] = []
    known = dict(store.con.execute("SELECT citizen_id, ckey FROM citizens").fetchall())
    cities = set(store.rulebooks().cities)
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
            problems.append(Problem(i, "city", f"unknown city {row['city']!r} (cities: {', '.join(sorted(cities))})"))
        if row.get("sex") not in (None, "", "M", "F"):
            problems.append(Problem(i, "sex", "must be M or F"))
        elif row.get("sex") and ids.sex_of(cid) != row["sex"]:
            problems.append(Problem(i, "sex", f"the resident ID's sequence says {ids.sex_of(cid)}"))
        bd = row.get("birth_date")
        try:
            bdate = bd if isinstance(bd, dt.date) else dt.date.fromisoformat(str(bd))
            if bdate != ids.birth_date_of(cid):
                problems.append(Problem(i, "birth_date", f"does not match the resident ID ({ids.birth_date_of(cid)})"))
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
    start = store.con.execute("SELECT coalesce(max(ckey) + 1, 0) FROM citizens").fetchall()[0][0]
    jkeys = dict(store.con.execute("SELECT code, jkey FROM jurisdictions").fetchall())
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
    with store.transaction():
        store.con.register("_new_citizens", ctable)
        store.con.register("_new_relations", rtable)
        store.con.execute("INSERT INTO citizens SELECT * FROM _new_citizens")
        store.con.execute(
            """INSERT INTO relation_changes
            SELECT (SELECT coalesce(max(seq) + 1, 0) FROM relation_changes)
                   + row_number() OVER (ORDER BY ckey, other, kind) - 1, ckey, other, kind, 'start', $at, NULL
            FROM (SELECT DISTINCT * FROM _new_relations n
                  WHERE NOT EXISTS (SELECT 1 FROM relations r WHERE r.ckey = n.ckey AND r.other = n.other
                                    AND r.kind = n.kind AND r.valid_to IS NULL))""",
            {"at": UNDATED},
        )
        store.con.unregister("_new_citizens")
        store.con.unregister("_new_relations")
    return len(rows)


def add_population(store: Registry, citizens: pa.Table, relations: pa.Table, source: str = "population") -> int:
    """`Store.add_population` (which says what the tables hold): the columns present, the batch typed and
    checked set-wise (`_stage`, `_problems`), then written in one transaction (`_append`)."""
    store.require_init()
    store.ensure_tables(("citizen_profiles",))
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
    store.con.register("_pop_c_in", citizens.append_column("_row", rows))
    store.con.register("_pop_r_in", relations.append_column("_row", pa.array(np.arange(1, relations.num_rows + 1))))
    try:
        _stage(store, citizens.column_names)
        problems = _problems(store)
        if problems:
            raise BatchRejected(source, problems)
        _append(store)
    finally:
        store.con.unregister("_pop_c_in")
        store.con.unregister("_pop_r_in")
        store.con.execute("DROP TABLE IF EXISTS _pop_c; DROP TABLE IF EXISTS _pop_r; DROP TABLE IF EXISTS _pop_pairs")
    return citizens.num_rows


def _stage(store: Registry, columns: list[str]) -> None:
    """Typed copies of the batch: TRY_CAST every column and flag the values that would not convert."""
    known = tuple(c for c in {**_POP_REQUIRED, **_POP_OPTIONAL} if c in columns)
    store.con.execute(_population_staging(known))
    store.con.execute(_relations_staging())


def _problems(store: Registry) -> list[Problem]:
    """Every check is one set-wise query over the staged batch; all run before anything is written."""
    cities = sorted(store.rulebooks().cities)
    store.con.execute(_population_pairs())
    found = store.con.execute(_population_checks(), {"cities": cities}).fetchall()
    problems = [Problem(int(r), f, m) for r, f, m, _ in found[:MAX_PROBLEMS]]
    if len(found) > MAX_PROBLEMS:
        problems.append(Problem(0, "batch", f"{found[0][3] - MAX_PROBLEMS} more problems not listed"))
    return problems


def _append(store: Registry) -> None:
    """Write the staged batch (citizens, relations, profiles) under store keys, in one transaction."""
    with store.transaction():
        base = store.con.execute("SELECT coalesce(max(ckey) + 1, 0) FROM citizens").fetchall()[0][0]
        households = store.con.execute("SELECT coalesce(max(household) + 1, 0) FROM citizen_profiles").fetchall()
        store.con.execute(
            """
            INSERT INTO citizens (ckey, citizen_id, name, name_latin, sex, birth_date, city, jkey, avatar_seed)
            SELECT $base + c.row - 1, c.citizen_id, c.name, c.name_latin, c.sex, c.birth_date, c.city, j.jkey,
                   c.avatar_seed
            FROM _pop_c c JOIN jurisdictions j ON j.code = c.city ORDER BY c.row""",
            {"base": base},
        )
        dense = store.con.execute("SELECT coalesce(bool_and(ckey = row - 1), true) FROM _pop_c").fetchall()[0][0]
        # registered ties start at UNDATED; their changes are numbered on from the store's last, in row order
        seq = store.con.execute("SELECT coalesce(max(seq) + 1, 0) FROM relation_changes").fetchall()[0][0]
        params = {"base": base, "seq": seq, "at": UNDATED}
        if dense:  # local keys are 0 … n-1 in row order, as generated: no lookup needed
            store.con.execute(
                """INSERT INTO relation_changes
                SELECT $seq + row - 1, $base + ckey, $base + other, kind, 'start', $at, NULL FROM _pop_r""",
                params,
            )
        else:
            store.con.execute(
                """
                INSERT INTO relation_changes
                SELECT $seq + r.row - 1, $base + a.row - 1, $base + b.row - 1, r.kind, 'start', $at, NULL
                FROM _pop_r r JOIN _pop_c a ON a.ckey = r.ckey JOIN _pop_c b ON b.ckey = r.other
                ORDER BY r.row""",
                params,
            )
        store.con.execute(
            """
            INSERT INTO citizen_profiles
            SELECT $base + row - 1, income_decile, occupation, household - min(household) OVER () + $households
            FROM _pop_c ORDER BY row""",
            {"base": base, "households": households[0][0]},
        )
