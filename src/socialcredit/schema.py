"""The store's tables, declared once: every fact and derived table, its columns, their types and what they mean.

The store creates its tables from here (`Store.init`), the engine's steps build their empty tables and
typed columns from here, and the comments go into the database (`COMMENT ON`), so an analyst browsing the
store reads the same sentence as a developer reading this file. Nothing learns what exists by probing the
database's catalog: what a table holds is what this module says.

Types are written as SQL type names that sqlglot reads and writes for every executed dialect.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from socialcredit.catalog import Catalog

ATTRIBUTE_TYPES = {"int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN", "str": "VARCHAR"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    comment: str


@dataclass(frozen=True)
class Table:
    name: str
    comment: str
    columns: tuple[Column, ...]
    derived: bool = False

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def empty(self) -> exp.Select:
        """A query with this table's columns, typed, and no rows: how a step starts a table it fills."""
        return exp.select(*[exp.cast(exp.null(), c.type).as_(c.name) for c in self.columns]).where(exp.false())


def _t(name: str, comment: str, cols: str, derived: bool = False) -> Table:
    """A table from lines `name TYPE -- comment` (a compact way to keep one sentence per column)."""
    columns = []
    for line in cols.strip().splitlines():
        decl, _, note = line.partition("--")
        col, typ = decl.split(None, 1)
        columns.append(Column(col.strip(), typ.strip(), note.strip()))
    return Table(name, comment, tuple(columns), derived)


_LIST_ENTRY_COLUMNS = """
ckey INTEGER -- the citizen
jkey SMALLINT -- the city whose rulebook put them there
list_id VARCHAR -- the list (rulebook list id)
kind VARCHAR -- blacklist, whitelist or watchlist
start TIMESTAMP -- when the stay began (UTC)
end TIMESTAMP -- when it ended (UTC); NULL while it lasts
cause VARCHAR -- behaviour, characteristic or grade: what put them on it
rkey BIGINT -- the record behind a behaviour or characteristic stay
characteristic VARCHAR -- the characteristic behind a characteristic stay
grade VARCHAR -- the grade behind a grade stay
score INTEGER -- the score at a grade stay's entry
version VARCHAR -- the rulebook versions in force at entry
"""

