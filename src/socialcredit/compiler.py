"""The rulebook compiler: rules → decision tables and sqlglot expressions → SQL for a dialect.

Most rules are bounds on one attribute ("days_late >= 90", "amount between 1000 and 5000"). Those
compile into *decision tables*: the attribute's line is cut at every bound into cells, each cell
knows which rules it satisfies. A record finds its cell with equi-joins on one integer each, all on
unique keys (DuckDB then probes a perfect hash table): its (epoch, city, behaviour) key gives the
table and its bucket shape; the table's base plus the bucket number `floor((x - lo0) / w)` gives the
cells below the bucket and the (at most CUTS_PER_BUCKET) cuts inside it, so two comparisons finish
the count; and the cell number gives the cell's pieces. The cost per record is then the same for
40 rules or 1,000. Any other condition stays a general expression, lowered through sqlglot (never
pasted as text), and gives the same answer the slow way. Everything the engine runs is generated
here, for DuckDB or Spark.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from sqlglot import exp

from socialcredit.clock import CST as CST  # re-exported: older imports read the zone from here
from socialcredit.clock import cst_midnight_utc
from socialcredit.conditions import Bounds, as_bounds, qualify
from socialcredit.rulebook import Rule, Rulebook, RulebookSet

MAX_BUCKETS = 1 << 14  # per decision table; buckets are refined until at most CUTS_PER_BUCKET cuts share one
CUTS_PER_BUCKET = 2
FAR_PAST = dt.datetime(1, 1, 1)
FAR_FUTURE = dt.datetime(9999, 12, 31)
PIECE_COLUMNS = ("piece", "points", "vf_months", "vf_days")


@dataclass(frozen=True)
class Piece:
    """What a ledger entry points at: the rules that one record value satisfied (the ledger row's
    city and epoch say which rulebook version they came from)."""

    piece: int
    rule_ids: tuple[str, ...]
    points: tuple[int, ...]
    valid_for: str | None

    @property
    def total(self) -> int:
        return sum(self.points)


@dataclass
class Segment:
    jkey: int
    epoch: int
    rulebook: Rulebook
    start: dt.datetime | None
    end: dt.datetime | None


@dataclass
class Table:
    """One decision table: a value x falls in bucket b = clamp(floor((x - lo0) / w), -1, nb), whose row (key
    base + b + 1) holds the first cell the bucket can reach (`cbase`) and the cuts inside it."""

    base: int
    lo0: float
    w: float
    nb: int
    cbase: list[int]
    cuts: list[np.ndarray]
    """cuts[j][b + 1]: the j-th cut inside bucket b (+inf when it has fewer)"""


@dataclass
class GeneralRule:
    """A rule whose condition is not bounds on one attribute, with every (city, epoch) it is in force."""

    where: list[tuple[int, int]]
    bkey: int
    condition: exp.Expression
    piece: int
    cond: int  # index into Compiled.conditions


@dataclass
class Compiled:
    """Decision tables and general rules for every (city, epoch) of a set of rulebooks."""

    change_points: list[dt.datetime]
    segments: list[Segment]
    pieces: list[Piece] = field(default_factory=list)
    params: list[tuple[int, int, int, str, int, float, float, int]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    """the decision tables, by number"""
    cells: list[tuple[int, int]] = field(default_factory=list)
    """(cell number, piece): the pieces each cell of every decision table gives"""
    n_cells: int = 0
    n_buckets: int = 0
    strides: tuple[int, int] = (1, 1)
    """(jurisdiction keys, behaviour keys): a segment key is (epoch * strides[0] + jkey) * strides[1] + bkey"""
    general: list[GeneralRule] = field(default_factory=list)
    conditions: list[exp.Expression] = field(default_factory=list)
    dims: list[str] = field(default_factory=list)
    characteristic_rules: list[tuple[Segment, Rule, exp.Expression | None, int]] = field(default_factory=list)

    def bounds(self) -> dict[tuple[int, int], tuple[dt.datetime, dt.datetime]]:
        """Each segment's [start, end) in store time, open ends made explicit for range joins."""
        return {(g.jkey, g.epoch): (g.start or FAR_PAST, g.end or FAR_FUTURE) for g in self.segments}

    def _bound_columns(self, keys: list[tuple[int, int]]) -> dict[str, pa.Array]:
        b = self.bounds()
        return {
            "s_start": pa.array([b[k][0] for k in keys], pa.timestamp("us")),
            "s_end": pa.array([b[k][1] for k in keys], pa.timestamp("us")),
        }

    def general_table(self) -> pa.Table:
        rows = [(j, e, g.bkey, g.cond, g.piece) for g in self.general for j, e in g.where]
        cols = columns(rows, 5)
        return pa.table(
            {
                "k": pa.array([self.segment_key(*x) for x in zip(cols[1], cols[0], cols[2], strict=True)], pa.int32()),
                "jkey": pa.array(cols[0], pa.int16()),
                "epoch": pa.array(cols[1], pa.int32()),
                "bkey": pa.array(cols[2], pa.int16()),
                "cond": pa.array(cols[3], pa.int32()),
                "piece": pa.array(cols[4], pa.int32()),
                **self._piece_columns(cols[4]),
                **self._bound_columns(list(zip(cols[0], cols[1], strict=True))),
            }
        )

    def params_table(self) -> pa.Table:
        cols = columns(self.params, 8)
        return pa.table(
            {
                "k": pa.array([self.segment_key(*x) for x in zip(cols[1], cols[0], cols[2], strict=True)], pa.int32()),
                "base": pa.array([self.tables[d].base for d in cols[4]], pa.int32()),
                "jkey": pa.array(cols[0], pa.int16()),
                "epoch": pa.array(cols[1], pa.int32()),
                "bkey": pa.array(cols[2], pa.int16()),
                "dim": pa.array(cols[3], pa.string()),
                "dt": pa.array(cols[4], pa.int32()),
                "lo0": pa.array(cols[5], pa.float64()),
                "w": pa.array(cols[6], pa.float64()),
                "nb": pa.array(cols[7], pa.int32()),
                **self._bound_columns(list(zip(cols[0], cols[1], strict=True))),
            }
        )

    def segment_key(self, epoch: int, jkey: int, bkey: int) -> int:
        return (epoch * self.strides[0] + jkey) * self.strides[1] + bkey

    def buckets_table(self) -> pa.Table:
        """One row per bucket of every table (key base + bucket + 1): the first cell the bucket can reach and the
        cuts inside it (ascending, +inf when fewer); a value's cell is cbase + the number of cuts x >= cut.

        Rows joined on the key, not arrays indexed by it: a real rulebook set has hundreds of thousands of
        buckets, and DuckDB copies a one-row table's arrays into every chunk it crosses them with."""
        k = self.cuts_per_bucket()
        return pa.table(
            {
                "k": pa.array(np.arange(self.n_buckets), pa.int32()),
                "cbase": pa.array([b for t in self.tables for b in t.cbase], pa.int32()),
                **{
                    f"cut{j + 1}": pa.array(
                        np.concatenate(
                            [t.cuts[j] if j < len(t.cuts) else np.full(len(t.cbase), math.inf) for t in self.tables]
                            or [np.zeros(0)]
                        ),
                        pa.float64(),
                    )
                    for j in range(k)
                },
            }
        )

    def cuts_per_bucket(self) -> int:
        return max([len(t.cuts) for t in self.tables], default=0)

    def cells_table(self) -> pa.Table:
        cols = columns(self.cells, 2)
        return pa.table(
            {
                "cell": pa.array(cols[0], pa.int32()),
                "piece": pa.array(cols[1], pa.int32()),
                **self._piece_columns(cols[1]),
            }
        )

    def _piece_columns(self, pieces: list[int] | tuple[int, ...]) -> dict[str, pa.Array]:
        """A piece's points and validity beside it, so the hot query needs no join to `pieces`."""
        return {
            "points": pa.array([self.pieces[p].total for p in pieces], pa.int32()),
            "vf_months": pa.array([_months(self.pieces[p].valid_for) for p in pieces], pa.int32()),
            "vf_days": pa.array([_days(self.pieces[p].valid_for) for p in pieces], pa.int32()),
        }

    def pieces_table(self) -> pa.Table:
        return pa.table(
            {
                "piece": pa.array([p.piece for p in self.pieces], pa.int32()),
                "rule_ids": pa.array([list(p.rule_ids) for p in self.pieces], pa.list_(pa.string())),
                "rule_points": pa.array([list(p.points) for p in self.pieces], pa.list_(pa.int32())),
                "points": pa.array([p.total for p in self.pieces], pa.int32()),
                "valid_for": [p.valid_for for p in self.pieces],
                "vf_months": pa.array([_months(p.valid_for) for p in self.pieces], pa.int32()),
                "vf_days": pa.array([_days(p.valid_for) for p in self.pieces], pa.int32()),
            }
        )


