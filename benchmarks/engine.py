"""Engine throughput: records/second through the project's compiled decision tables, against two baselines.

    python benchmarks/engine.py [--records N] [--citizens C] [--repeat K] [--python-records P]

Workload (seeded numpy): N records of 40 behaviours, citizen uniform over C, lognormal `amount` (whole
cents), `occurred_at` uniform over 2023. Rulebooks (national layer + one city, YAML text parsed by the
project): 40 rules (one `amount >= t` per behaviour) and 1,000 rules (25 ascending thresholds per
behaviour; every rule whose threshold is met applies, points summed). Score = 1000 + sum of points, for
every one of the C citizens.

Approaches, over the same data in the same run:
  engine, cold   the project's scoring path with nothing stored: Engine.prepare (compile_rulebooks) →
                 load_compiled(store_ledger=False) (decision tables; the record ledger view then scores
                 every record on the fly with the compiled SQL) → Engine.scores(as_of), the score of every
                 citizen, on a temporary DuckDB store file. This is the scoring rate: every record is read
                 and scored, nothing precomputed. It is the path the `record_ledger` view takes for
                 records no stored row covers yet, e.g. those ingested since the last run.
  engine, first  the same, but load_compiled() also writes every record's ledger rows to the store
                 (`record_entries`), as Engine.run does on a first run or after a rulebook change, so that
                 later runs score only new records.
  engine, warm   the same path when a previous run already stored every record's ledger rows and the
                 rulebooks are unchanged: compile → load_compiled (finds no new record, scores none, and
                 keeps the stored decision tables) → Engine.scores at a new as_of. This is what a
                 deployment pays per scoring run when records arrive incrementally (each run then also
                 scores only the records that arrived since, which this does not include). Warm is
                 measured right after the first run in the same process, as in a long-running deployment:
                 the ledger's pages are in DuckDB's buffer cache and the compile is the one the engine
                 cached for the unchanged rulebook set.
  python loop    plain Python per record: dict bkey → [(threshold, points)] (perf-baselines a_python,
                 with tuples instead of lambdas, which is faster); by default over all N records, so its
                 fixed per-citizen output cost is spread over as many records as the engine's.
  duckdb join    naive DuckDB: records (Arrow, in memory, in the same citizen order as the compacted
                 store) JOIN rules ON behaviour AND amount >= threshold, GROUP BY citizen, LEFT JOIN all
                 citizens (perf-baselines d_duckdb 'join'), threads=2.
The store is loaded and then compacted (Store.compact: records clustered by citizen, as a deployment's
maintenance would leave them); both steps are untimed and their times printed.
Every result is checked against an independent numpy reference (searchsorted + prefix sums).
The targets (engine ≥ 20× the Python loop at 40 rules, ≥ 100× at 1,000 rules, 1,000 rules ≤ 2× the cost
of 40) are reported for each engine mode apart. Nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gc
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from rich.console import Console
from sqlglot import exp

from socialcredit.catalog import Behaviour, Catalog, default_catalog
from socialcredit.engine import Engine
from socialcredit.engine.executors import sql
from socialcredit.engine.ledger import compiled_views, ledger_views, prepared, record_views, scores_query
from socialcredit.engine.sql import fill
from socialcredit.schema import TABLES
from socialcredit.store import Store

console = Console(stderr=True, highlight=False)

N_BEHAVIOURS = 40
PER_BEHAVIOUR = {40: 1, 1000: 25}
CITY = "benchcity"
BASE = 1000
YEAR_START = dt.datetime(2023, 1, 1)
AS_OF = dt.datetime(2024, 6, 1)
WARM_AS_OF = dt.datetime(2024, 7, 1)  # a later scoring run; no bench rule expires, so the scores are the same
THREADS = 2
TARGETS = {"loop40": 20.0, "loop1000": 100.0, "cost": 2.0}
ENGINE = ("cold", "first", "warm")
APPROACHES = {
    "cold": "engine COLD (scores, stores none)",
    "first": "engine FIRST RUN (stores ledger)",
    "warm": "engine WARM (ledger stored)",
    "duckdb": "naive DuckDB join",
    "floor": "scan floor (no rules)",
    "python": "Python loop",
    "spark": "engine COLD on Spark local[2]",
}


# --------------------------------------------------------------------------- catalog and rulebooks


def bench_catalog() -> tuple[Catalog, list[str], int]:
    """40 behaviours that all carry the float `amount`: the shipped ones that declare it, then others
    given `amount` in a copy of the catalog (the shipped catalog has too few). Returns how many were added."""
    cat = default_catalog()
    assert cat.attributes["amount"].type == "float"
    have = [c for c, b in cat.behaviours.items() if "amount" in b.attributes]
    others = [c for c, b in cat.behaviours.items() if "amount" not in b.attributes]
    chosen = (have + others)[:N_BEHAVIOURS]
    if len(chosen) < N_BEHAVIOURS:
        sys.exit(f"the catalog has only {len(chosen)} behaviours; need {N_BEHAVIOURS}")
    added = [c for c in chosen if c not in have]
    if not added:
        return cat, chosen, 0
    behaviours = {}
    for code, b in cat.behaviours.items():
        if code in added:
            b = Behaviour.model_validate({**b.model_dump(), "attributes": [*b.attributes, "amount"]})
        behaviours[code] = b
    return (
        Catalog(
            attributes=cat.attributes,
            behaviours=behaviours,
            characteristics=cat.characteristics,
            services=cat.services,
            measures=cat.measures,
            agencies=cat.agencies,
        ),
        chosen,
        len(added),
    )


def make_rules(rng: np.random.Generator, per: int, amount_cents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """thresholds (cents, int64) and points, shape [40, per]; thresholds ascending and distinct per behaviour,
    drawn from the amount distribution so matches spread over the whole ladder."""
    sample = np.sort(amount_cents[: min(len(amount_cents), 200_000)])
    thr = np.empty((N_BEHAVIOURS, per), np.int64)
    for b in range(N_BEHAVIOURS):
        while True:
            q = np.sort(rng.uniform(0.02, 0.98, per))
            t = np.unique(sample[(q * (len(sample) - 1)).astype(np.int64)])
            if len(t) == per:
                thr[b] = t
                break
    pts = rng.integers(1, 41, (N_BEHAVIOURS, per)) * rng.choice([-1, 1], (N_BEHAVIOURS, per))
    return thr, pts.astype(np.int64)


def cents_text(c: int) -> str:
    return f"{c // 100}.{c % 100:02d}"


def rulebook_texts(codes: list[str], thr: np.ndarray, pts: np.ndarray) -> tuple[str, str]:
    lines = [
        "jurisdiction: national",
        "name: Benchmark nation",
        "level: national",
        "version: 1",
        "effective_from: 2020-01-01",
        "source: illustrative",
        f"scale: {{base: {BASE}, min: -10000000, max: 10000000}}",
        "period: month",
        "grades:",
        f"  - {{grade: A, min: {BASE}}}",
        "  - {grade: B, min: -10000000}",
        "rules:",
    ]
    for b, code in enumerate(codes):
        for j in range(thr.shape[1]):
            lines += [
                f"  - id: bench.{code}.{j:02d}",
                f"    behaviour: {code}",
                f'    when: "amount >= {cents_text(int(thr[b, j]))}"',
                f"    points: {int(pts[b, j])}",
                "    source: illustrative",
            ]
    national = "\n".join(lines) + "\n"
    city = (
        "\n".join(
            [
                f"jurisdiction: {CITY}",
                "name: Benchmark city",
                "level: city",
                "extends: national",
                "version: 1",
                "effective_from: 2020-01-01",
                "source: illustrative",
            ]
        )
        + "\n"
    )
    return national, city


# --------------------------------------------------------------------------- data


def make_records(n: int, citizens: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cents = np.rint(rng.lognormal(mean=np.log(20_000), sigma=1.2, size=n)).astype(np.int64)  # ~200 yuan median
    np.maximum(cents, 1, out=cents)
    seconds = rng.integers(0, 365 * 86400, n, dtype=np.int64)
    return {
        "ckey": rng.integers(0, citizens, n, dtype=np.int32),
        "b": rng.integers(0, N_BEHAVIOURS, n, dtype=np.int16),  # index into the 40 chosen behaviours
        "cents": cents,
        "amount": cents / 100.0,  # exactly the double a YAML literal like 123.45 parses to
        "occurred_at": (np.datetime64(YEAR_START, "us") + seconds.astype("timedelta64[s]")).astype("datetime64[us]"),
    }


# --------------------------------------------------------------------------- reference (untimed)


def numpy_reference(
    b: np.ndarray, cents: np.ndarray, ckey: np.ndarray, citizens: int, thr: np.ndarray, pts: np.ndarray
) -> np.ndarray:
    order = np.argsort(b, kind="stable")
    bounds = np.searchsorted(b[order], np.arange(N_BEHAVIOURS + 1))
    delta = np.zeros(len(b), np.int64)
    for k in range(N_BEHAVIOURS):
        idx = order[bounds[k] : bounds[k + 1]]
        cum = np.concatenate([[0], np.cumsum(pts[k])])
        delta[idx] = cum[np.searchsorted(thr[k], cents[idx], side="right")]
    return BASE + np.bincount(ckey, weights=delta, minlength=citizens).astype(np.int64)


def checksum(scores: np.ndarray) -> tuple[int, int]:
    s = scores.astype(np.int64)
    return int(s.sum()), int((s * np.arange(1, len(s) + 1, dtype=np.int64)).sum())


def dense(keys: np.ndarray, values: np.ndarray, citizens: int) -> np.ndarray:
    out = np.full(citizens, np.iinfo(np.int64).min, np.int64)
    out[np.asarray(keys, np.int64)] = np.asarray(values, np.int64)
    return out


# --------------------------------------------------------------------------- approaches


# --------------------------------------------------------------------------- the engine's own steps


class EngineBench:
    """A store holding the records; each rulebook size is loaded as the only rulebook versions."""

    def __init__(
        self, directory: Path, catalog: Catalog, codes: list[str], data: dict[str, np.ndarray], citizens: int
    ) -> None:
        self.store = Store(directory / "bench.duckdb", catalog)
        self.store.init(load_shipped_rulebooks=False)
        self.con = self.store.con
        self.con.execute(f"SET threads = {THREADS}")
        self.citizens = citizens
        self.codes = codes
        self.n = len(data["ckey"])

    def load(self, data: dict[str, np.ndarray], national: str, city: str) -> None:
        """Records and citizens straight into the fact tables (ingest validation is not what is measured)."""
        self.set_rulebooks(national, city)
        con = self.con
        jkey = con.execute("SELECT jkey FROM jurisdictions WHERE code = ?", [CITY]).fetchall()[0][0]
        bkeys = dict(con.execute("SELECT code, bkey FROM behaviours").fetchall())
        self.bkey_of = np.array([bkeys[c] for c in self.codes], np.int16)
        cit = pa.table({"ckey": pa.array(np.arange(self.citizens, dtype=np.int32))})
        con.register("_cit", cit)
        con.execute(f"""INSERT INTO citizens (ckey, citizen_id, name, sex, birth_date, city, jkey, avatar_seed)
            SELECT ckey, 'BENCH' || lpad(ckey::VARCHAR, 9, '0'), 'Citizen ' || ckey, 'M', DATE '1990-01-01',
                   '{CITY}', {jkey}, ckey FROM _cit""")
        con.unregister("_cit")
        step = 2_000_000
        for lo in range(0, self.n, step):
            hi = min(lo + step, self.n)
            recs = pa.table(
                {
                    "rkey": pa.array(np.arange(lo, hi, dtype=np.int64)),
                    "ckey": pa.array(data["ckey"][lo:hi]),
                    "bkey": pa.array(self.bkey_of[data["b"][lo:hi]]),
                    "occurred_at": pa.array(data["occurred_at"][lo:hi]),
                    "amount": pa.array(data["amount"][lo:hi]),
                }
            )
            con.register("_recs", recs)
            con.execute(f"""INSERT INTO records (rkey, record_id, agency, ckey, jkey, bkey, occurred_at, amount,
                                                 batch, ingested_at)
                SELECT rkey, 'R' || rkey, 'bench_agency', ckey, {jkey}, bkey, occurred_at, amount, 1,
                       TIMESTAMP '2024-01-02 00:00:00' FROM _recs""")
            con.unregister("_recs")
        con.execute("CHECKPOINT")

    def set_rulebooks(self, national: str, city: str) -> None:
        """Replace the rulebook versions (the benchmark swaps 40 ↔ 1,000 rules over the same records)."""
        self.con.execute("DELETE FROM rulebook_versions")
        self.store._rulebooks = None
        self.store.add_rulebook(national, "bench/national@1.yaml")
        self.store.add_rulebook(city, f"bench/{CITY}@1.yaml")
        t0 = time.perf_counter()
        self.rulebooks = self.store.rulebooks()  # parsed and resolved once per store, as Engine.run finds it
        self.parse_seconds = time.perf_counter() - t0
        self.con.execute("CHECKPOINT")

    def run(self, mode: str) -> tuple[float, dict[str, float], np.ndarray, dict[str, int]]:
        """One timed pass of the engine's scoring path: compile, load the decision tables, bring the record
        ledger up to date (cold: leave it empty and score every record on the fly; first: score every record
        into it; warm: nothing new to score), score everyone."""
        cold, store_ledger = mode != "warm", mode != "cold"
        if cold:  # untimed: no stored ledger rows, whatever the last pass left
            self.con.execute("DROP TABLE IF EXISTS record_entries; DROP TABLE IF EXISTS record_entries_built")
            self.con.execute("CHECKPOINT")
        eng = Engine(self.store)
        steps: dict[str, float] = {}
        t0 = time.perf_counter()
        compiled = eng.prepare()  # store.rulebooks() (cached by the store) + compile_rulebooks
        t1 = time.perf_counter()
        steps["compile"] = t1 - t0
        with self.store.transaction():
            eng.load_compiled(store_ledger)  # decision tables, the record ledger (or not), the ledger views
            t2 = time.perf_counter()
            upd = eng.ledger_update
            if store_ledger:
                assert upd is not None and upd.rebuilt == cold and upd.records == (self.n if cold else 0)
            else:
                assert upd is None and eng._through == -1  # nothing stored: every record scored on the fly
            steps["load tables"] = t2 - t1 - (upd.seconds if upd else 0.0)
            steps["ledger"] = upd.seconds if upd else 0.0
            # every citizen: clamp(base + points in force), from the stored ledger rows
            res = eng.scores(AS_OF if cold else WARM_AS_OF)
            t3 = time.perf_counter()
            steps["score"] = t3 - t2
        t4 = time.perf_counter()
        steps["commit"] = t4 - t3
        info = {
            "ledger rows": int(self.con.execute("SELECT count(*) FROM record_ledger").fetchall()[0][0]),
            "decision tables": len(compiled.tables),
            "buckets": compiled.n_buckets,
            "cells with points": len(compiled.cells),
            "max cuts per bucket": compiled.cuts_per_bucket(),
            "pieces": len(compiled.pieces),
            "general rules": len(compiled.general),
        }
        ckey = res.column("ckey").to_numpy()
        score = res.column("score").to_numpy()
        return t4 - t0, steps, dense(ckey, score, self.citizens), info

    def floor(self) -> float:
        """The cost of the cold path with no rules at all: read the columns its scoring reads from the
        same store, and sum by citizen for everyone in one perfect-hash aggregation, as Engine.scores does.
        No engine can score the stored records in less; the distance to it is what the rules cost."""
        t0 = time.perf_counter()
        # values as sqlglot literals (a bound parameter would hide the bound from DuckDB's planner)
        query = fill(
            """SELECT ckey, sum(v) AS v FROM (
                SELECT ckey, CAST(0 AS BIGINT) AS v FROM citizens
                UNION ALL SELECT ckey, CAST(bkey + jkey AS BIGINT) FROM records
                WHERE occurred_at <= $as_of AND amount IS NOT NULL AND rkey >= 0) AS u
            WHERE ckey BETWEEN 0 AND $top GROUP BY ckey""",
            as_of=AS_OF,
            top=self.citizens - 1,
        )
        self.con.sql(query.sql(dialect="duckdb")).to_arrow_table()
        return time.perf_counter() - t0

    def close(self) -> None:
        self.store.close()


class SparkBench:
    """The engine's cold scoring path on Apache Spark (local[2]): the same compiled decision tables, ledger
    views and score query as EngineBench's cold run, executed by SparkExecutor over the first `n` records
    exported as Parquet. The session's start and the export are untimed (printed apart); timed is what a
    cold run on a warm cluster pays: attach the facts, load the compiled tables, score every citizen."""

    def __init__(self, eb: EngineBench, n: int, directory: Path) -> None:
        from socialcredit.engine.executors.spark import SparkExecutor, session

        t0 = time.perf_counter()
        self.spark = session("local[2]", "socialcredit-bench", {"spark.driver.memory": "4g"})
        self.start_s = time.perf_counter() - t0
        self.ex = SparkExecutor(self.spark)
        self.eb, self.n, self.dir = eb, n, directory
        t0 = time.perf_counter()
        prefix = sql(exp.column("rkey") < exp.Literal.number(n), "duckdb")
        for name, rel in (("records", eb.con.table("records").filter(prefix)), ("citizens", eb.con.table("citizens")),
                          ("retractions", eb.con.table("retractions"))):  # fmt: skip
            (directory / name).mkdir(exist_ok=True)
            rel.write_parquet(str(directory / name / "part-0.parquet"))
        self.export_s = time.perf_counter() - t0

    def run(self) -> tuple[float, np.ndarray]:
        ex = self.ex
        t0 = time.perf_counter()
        eng = Engine(self.eb.store)
        eng.prepare()
        ctx = dataclasses.replace(eng.ctx, executor=ex, through=-1, memo={})
        for name in ("records", "citizens", "retractions"):
            ex.attach(name, self.dir / name)
        for name, table in prepared(ctx).tables.items():
            ex.load(name, table)
        ex.materialize("state_ledger", TABLES["state_ledger"].empty())
        for name, query in (*record_views(-1), *compiled_views(ctx), *ledger_views(ctx)):
            ex.view(name, query)
        res = ex.fetch(scores_query(ctx, AS_OF, self.eb.citizens - 1))
        elapsed = time.perf_counter() - t0
        scores = dense(res.column("ckey").to_numpy(), res.column("score").to_numpy(), self.eb.citizens)
        ex.drop_all()
        return elapsed, scores

    def close(self) -> None:
        self.spark.stop()


def python_loop(
    cid: list[int], beh: list[int], amt: list[float], rules: dict[int, list[tuple[float, int]]], citizens: int
) -> tuple[float, list[int]]:
    t0 = time.perf_counter()
    delta: defaultdict[int, int] = defaultdict(int)
    get = rules.get
    for c, b, a in zip(cid, beh, amt, strict=True):
        for t, p in get(b, ()):
            if a >= t:
                delta[c] += p
    out = [BASE] * citizens
    for c, d in delta.items():
        out[c] += d
    return time.perf_counter() - t0, out


def duckdb_join(con: duckdb.DuckDBPyConnection, rules: pa.Table, citizens: int) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    con.register("rules", rules)
    res = con.execute(f"""
        WITH agg AS (SELECT r.ckey, sum(x.points) AS pts FROM recs r JOIN rules x ON r.bkey = x.bkey
                     WHERE r.amount >= x.threshold GROUP BY r.ckey)
        SELECT c.ckey, {BASE} + coalesce(agg.pts, 0) AS score
        FROM (SELECT range::INTEGER AS ckey FROM range({citizens})) c LEFT JOIN agg USING (ckey)""").fetchnumpy()
    con.unregister("rules")
    elapsed = time.perf_counter() - t0
    return elapsed, dense(res["ckey"], res["score"], citizens)


# --------------------------------------------------------------------------- driver


def rate(n: int, s: float) -> str:
    r = n / s
    return f"{r / 1e6:7.2f} M rec/s" if r >= 1e6 else f"{r / 1e3:7.1f} k rec/s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--citizens", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--python-records",
        type=int,
        default=None,
        help="run the Python loop on this prefix of the records (default: all; its rate is per record)",
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--spark-records",
        type=int,
        default=2_000_000,
        help="the Spark row scores this prefix of the records (0: no Spark row; needs the spark extra)",
    )
    ap.add_argument("--tmp", type=Path, default=None, help="directory for the temporary store file")
    args = ap.parse_args()
    n, citizens, k = args.records, args.citizens, max(1, args.repeat)
    p = n if args.python_records is None else min(args.python_records, n)
    sp = min(args.spark_records, n)
    if not sp:
        APPROACHES.pop("spark")
    load_start = os.getloadavg()

    catalog, codes, added = bench_catalog()
    with console.status("generating records"):
        data = make_records(n, citizens, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    rulesets = {r: make_rules(rng, per, data["cents"]) for r, per in PER_BEHAVIOUR.items()}
    texts = {r: rulebook_texts(codes, *rulesets[r]) for r in rulesets}

    results: dict[tuple[str, int], list[float]] = defaultdict(list)
    ref_sums: dict[tuple[str, int], tuple[int, int]] = {}
    notes: list[str] = []

    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="sc-bench-") as tmp:
        with console.status(f"loading {n:,} records and {citizens:,} citizens into a store"):
            t0 = time.perf_counter()
            eb = EngineBench(Path(tmp), catalog, codes, data, citizens)
            eb.load(data, *texts[40])
            load_s = time.perf_counter() - t0
        console.log(f"store loaded in {load_s:.1f} s")
        with console.status("compacting the store (records clustered by citizen)"):
            t0 = time.perf_counter()
            eb.store.compact()
            compact_s = time.perf_counter() - t0
        console.log(f"store compacted in {compact_s:.1f} s")
        bkey_of = eb.bkey_of
        bkey = bkey_of[data["b"]]
        sb = None
        if sp:
            with console.status(f"starting Spark (local[2]) and exporting {sp:,} records as Parquet"):
                (Path(tmp) / "spark").mkdir()
                sb = SparkBench(eb, sp, Path(tmp) / "spark")
            notes.append(f"Spark session start (untimed): {sb.start_s:.1f} s; Parquet export of {sp:,} records "
                         f"(untimed): {sb.export_s:.1f} s")  # fmt: skip

        # the naive DuckDB baseline reads the same records as an in-memory Arrow table
        dcon = duckdb.connect()
        dcon.execute(f"SET threads = {THREADS}")
        order = np.argsort(data["ckey"], kind="stable")  # the compacted store's order: by citizen, then time
        order = order[np.lexsort((data["occurred_at"][order], data["ckey"][order]))]
        arrow = pa.table(
            {
                "ckey": pa.array(data["ckey"][order]),
                "bkey": pa.array(bkey[order]),
                "amount": pa.array(data["amount"][order]),
            }
        )
        del order
        dcon.register("recs", arrow)

        with console.status("preparing Python lists"):
            cid_l, beh_l, amt_l = data["ckey"][:p].tolist(), bkey[:p].tolist(), data["amount"][:p].tolist()

        refs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        refs_s: dict[int, np.ndarray] = {}
        rules_tbls: dict[int, pa.Table] = {}
        pyrules: dict[int, dict[int, list[tuple[float, int]]]] = {}
        with console.status("numpy reference scores (untimed)"):
            for r, (thr, pts) in rulesets.items():
                ref = numpy_reference(data["b"], data["cents"], data["ckey"], citizens, thr, pts)
                ref_p = (
                    ref
                    if p == n
                    else numpy_reference(data["b"][:p], data["cents"][:p], data["ckey"][:p], citizens, thr, pts)
                )
                refs[r] = ref, ref_p
                if sp:
                    ref_s = numpy_reference(data["b"][:sp], data["cents"][:sp], data["ckey"][:sp], citizens, thr, pts)
                    refs_s[r] = ref_s
                    ref_sums[("ref_s", r)] = checksum(ref_s)
                ref_sums[("ref", r)], ref_sums[("ref_p", r)] = checksum(ref), checksum(ref_p)
                rules_tbls[r] = pa.table(
                    {
                        "bkey": pa.array(np.repeat(bkey_of, thr.shape[1])),
                        "threshold": pa.array((thr / 100.0).ravel()),
                        "points": pa.array(pts.ravel().astype(np.int32)),
                    }
                )
                pyrules[r] = {
                    int(bkey_of[b]): [(float(thr[b, j]) / 100.0, int(pts[b, j])) for j in range(thr.shape[1])]
                    for b in range(N_BEHAVIOURS)
                }
        checks = {(a, r): True for a in APPROACHES for r in rulesets}
        steps_all: dict[tuple[str, int], list[dict[str, float]]] = defaultdict(list)
        infos: dict[tuple[str, int], dict[str, int]] = {}
        parse_s: dict[int, float] = {}
        # rounds interleave the two rulebook sizes and the three approaches, so this shared VM's noise
        # falls on all of them alike; the rulebook swap between sizes is untimed
        for i in range(k):
            for r in (40, 1000):
                ref, ref_p = refs[r]
                if i > 0 or r != 40:
                    with console.status(f"loading the {r}-rule rulebook"):
                        eb.set_rulebooks(*texts[r])
                parse_s[r] = eb.parse_seconds
                for a in ENGINE:  # warm reads the ledger the first run just stored
                    with console.status(f"round {i + 1}/{k}: engine {a}, {r} rules"):
                        gc.collect()
                        s, steps, scores, infos[(a, r)] = eb.run(a)
                    results[(a, r)].append(s)
                    steps_all[(a, r)].append(steps)
                    checks[(a, r)] &= bool(np.array_equal(scores, ref))
                    console.log(
                        f"engine {a} {r} rules: {s:.2f} s  " + "  ".join(f"{x} {y:.2f}" for x, y in steps.items())
                    )
                    del scores
                if r == 40:  # no rules: the same at both sizes
                    with console.status(f"round {i + 1}/{k}: scan floor"):
                        s = eb.floor()
                    for rr in (40, 1000):
                        results[("floor", rr)].append(s)
                    console.log(f"scan floor: {s:.2f} s")
                if sb is not None:
                    with console.status(f"round {i + 1}/{k}: engine cold on Spark, {r} rules, {sp:,} records"):
                        s, scores = sb.run()
                    results[("spark", r)].append(s)
                    checks[("spark", r)] &= bool(np.array_equal(scores, refs_s[r]))
                    console.log(f"spark cold {r} rules: {s:.2f} s")
                with console.status(f"round {i + 1}/{k}: naive DuckDB join, {r} rules"):
                    s, scores = duckdb_join(dcon, rules_tbls[r], citizens)
                results[("duckdb", r)].append(s)
                checks[("duckdb", r)] &= bool(np.array_equal(scores, ref))
                console.log(f"duckdb join {r} rules: {s:.2f} s")
                with console.status(f"round {i + 1}/{k}: Python loop, {r} rules, {p:,} records"):
                    gc.collect()
                    s, out = python_loop(cid_l, beh_l, amt_l, pyrules[r], citizens)
                results[("python", r)].append(s)
                checks[("python", r)] &= bool(np.array_equal(np.array(out, np.int64), ref_p))
                console.log(f"python loop {r} rules: {s:.2f} s")
                del out
        for r in (40, 1000):
            notes.append(f"rulebook parse+resolve, {r} rules (untimed; the store caches it): {parse_s[r]:.2f} s")
        for r in (40, 1000):
            for a in ENGINE:
                runs = steps_all[(a, r)]
                med_steps = {x: statistics.median(st[x] for st in runs) for x in runs[0]}
                notes.append(
                    f"engine {a} {r} rules, median step seconds: "
                    + ", ".join(f"{x} {y:.2f}" for x, y in med_steps.items())
                    + "; "
                    + ", ".join(f"{x} {y:,}" for x, y in infos[(a, r)].items())
                )
        eb.close()
        dcon.close()
        if sb is not None:
            sb.close()

    # ----------------------------------------------------------------- report
    med = {key: statistics.median(v) for key, v in results.items()}
    best = {key: min(v) for key, v in results.items()}
    rows = {"cold": n, "first": n, "warm": n, "duckdb": n, "floor": n, "python": p, "spark": sp}
    print(
        f"socialcredit engine benchmark: {n:,} records, {citizens:,} citizens, {N_BEHAVIOURS} behaviours, "
        f"repeat {k} (median seconds, best also shown), DuckDB threads={THREADS}"
    )
    if added:
        print(
            f"  catalog: {N_BEHAVIOURS - added} shipped behaviours declare `amount`; `amount` was added to "
            f"{added} more in a benchmark copy of the catalog"
        )
    print(
        f"  Python loop runs on the first {p:,} records; its rate is per record"
        + (" (its fixed per-citizen output cost is spread over fewer records)" if p < n else "")
    )
    print(
        f"  store load (untimed): {load_s:.1f} s; compaction, records clustered by citizen (untimed): {compact_s:.1f} s"
    )
    print(
        "  engine COLD:      compile + score every record on the fly (no ledger stored, none written) + scores: "
        "the scoring rate\n"
        "  engine FIRST RUN: compile + score every record into the stored ledger + scores (a first run, or a "
        "rulebook change)\n"
        "  engine WARM:      compile + ledger already holds every record (none scored) + scores at a new as_of "
        "(a deployment's\n                    run when records arrive incrementally; its per-record rate is "
        "N / seconds, not a scoring rate)"
    )
    load_end = os.getloadavg()
    print(
        f"  machine load average (1/5/15 min) at start {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f}, "
        f"at end {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f} on {os.cpu_count()} cores (shared)"
    )
    print()
    print(f"  {'approach':<34}{'rules':>6}{'records':>13}{'seconds':>10}{'best':>9}   {'rate (median)':>16}  scores")
    for r in (40, 1000):
        for a in APPROACHES:
            ref_key = {"python": "ref_p", "spark": "ref_s"}.get(a, "ref")
            mark = "✓" if checks.get((a, r), True) else "✗"
            result = (
                "(no scores: a lower bound)"
                if a == "floor"
                else f"{mark} sum {ref_sums[(ref_key, r)][0]:,} wsum {ref_sums[(ref_key, r)][1]:,}"
            )
            print(
                f"  {APPROACHES[a]:<34}{r:>6}{rows[a]:>13,}{med[(a, r)]:>10.3f}{best[(a, r)]:>9.3f}   "
                f"{rate(rows[a], med[(a, r)]):>16}  {result}"
            )
    print()

    def per_rec(a: str, r: int) -> float:
        return rows[a] / med[(a, r)]

    def line(label: str, value: float, target: str, met: bool) -> None:
        print(f"  {label:<52}{value:>9.2f}×   target {target:<8} {'✓' if met else '✗'}")

    for a in ENGINE:
        tag = APPROACHES[a].split(" (")[0].removeprefix("engine ")
        v = per_rec(a, 40) / per_rec("python", 40)
        line(f"engine {tag} / Python loop, 40 rules", v, "≥ 20×", v >= TARGETS["loop40"])
        v = per_rec(a, 1000) / per_rec("python", 1000)
        line(f"engine {tag} / Python loop, 1,000 rules", v, "≥ 100×", v >= TARGETS["loop1000"])
        for r in (40, 1000):
            v = per_rec(a, r) / per_rec("duckdb", r)
            print(f"  {f'engine {tag} / naive DuckDB join, {r:,} rules':<52}{v:>9.2f}×")
        for r in (40, 1000):
            v = med[(a, r)] / med[("floor", r)]
            print(f"  {f'engine {tag} time / scan floor, {r:,} rules':<52}{v:>9.2f}×")
        v = med[(a, 1000)] / med[(a, 40)]
        line(f"engine {tag} cost, 1,000 rules / 40 rules", v, "≤ 2×", v <= TARGETS["cost"])
        print()
    if sp:
        for r in (40, 1000):
            v = per_rec("spark", r) / per_rec("cold", r)
            print(f"  {f'engine on Spark local[2] / on DuckDB, cold, {r:,} rules':<52}{v:>9.3f}×   (records/s ratio)")
        print()
    v = med[("duckdb", 1000)] / med[("duckdb", 40)]
    print(f"  {'(naive DuckDB cost, 1,000 / 40 rules)':<52}{v:>9.2f}×")
    v = med[("python", 1000)] / med[("python", 40)]
    print(f"  {'(Python loop cost, 1,000 / 40 rules)':<52}{v:>9.2f}×")
    for r, target in ((40, TARGETS["loop40"]), (1000, TARGETS["loop1000"])):
        v = per_rec("floor", r) / per_rec("python", r)
        print(
            f"  {f'(scan floor / Python loop, {r:,} rules)':<52}{v:>9.2f}×   an engine at the floor would be "
            f"{'above' if v >= target else 'below'} the {target:.0f}× target"
        )
    print()
    for note in notes:
        print(f"  {note}")
    all_ok = all(checks.values())
    print(f"\n  scores identical across approaches (vs numpy reference): {'✓' if all_ok else '✗'}")


if __name__ == "__main__":
    main()