FACTS: tuple[Table, ...] = (
    _t(
        "jurisdictions",
        "Cities and provinces that have rulebooks, with their small integer keys.",
        """
jkey SMALLINT -- the jurisdiction's key in every other table
code VARCHAR -- its rulebook jurisdiction code
level VARCHAR -- national, province or city
""",
    ),
    _t(
        "behaviours",
        "The catalog's behaviours, with their small integer keys.",
        """
bkey SMALLINT -- the behaviour's key in every other table
code VARCHAR -- its catalog code
""",
    ),
    _t(
        "citizens",
        "The population register (synthetic people only).",
        """
ckey INTEGER -- the citizen's dense integer key
citizen_id VARCHAR -- the 18-character resident ID
name VARCHAR -- name as registered
name_latin VARCHAR -- name in Latin letters
sex VARCHAR -- as registered
birth_date DATE -- as registered
city VARCHAR -- the city of registration (rulebook jurisdiction code)
jkey SMALLINT -- that city's key
avatar_seed BIGINT -- seed for the generated portrait
""",
    ),
    _t(
        "citizen_profiles",
        "What a simulated population knows of each citizen beyond the register (`Store.add_population`).",
        """
ckey INTEGER -- the citizen
income_decile TINYINT -- income decile among adults, 1 (lowest) to 10; NULL for a child
occupation VARCHAR -- occupation
household BIGINT -- the household they live in (numbered by the store)
""",
    ),
    _t(
        "relation_changes",
        "Ties between citizens beginning and ending, as dated facts (append-only; the view `relations` pairs them).",
        """
seq BIGINT -- the change's number, increasing with arrival: a resumed engine run reads the changes after its last
ckey INTEGER -- the citizen
other INTEGER -- the related citizen
kind VARCHAR -- parent, child, spouse or contact (what `other` is to `ckey`; the mirror is another change)
change VARCHAR -- start (the tie begins) or end (it ends)
changed_at TIMESTAMP -- when the tie began or ended (UTC)
ends BIGINT -- on an end, the seq of the start it ends; NULL on a start
""",
    ),
    _t(
        "retractions",
        "Records an agency withdrew; the ledger ignores them from then on (append-only).",
        """
rkey BIGINT -- the withdrawn record
agency VARCHAR -- the agency that withdrew it
record_id VARCHAR -- the agency's record ID
retracted_at TIMESTAMP -- when (UTC)
reason VARCHAR -- the reason given
requested_by VARCHAR -- who asked
""",
    ),
    _t(
        "batches",
        "Each ingest: its source and what it added.",
        """
batch INTEGER -- the batch number
source VARCHAR -- the file or feed it came from
received_at TIMESTAMP -- when (UTC)
accepted INTEGER -- records stored
duplicates INTEGER -- records already stored, skipped
""",
    ),
    _t(
        "rulebook_versions",
        "Every rulebook layer loaded, with its text (append-only).",
        """
jurisdiction VARCHAR -- the layer's jurisdiction
version INTEGER -- its version number
effective_from DATE -- CST date it takes effect
text VARCHAR -- the YAML text as loaded
digest VARCHAR -- sha256 of the text
loaded_at TIMESTAMP -- when (UTC)
origin VARCHAR -- the file it came from
""",
    ),
    _t(
        "decisions",
        "Each service decision asked of the system, with its outcome and reasons.",
        """
decision_id BIGINT -- the decision's number
ckey INTEGER -- the citizen asked about
service VARCHAR -- the service (catalog measure) asked for
asked_at TIMESTAMP -- when (UTC)
outcome VARCHAR -- granted or denied
reasons VARCHAR -- the reasons, as JSON
asked_by VARCHAR -- the asking official or service
rulebook_version VARCHAR -- the versions in force then
""",
    ),
    _t(
        "notifications",
        "What citizens were told: a listing where the city notifies, a denial everywhere.",
        """
ckey INTEGER -- the citizen told
sent_at TIMESTAMP -- when (UTC)
kind VARCHAR -- listed (rewritten by every engine run) or denied
message VARCHAR -- the text sent
""",
    ),
    _t(
        "meta",
        "Store settings and markers (key, value).",
        """
key VARCHAR -- the setting
value VARCHAR -- its value
""",
    ),
)