def columns(rows: list[tuple], n: int) -> list[list]:
    """Rows of n values → n column lists (n empty lists for no rows), for building Arrow tables."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(n)]


def _months(d: str | None) -> int | None:
    if d is None:
        return None
    return int(d[:-1]) * {"d": 0, "m": 1, "y": 12}[d[-1]]


def _days(d: str | None) -> int | None:
    if d is None:
        return None
    return int(d[:-1]) if d[-1] == "d" else 0


def compile_rulebooks(
    rulebooks: RulebookSet,
    jkeys: dict[str, int],
    bkeys: dict[str, int],
    pin: dict[str, int] | None = None,
    cities: list[str] | None = None,
) -> Compiled:
    """Compile every city's timeline; with `pin`, one version for all time (a replay, "what if")."""
    cities = cities or rulebooks.cities
    if pin is not None:
        segments = []
        for city in cities:
            rb = rulebooks.resolve(city, None, {**pin, **({city: pin[city]} if city in pin else {})})
            if rb is not None:
                segments.append(Segment(jkeys[city], 0, rb, None, None))
        compiled = Compiled([], segments)
    else:
        days = sorted({d for city in cities for d in rulebooks.change_days(city)})
        points = [cst_midnight_utc(d) for d in days]
        segments = []
        for city in cities:
            for i, day in enumerate(days):
                rb = rulebooks.resolve(city, day)
                if rb is not None:
                    end = points[i + 1] if i + 1 < len(points) else None
                    segments.append(Segment(jkeys[city], i + 1, rb, points[i], end))
        compiled = Compiled(points, segments)
    compiled.strides = (max(jkeys.values(), default=0) + 1, max(bkeys.values(), default=0) + 1)
    _build_tables(compiled, rulebooks, bkeys)
    return compiled


def _build_tables(c: Compiled, rulebooks: RulebookSet, bkeys: dict[str, int]) -> None:
    catalog = rulebooks.catalog
    numeric = {a.name for a in catalog.attributes.values() if a.type in ("int", "float")}
    piece_ids: dict[tuple[tuple[str, ...], tuple[int, ...], str | None], int] = {}
    # identical rulebooks in several epochs share their decision tables
    table_ids: dict[tuple[tuple, str, str], int] = {}
    general_by_rule: dict[tuple[int, str, int], GeneralRule] = {}
    shapes: dict[int, tuple[float, float, int]] = {}
    cond_numbers: dict[str, int] = {}
    cond_text: dict[int, str] = {}  # conditions are shared (cached) trees, so their text is computed once

    def piece_of(rb: Rulebook, rules: list, valid_for: str | None) -> int:
        key = (tuple(r.id for r in rules), tuple(r.points for r in rules), valid_for)
        if key not in piece_ids:
            piece_ids[key] = len(c.pieces)
            c.pieces.append(Piece(len(c.pieces), key[0], key[1], valid_for))
        return piece_ids[key]

    # epoch by epoch (then city by city): the numbers given to pieces, decision tables, cells and conditions
    # depend only on the epochs up to their own, so a version added later numbers the earlier epochs' alike, and
    # the rows stored for records before its first day stand (`entries.update`; city by city, a new epoch in
    # one city renumbered the pieces of every city after it)
    for seg in sorted(c.segments, key=lambda s: (s.epoch, s.jkey)):
        rb = seg.rulebook
        by_dim: dict[tuple[str, str], list[tuple[Bounds, object]]] = {}
        for r in rb.rules:
            if r.behaviour is None:
                c.characteristic_rules.append((seg, r, rb.conditions.get(f"rule:{r.id}"), piece_of(rb, [r], None)))
                continue
            cond = rb.conditions.get(f"rule:{r.id}")
            b = as_bounds(cond, numeric)
            if b is None:
                assert cond is not None
                piece = piece_of(rb, [r], r.valid_for)
                text = cond_text.get(id(cond)) or cond_text.setdefault(id(cond), cond.sql(copy=False))
                if text not in cond_numbers:
                    cond_numbers[text] = len(c.conditions)
                    c.conditions.append(cond)
                gkey = (bkeys[r.behaviour], text, piece)
                if gkey in general_by_rule:
                    general_by_rule[gkey].where.append((seg.jkey, seg.epoch))
                else:
                    general_by_rule[gkey] = GeneralRule(
                        [(seg.jkey, seg.epoch)], bkeys[r.behaviour], cond, piece, cond_numbers[text]
                    )
                    c.general.append(general_by_rule[gkey])
                continue
            by_dim.setdefault((r.behaviour, b.attribute), []).append((b, r))
        for (behaviour, dim), bounded in by_dim.items():
            tkey = (_rules_key(bounded), behaviour, dim)
            if tkey not in table_ids:
                table_ids[tkey] = len(table_ids)
                shapes[table_ids[tkey]] = _add_table(c, table_ids[tkey], rb, bounded, piece_of)
            lo0, w, nb = shapes[table_ids[tkey]]
            c.params.append((seg.jkey, seg.epoch, bkeys[behaviour], dim, table_ids[tkey], lo0, w, nb))
            if dim not in c.dims:
                c.dims.append(dim)