DERIVED: tuple[Table, ...] = (
    _t(
        "engine_run",
        "The last engine run: its as_of, pin and what it was computed from (one row).",
        """
as_of TIMESTAMP -- the time the run computed the derived tables for (UTC)
pin VARCHAR -- the rulebook versions pinned, or NULL
computed_at TIMESTAMP -- when the run finished (UTC)
watermark VARCHAR -- the facts' counts then: a change means the derived tables are stale
facts VARCHAR -- the facts other than records, fingerprinted (resuming needs them unchanged)
state VARCHAR -- the compiled rulebooks and engine format, fingerprinted
first_assessment TIMESTAMP -- the first monthly assessment (UTC)
next_record TIMESTAMP -- the first stored record after as_of, when the run ended
carried_at TIMESTAMP -- the month whose end state engine_carry holds, or NULL
kept VARCHAR -- the row counts of the state tables it left: a run resumes only from those, untouched
""",
        derived=True,
    ),
    _t(
        "record_entries",
        "The record ledger's stored rows: one per (record, piece), before caps and retractions.",
        """
ckey INTEGER -- the citizen
jkey SMALLINT -- the city whose rulebook scored it
epoch INT -- which rulebook versions were in force
rkey BIGINT -- the record
bkey SMALLINT -- its behaviour
piece INT -- the piece (set of rules met) it scored
points INT -- the points, before any cap
valid_from TIMESTAMP -- when they start to count (the record's time, UTC)
valid_to TIMESTAMP -- when they stop counting (UTC); NULL for good
""",
        derived=True,
    ),
    _t(
        "record_entries_built",
        "What record_entries and the compiled tables were made from (one row).",
        """
fingerprint VARCHAR -- the compiled SQL and decision tables that scored the rows
tables VARCHAR -- every compiled table loaded, fingerprinted
through BIGINT -- the last rkey scored
records BIGINT -- the number of records then
""",
        derived=True,
    ),
    _t(
        "state_ledger",
        "Ledger entries that come from states, not records: characteristics and the network rule.",
        """
ckey INTEGER -- the citizen
jkey SMALLINT -- the city whose rulebook gave them
epoch INT -- which rulebook versions were in force
source VARCHAR -- characteristic or network
rkey BIGINT -- the record that set the characteristic
bkey SMALLINT -- always NULL here (records' entries have it)
characteristic VARCHAR -- the characteristic
piece INT -- the piece (rules met) it scored
points INT -- the points
valid_from TIMESTAMP -- from (UTC)
valid_to TIMESTAMP -- to (UTC); NULL while it holds
""",
        derived=True,
    ),
    _t("list_entries", "Stays on blacklists, whitelists and watchlists.", _LIST_ENTRY_COLUMNS, derived=True),
    _t(
        "engine_grade_stays",
        "The grade stays as the monthly loop left them, before memory: what a resumed run starts from.",
        _LIST_ENTRY_COLUMNS,
        derived=True,
    ),
    _t(
        "score_log",
        "Scores and grades at each monthly assessment where either changed.",
        """
ckey INTEGER -- the citizen
assessed_at TIMESTAMP -- the assessment (a CST month's start, as UTC)
score INTEGER -- the score then
grade VARCHAR -- the grade then
version VARCHAR -- the rulebook versions in force
""",
        derived=True,
    ),
    _t(
        "engine_carry",
        "The monthly loop's state, updated in place; after a run, its end state (the month is "
        "engine_run.carried_at): where the next run resumes.",
        """
ckey INTEGER -- the citizen
jkey SMALLINT -- the citizen's city
raw INTEGER -- the running sum of ledger points
net INTEGER -- the network rule's points of the last month assessed
score INTEGER -- the score
grade VARCHAR -- the grade
""",
        derived=True,
    ),
    _t(
        "engine_pending",
        "Record entries' expiries after the last assessed month, for the next run.",
        """
ckey INTEGER -- the citizen
due TIMESTAMP -- when the points stop counting (UTC)
d INTEGER -- the change then (minus the points)
vf TIMESTAMP -- when they started counting (UTC)
""",
        derived=True,
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (*FACTS, *DERIVED)}

# Facts a store holds only once something writes them (`socialcredit.store` creates each before its first
# write). Their absence says something a reader uses: a run without contact avoidance has no
# `contact_changes`, a run without objections no `cases` (the report leaves those figures out), so they are
# not among the tables `Store.init` makes.
ON_DEMAND: dict[str, Table] = {
    t.name: t
    for t in (
        _t(
            "audit_log",
            "The audit trail: every write and every read of a citizen's data, hash-chained (audit.py).",
            """
seq BIGINT -- the entry's number, 1, 2, 3 ... without a gap
logged_at TIMESTAMP -- when it happened (UTC)
principal VARCHAR -- who: agency:<code>, service:<code>, citizen:<id>, admin, auditor or public
action VARCHAR -- what they did
citizen_id VARCHAR -- whose data, if a citizen's
detail VARCHAR -- the rest, as JSON with sorted keys
prev VARCHAR -- the hash of the entry before (64 zeros for the first)
hash VARCHAR -- SHA-256 over this entry's fields and prev
""",
        ),
        _t(
            "api_keys",
            "API keys: the SHA-256 digest of each token (never the token) and the principal it stands for.",
            """
key_id VARCHAR -- the key's public ID
role VARCHAR -- admin, agency, service, citizen or auditor
subject VARCHAR -- the agency, provider or resident ID the role is for
digest VARCHAR -- SHA-256 of the token, hex
created_at TIMESTAMP -- when it was made (UTC)
revoked_at TIMESTAMP -- when it was revoked (UTC); NULL while it is valid
label VARCHAR -- a note for the admin
""",
        ),
        _t(
            "cases",
            "Objections to records and applications for credit repair, and how a reviewer decided them.",
            """
case_id BIGINT -- the case's number
kind VARCHAR -- objection or repair
ckey INTEGER -- the citizen
citizen_id VARCHAR -- their resident ID
agency VARCHAR -- an objection's record's agency
record_id VARCHAR -- an objection's record
list_id VARCHAR -- a repair's list
reason VARCHAR -- the citizen's reason
filed_at TIMESTAMP -- when it was filed (UTC)
status VARCHAR -- open, upheld or rejected
reviewer VARCHAR -- who decided it
reviewed_at TIMESTAMP -- when (UTC)
note VARCHAR -- the reviewer's note
""",
        ),
        _t(
            "shipments",
            "The last batch the service's writer took from each reader process (each batch is written once).",
            """
origin VARCHAR -- the reader process
seq BIGINT -- its last batch written
""",
        ),
        _t(
            "contact_changes",
            "Contact ties a simulation's citizens dropped or made to avoid blacklisted contacts, one row per tie.",
            """
month DATE -- the month the change was made at the start of
ckey INTEGER -- one citizen of the tie (the smaller key)
other INTEGER -- the other
change VARCHAR -- drop or add
""",
        ),
    )
}


@dataclass(frozen=True)
class View:
    """A view the store declares over its facts: its columns (with comments) and its query."""

    name: str
    comment: str
    columns: tuple[Column, ...]
    query: str  # read by sqlglot (as DuckDB SQL); only table and column names, no value

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @functools.cache  # noqa: B019 (the views are module constants: nothing is kept alive that would not be)
    def create(self, dialect: str = "duckdb") -> str:
        """`CREATE OR REPLACE VIEW` for it, generated by sqlglot (once per process)."""
        return exp.Create(
            this=exp.to_table(self.name),
            kind="VIEW",
            replace=True,
            expression=sqlglot.parse_one(self.query, read="duckdb"),
        ).sql(dialect=dialect)

    @functools.cache  # noqa: B019 (as `create`)
    def comments(self, dialect: str = "duckdb") -> tuple[str, ...]:
        """`COMMENT ON` the view and each column, with the comments as sqlglot string literals."""
        return (
            exp.Comment(this=exp.to_table(self.name), kind="VIEW", expression=exp.Literal.string(self.comment)).sql(
                dialect=dialect
            ),
            *(
                exp.Comment(
                    this=exp.column(c.name, table=self.name, quoted=True),
                    kind="COLUMN",
                    expression=exp.Literal.string(c.comment),
                ).sql(dialect=dialect)
                for c in self.columns
            ),
        )


# Relations are dated, append-only facts: a tie that begins is a `start` row of `relation_changes`, one that
# ends an `end` row naming that start (both written by the store's API only: `Store.add_relations`,
# `end_relations`); nothing is updated or deleted, so any past graph can be read back. Why a table of
# changes and a view of intervals rather than intervals whose `valid_to` is filled in later: the facts stay
# append-only like records and retractions (an engine run resumes after the changes it has seen, by `seq`),
# and every reader still asks one table, `relations`, for the ties in force at a time:
# `valid_from <= t AND (valid_to IS NULL OR valid_to > t)`. The end rows are few (ties rarely end), so the
# view's join builds a small hash table; probing it still costs DuckDB about as much as the scan of the starts,
# even when there are no end rows at all, so the engine's monthly read of the contacts reads the start rows
# alone before the first tie ends (`engine.grades.network_share`).
RELATIONS = View(
    "relations",
    "Ties between citizens, parents, children, spouses, contacts (both directions), each with when it was in force.",
    _t(
        "relations",
        "",
        """
ckey INTEGER -- the citizen
other INTEGER -- the related citizen
kind VARCHAR -- parent, child, spouse or contact (what `other` is to `ckey`)
valid_from TIMESTAMP -- when the tie began (UTC); ties registered with the citizens, undated, from clock.EARLIEST
valid_to TIMESTAMP -- when it ended (UTC); NULL while it is in force
""",
    ).columns,
    """SELECT s.ckey, s.other, s.kind, s.changed_at AS valid_from, e.changed_at AS valid_to
       FROM relation_changes AS s
       LEFT JOIN (SELECT ends, changed_at FROM relation_changes WHERE change = 'end') AS e ON e.ends = s.seq
       WHERE s.change = 'start'""",
)
VIEWS: tuple[View, ...] = (RELATIONS,)


def records(catalog: Catalog) -> Table:
    """The records table: its fixed columns and one column per catalog attribute, in between."""
    head = _t(
        "records",
        "Acts reported by agencies, one row each (append-only).",
        """
rkey BIGINT -- the record's key, increasing with arrival
record_id VARCHAR -- the agency's record ID
agency VARCHAR -- the reporting agency
ckey INTEGER -- the citizen
jkey SMALLINT -- the citizen's city then
bkey SMALLINT -- the behaviour
occurred_at TIMESTAMP -- when it happened (UTC)
""",
    )
    attrs = tuple(
        Column(a.name, ATTRIBUTE_TYPES[a.type], f"catalog attribute ({a.type})") for a in catalog.attributes.values()
    )
    tail = _t(
        "records",
        "",
        """
batch INTEGER -- the ingest batch it came in
ingested_at TIMESTAMP -- when it was stored (UTC)
""",
    )
    return Table("records", head.comment, (*head.columns, *attrs, *tail.columns))


def characteristic_intervals(catalog: Catalog) -> Table:
    """State characteristics as intervals, with the attributes any characteristic carries."""
    attrs = sorted({a for ch in catalog.characteristics.values() for a in ch.attributes})
    head = _t(
        "characteristic_intervals",
        "State characteristics as intervals: from a setting record to its end.",
        """
ckey INTEGER -- the citizen
jkey SMALLINT -- the city of the setting record
characteristic VARCHAR -- the characteristic
rkey BIGINT -- the record that set it
start TIMESTAMP -- from (UTC)
end TIMESTAMP -- to (UTC): the clearing record or the term's end; NULL while it holds
""",
        derived=True,
    )
    cols = tuple(
        Column(a, ATTRIBUTE_TYPES[catalog.attributes[a].type], "the setting record's attribute") for a in attrs
    )
    return Table(head.name, head.comment, (*head.columns, *cols), derived=True)


def all_tables(catalog: Catalog) -> list[Table]:
    """Every table the store holds for this catalog, facts first."""
    return [*FACTS, records(catalog), *DERIVED, characteristic_intervals(catalog)]


@functools.lru_cache(maxsize=256)
def create(table: Table, dialect: str = "duckdb") -> str:
    """`CREATE TABLE IF NOT EXISTS` for a table, generated by sqlglot (identifiers quoted, no value inside);
    once per process (every store's `init` and every engine run asks for all of them)."""
    schema = exp.Schema(
        this=exp.to_table(table.name),
        expressions=[
            exp.ColumnDef(this=exp.to_identifier(c.name, quoted=True), kind=exp.DataType.build(c.type))
            for c in table.columns
        ],
    )
    return exp.Create(this=schema, kind="TABLE", exists=True).sql(dialect=dialect)


@functools.lru_cache(maxsize=256)
def comments(table: Table, dialect: str = "duckdb") -> tuple[str, ...]:
    """`COMMENT ON` the table and each column, with the comments as sqlglot string literals; once per process."""
    out = [
        exp.Comment(this=exp.to_table(table.name), kind="TABLE", expression=exp.Literal.string(table.comment)).sql(
            dialect=dialect
        )
    ]
    out += [
        exp.Comment(
            this=exp.column(c.name, table=table.name, quoted=True),
            kind="COLUMN",
            expression=exp.Literal.string(c.comment),
        ).sql(dialect=dialect)
        for c in table.columns
        if c.comment
    ]
    return tuple(out)