def _rules_key(bounded: list) -> tuple:
    """Identical rule sets (inherited unchanged by several cities) share one decision table."""
    return tuple((r.id, r.points, r.valid_for, b) for b, r in bounded)


def _add_table(c: Compiled, dt_id: int, rb: Rulebook, bounded: list, piece_of) -> tuple[float, float, int]:
    assert dt_id == len(c.tables)
    values = sorted({v for b, _ in bounded for v in (b.lo, b.hi) if v is not None})
    # elementary pieces: open gaps between bound values, and the bound values themselves
    elems: list[tuple[float | None, bool, float | None, bool]] = []
    prev: float | None = None
    for v in values:
        elems.append((prev, False, v, False))
        elems.append((v, True, v, True))
        prev = v
    elems.append((prev, False, None, False))

    # elems[2i] is the gap below values[i], elems[2i + 1] the value itself, elems[-1] the gap above all;
    # a rule covers one run of them (rules keep their order in every elem's list)
    index = {v: i for i, v in enumerate(values)}
    covering: list[list] = [[] for _ in elems]
    for b, r in bounded:
        first = 0 if b.lo is None else 2 * index[b.lo] + (1 if b.lo_inclusive else 2)
        last = len(elems) - 1 if b.hi is None else 2 * index[b.hi] + (1 if b.hi_inclusive else 0)
        for e in range(first, last + 1):
            covering[e].append(r)

    # merge neighbours that satisfy the same rules, so a ladder of k rules has k + 1 cells, not 2k + 1
    merged: list[list] = []
    for elem, rs in zip(elems, covering, strict=True):
        rules = tuple(rs)
        if merged and merged[-1][4] == rules:
            merged[-1][2], merged[-1][3] = elem[2], elem[3]
        else:
            merged.append([elem[0], elem[1], elem[2], elem[3], rules])
    # a cut between two cells: x is in the upper one when x >= cut (x > v is x >= the next double above v)
    cuts = np.array([math.nextafter(float(m[2]), math.inf) if m[3] else float(m[2]) for m in merged[:-1]], np.float64)
    lo0, w, nb = (float(cuts[0]) if len(cuts) else 0.0), 1.0, 0
    span = float(cuts[-1] - cuts[0]) if len(cuts) else 0.0
    if len(cuts) > CUTS_PER_BUCKET and span > 0:
        nb = min(MAX_BUCKETS, 2 * len(cuts))
        while True:
            w = span / nb
            # the engine computes a record's bucket with these same IEEE operations; floor((x - lo0) / w) is
            # monotonic in x, so every cut in a lower bucket is passed and every cut in a higher one is not
            per = np.bincount(_buckets(cuts, lo0, w, nb) + 1, minlength=nb + 2)
            if per.max() <= CUTS_PER_BUCKET or nb >= MAX_BUCKETS:
                break
            nb = min(MAX_BUCKETS, nb * 4)
    bk = _buckets(cuts, lo0, w, nb)
    starts = np.searchsorted(bk, np.arange(-1, nb + 2), side="left")  # cuts ascend, and so do their buckets
    off = c.n_cells
    c.tables.append(
        Table(
            c.n_buckets,
            lo0,
            w,
            nb,
            (off + starts[: nb + 2]).tolist(),
            [
                np.where(starts[:-1] + j < starts[1:], cuts[np.minimum(starts[:-1] + j, len(cuts) - 1)], math.inf)
                for j in range(int(np.diff(starts).max()))
            ],
        )
    )
    c.n_buckets += nb + 2
    for k, (_lo, _lo_inc, _hi, _hi_inc, rules) in enumerate(merged):
        by_validity: dict[str | None, list] = {}
        for r in rules:
            by_validity.setdefault(r.valid_for, []).append(r)
        for valid_for, rs in by_validity.items():
            c.cells.append((off + k, piece_of(rb, rs, valid_for)))
    c.n_cells += len(merged)
    return lo0, w, nb


def _buckets(x: np.ndarray, lo0: float, w: float, nb: int) -> np.ndarray:
    return np.clip(np.floor((x - lo0) / w), -1, nb).astype(np.int64)


# --------------------------------------------------------------------------- SQL


def epoch_expr(change_points: list[dt.datetime], column: exp.Expression) -> exp.Expression:
    """Which epoch a time falls in: the number of change points at or before it."""
    if not change_points:
        return exp.Literal.number(0)
    terms: list[exp.Expression] = [
        exp.Cast(
            this=exp.GTE(
                this=column.copy(),
                expression=exp.cast(exp.Literal.string(t.strftime("%Y-%m-%d %H:%M:%S")), exp.DataType.Type.TIMESTAMP),
            ),
            to=exp.DataType.build("INT"),
        )
        for t in change_points
    ]
    out = terms[0]
    for t in terms[1:]:
        out = exp.Add(this=out, expression=t)
    return exp.paren(out)


def _in_segment(c: Compiled, t: str, r: str) -> list[exp.Expression]:
    """The join of a record to the rule rows of its city and behaviour in force when it occurred: an
    equi-join on one integer, (epoch * jurisdictions + jkey) * behaviours + bkey, where the epoch of a
    time is arithmetic on the change points."""
    nj, nb = c.strides
    epoch = epoch_expr(c.change_points, exp.column("occurred_at", table=r))
    key = exp.Add(
        this=exp.Mul(
            this=exp.paren(
                exp.Add(
                    this=exp.Mul(this=epoch, expression=exp.Literal.number(nj)), expression=exp.column("jkey", table=r)
                )
            ),
            expression=exp.Literal.number(nb),
        ),
        expression=exp.column("bkey", table=r),
    )
    return [exp.column("k", table=t).eq(key)]


def record_ledger_query(c: Compiled, source: str = "records") -> exp.Expression:
    """Records → one row per (record, piece): the record part of the ledger.

    It reads the records table itself, so the planner sees the real table and no copy of the records
    is made. Every join is on one integer: the segment key (the version in force is arithmetic on
    the change points), the bucket key and the cell. The engine points `source` at a view of the
    records it wants scored (all, or those appended since it last stored their rows), so the query is
    built once per compile.
    """
    branches: list[exp.Select] = []
    cols = ["rkey", "ckey", "jkey", "epoch", "occurred_at", "bkey"]
    rcols = [exp.column("rkey", table="r"), exp.column("ckey", table="r"), exp.column("jkey", table="r")]
    for dim in c.dims:
        r = "r"
        params = exp.to_table("dt_params").as_("p")
        inner = exp.select(
            *rcols,
            exp.column("epoch", table="p"),
            exp.column("occurred_at", table=r),
            exp.column("bkey", table=r),
        )
        if dim:
            x = exp.column(dim, table=r)
            lo0, w, nb = exp.column("lo0", table="p"), exp.column("w", table="p"), exp.column("nb", table="p")
            scaled = exp.Div(this=exp.paren(exp.Sub(this=x.copy(), expression=lo0.copy())), expression=w)
            # clamp(floor(scaled), -1, nb), the same IEEE operations as the compiler's `_buckets`: below lo0 (the
            # first cut) is below every cut, past nb is past the last bucket. Clamping the double before the
            # floor evaluates `scaled` once; a CASE evaluated it twice and cost half as much again
            # (x is never NULL here: the branch keeps records that carry the attribute)
            clamped = exp.Least(
                this=exp.Greatest(this=scaled, expressions=[exp.Literal.number("-1.0")], ignore_nulls=True),
                expressions=[nb],
                ignore_nulls=True,
            )
            bucket = exp.cast(exp.Floor(this=clamped), "INT")
            key = exp.Add(
                this=exp.Add(this=exp.column("base", table="p"), expression=bucket),
                expression=exp.Literal.number(1),
            )
            inner = inner.select(key.as_("bucket"), x.copy().as_("x"), copy=False)
            inner = inner.where(exp.column(dim, table=r).is_(exp.null()).not_(), copy=False)
        else:
            bucket_key = exp.Add(this=exp.column("base", table="p"), expression=exp.Literal.number(1))
            inner = inner.select(bucket_key.as_("bucket"), exp.Null().as_("x"), copy=False)
        inner = inner.from_(exp.to_table(source).as_(r), copy=False).join(
            params,
            on=exp.and_(*_in_segment(c, "p", r), exp.column("dim", table="p").eq(exp.Literal.string(dim)), copy=False),
            copy=False,
        )
        # the bucket's row: the first cell it can reach, plus one for every cut inside it that x passes
        cell: exp.Expression = exp.column("cbase", table="b")
        if dim:
            for j in range(c.cuts_per_bucket()):
                passed = exp.GTE(this=exp.column("x", table="q"), expression=exp.column(f"cut{j + 1}", table="b"))
                cell = exp.Add(this=cell, expression=exp.cast(passed, "INT"))
        located = (
            exp.select(*[exp.column(x, table="q") for x in cols], cell.as_("cell"))
            .from_(inner.subquery("q"), copy=False)
            .join(
                exp.to_table("dt_buckets").as_("b"),
                on=exp.column("k", table="b").eq(exp.column("bucket", table="q")),
                copy=False,
            )
        )
        branches.append(
            exp.select(*[exp.column(x, table="q") for x in cols], *[exp.column(x, table="i") for x in PIECE_COLUMNS])
            .from_(located.subquery("q"), copy=False)
            .join(
                exp.to_table("dt_cells").as_("i"),
                on=exp.column("cell", table="i").eq(exp.column("cell", table="q")),
                copy=False,
            )
        )
    if c.general:
        # one branch for every general rule: a record meets the rules in force for its segment and behaviour
        # (a join on a small table), and a CASE on the condition number evaluates only those rules' conditions
        conditions = c.conditions
        case = exp.Case(
            this=exp.column("cond", table="g"),
            ifs=[
                exp.If(this=exp.Literal.number(n), true=exp.paren(qualify(cond, "r"), copy=False))
                for n, cond in enumerate(conditions)
            ],
            default=exp.false(),
        )
        branches.append(
            exp.select(
                *rcols,
                exp.column("epoch", table="g"),
                exp.column("occurred_at", table="r"),
                exp.column("bkey", table="r"),
                *[exp.column(x, table="g") for x in PIECE_COLUMNS],
            )
            .from_(exp.to_table(source).as_("r"), copy=False)
            .join(
                exp.to_table("general_rules").as_("g"), on=exp.and_(*_in_segment(c, "g", "r"), copy=False), copy=False
            )
            .where(case, copy=False)
        )
    if not branches:
        return exp.select(
            *[
                exp.cast(exp.null(), t).as_(x)
                for x, t in zip(
                    [*cols, *PIECE_COLUMNS],
                    ["BIGINT", "INT", "SMALLINT", "INT", "TIMESTAMP", "SMALLINT", "INT", "INT", "INT", "INT"],
                    strict=True,
                )
            ]
        ).where(exp.false())
    out: exp.Expression = branches[0]
    for b in branches[1:]:
        out = exp.Union(this=out, expression=b, distinct=False)
    return out


def to_sql(expression: exp.Expression, dialect: str = "duckdb") -> str:
    # the trees handed in are built for this call or already copied; skipping sqlglot's defensive copy halves the cost
    return expression.sql(dialect=dialect, copy=False)


def condition_sql(condition: exp.Expression | None, table: str, dialect: str = "duckdb") -> str:
    """A checked condition as SQL over `table`'s columns (TRUE when there is none)."""
    if condition is None:
        return "TRUE"
    k = (id(condition), table, dialect)
    hit = _CONDITION_SQL.get(k)
    if hit is None or hit[0] is not condition:
        # the tree is kept in the value so its id cannot be reused by another tree while cached
        hit = _CONDITION_SQL[k] = (condition, "(" + to_sql(qualify(condition, table), dialect) + ")")
    return hit[1]


_CONDITION_SQL: dict[tuple[int, str, str], tuple[exp.Expression, str]] = {}
