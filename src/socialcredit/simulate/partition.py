"""Partitioned runs: a scenario split into districts of bounded size, run side by side, merged.

Why: one store and one process hold a whole run in memory at about 2.5 GiB per million citizens,
and one Python process uses one core. A society the size of a country has to be cut into pieces that
each fit, and the pieces can run at once. Cities are independent in the rulebooks (each city scores
its own citizens under its own layer), so the cut follows them: every city is one partition, or,
above `size` citizens, several districts of near-equal size. Each partition is an ordinary run
directory (`partitions/<city>-<i>-of-<n>/`: its own store, Parquet series, scenario.yaml with its
`district:`), so it can be reported, replayed, served or rerun alone; the run directory's own
Parquet series are the partitions' series added up.

What a partition cannot see, and so a partitioned run does not model: contacts across partitions
(a citizen's contact graph, and with it the network rule and contact avoidance, stays inside the
district) and households across them. Each partition draws from its own random streams (seed,
city, district), so a partitioned run is a different draw from the unpartitioned run of the same
scenario, not the same one; it is reproducible for a given seed and `size`, whatever the number of
workers.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import multiprocessing as mp
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from socialcredit.simulate.run import SCHEMAS, run_scenario, summary
from socialcredit.simulate.scenario import District, Scenario
from socialcredit.yamlio import LocatedError

PartitionProgress = Callable[[str, int, int, str], None]  # (partition, months done, months, label)

FRESH_WORKER_FROM = 100_000
"""Citizens in the largest partition from which each partition gets a worker process of its own: a worker's
memory (DuckDB's buffers, numpy's arenas) then goes back to the system between partitions instead of growing
with each one it runs. Below it, partitions share the pool's workers: each fresh worker is a new interpreter
importing the core, about 2 CPU-seconds, more than a partition of a thousand citizens costs to run (`make demo`'s
year in partitions of 1,000: five partitions, three of those start-ups saved)."""

# how each Parquet series adds up over partitions: the key columns, the rest summed
MERGE_KEYS = {
    "scores": ("month", "city", "grade"),
    "lists": ("month", "list_id"),
    "decisions": ("month", "service", "outcome"),
    "children": ("month",),
    "responses": ("month", "behaviour"),
    "contacts": ("month",),
}


@dataclass(frozen=True)
class Partition:
    key: str  # directory name under partitions/
    scenario: Scenario


@dataclass
class PartitionedResult:
    out_dir: Path
    citizens: int
    records: int
    decisions: dict[str, int]
    seconds: float
    workers: int
    peak_gib: float  # the most resident memory the workers held at once (sampled), GiB
    partitions: list[dict[str, Any]] = field(default_factory=list)


def split(scenario: Scenario, size: int) -> list[Partition]:
    """The partitions of `scenario`: one per city, or `ceil(n / size)` districts for a larger city."""
    if size < 1:
        raise LocatedError(f"partition size must be at least 1 citizen, not {size}")
    if scenario.district is not None:
        raise LocatedError(f"scenario {scenario.name} is already a partition (district:); run it unpartitioned")
    parts = []
    data = scenario.model_dump(by_alias=True)
    for city in sorted(scenario.cities):
        n = scenario.cities[city]
        of = math.ceil(n / size)
        for i in range(of):
            citizens = n // of + (1 if i < n % of else 0)
            key = f"{city}-{i + 1}-of-{of}"
            sub = Scenario.model_validate(
                {
                    **data,
                    "name": f"{scenario.name}/{key}",
                    "cities": {city: citizens},
                    "policy": {c: v for c, v in scenario.policy.items() if c == city},
                    "district": District(index=i, of=of),
                }
            )
            parts.append(Partition(key, sub))
    return parts


def _run_one(partition: Partition, out_dir: Path, settings: dict[str, str], queue: Any) -> tuple[str, dict[str, Any]]:
    """In a worker process: one partition's run, reporting its months through `queue`."""

    def step(done: int, total: int, label: str) -> None:
        queue.put(("progress", partition.key, done, total, label))

    queue.put(("pid", os.getpid()))  # so the parent can sample this worker's memory
    return partition.key, run_partition(partition, out_dir, settings, step)


class _MemorySampler(threading.Thread):
    """Samples the summed resident memory of the worker processes (Linux /proc), keeping the maximum;
    workers announce their process ids as they start a partition."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.pids: set[int] = set()
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            total = 0
            for pid in list(self.pids):
                try:
                    with open(f"/proc/{pid}/statm", encoding="ascii") as f:
                        total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                except (OSError, ValueError):
                    continue
            self.peak = max(self.peak, total)


def run_partitioned(
    scenario: Scenario,
    out_dir: Path,
    size: int,
    workers: int = 2,
    memory_gib: float = 16.0,
    progress: PartitionProgress | None = None,
) -> PartitionedResult:
    """Run `scenario` as partitions of at most `size` citizens, `workers` at a time, and merge the series.

    Each worker's DuckDB gets one thread per core it may use and an equal share of `memory_gib`, so
    the run as a whole stays near that bound (DuckDB spills to disk beyond its limit; numpy arrays of
    the largest partition come on top)."""
    began = time.perf_counter()
    out_dir = Path(out_dir)
    if workers < 1:
        raise LocatedError(f"workers must be at least 1, not {workers}")
    parts = prepare(scenario, out_dir, size)
    cores = os.cpu_count() or 1
    settings = {
        "threads": str(max(1, cores // workers)),
        "memory_limit": f"{max(0.5, 0.75 * memory_gib / workers):.1f}GiB",  # the rest for numpy and Arrow
    }
    step = progress or (lambda *_: None)
    done: dict[str, dict[str, Any]] = {}
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no DuckDB or thread state forked
    fresh = max(sum(p.scenario.cities.values()) for p in parts) >= FRESH_WORKER_FROM
    with ctx.Manager() as manager:
        queue = manager.Queue()
        with cf.ProcessPoolExecutor(workers, mp_context=ctx, max_tasks_per_child=1 if fresh else None) as pool:
            sampler = _MemorySampler()
            sampler.start()
            futures = {pool.submit(_run_one, p, out_dir / "partitions" / p.key, settings, queue): p for p in parts}
            try:
                pending = set(futures)
                while pending:
                    finished, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
                    while not queue.empty():
                        kind, *message = queue.get()
                        if kind == "pid":
                            sampler.pids.add(message[0])
                        else:
                            step(*message)
                    for f in finished:
                        try:
                            key, info = f.result()
                        except LocatedError as e:
                            raise LocatedError(f"partition {futures[f].key}: {e}") from e
                        done[key] = info
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
            finally:
                sampler.done.set()
                sampler.join()
    how = {"size": size, "workers": workers, "duckdb": settings}
    return finish(scenario, out_dir, [done[p.key] for p in parts], how, began, sampler.peak / (1 << 30), workers)


def prepare(scenario: Scenario, out_dir: Path, size: int) -> list[Partition]:
    """The partitions of a new partitioned run in `out_dir`, with its scenario.yaml written; refused when
    `out_dir` holds a run already."""
    if (out_dir / "store.duckdb").exists() or (out_dir / "partitions").exists():
        raise LocatedError(f"{out_dir}: already holds a run; choose a new --out directory")
    parts = split(scenario, size)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "partitions").mkdir()
    saved = scenario.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    (out_dir / "scenario.yaml").write_text(yaml.safe_dump(saved, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return parts


def run_partition(
    partition: Partition, out_dir: Path, settings: dict[str, str], step: Callable[[int, int, str], None] | None = None
) -> dict[str, Any]:
    """One partition's run into `out_dir` (wherever it runs: a worker process or a Spark task), and what
    the merged run.json says of it."""
    result = run_scenario(partition.scenario, out_dir, step, settings)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)
    return {
        "partition": partition.key,
        "citizens": result.citizens,
        "records": result.records,
        "decisions": result.decisions,
        "seconds": round(result.seconds, 3),
        "worker": os.getpid(),  # the process that ran it (partitions share one below FRESH_WORKER_FROM)
        "worker_peak_gib": round(peak, 3),
    }


def finish(
    scenario: Scenario,
    out_dir: Path,
    infos: list[dict[str, Any]],
    how: dict[str, Any],
    began: float,
    peak_gib: float,
    workers: int,
) -> PartitionedResult:
    """The run's own series (merged from its partitions') and run.json, once every partition is done."""
    merge(out_dir, [i["partition"] for i in infos])
    totals: dict[str, int] = {}
    for info in infos:
        for outcome, n in info["decisions"].items():
            totals[outcome] = totals.get(outcome, 0) + n
    result = PartitionedResult(
        out_dir,
        sum(i["citizens"] for i in infos),
        sum(i["records"] for i in infos),
        dict(sorted(totals.items())),
        time.perf_counter() - began,
        workers,
        peak_gib,
        infos,
    )
    (out_dir / "run.json").write_text(
        json.dumps(
            {
                **summary(scenario, result.citizens, result.records, result.decisions),
                "partitioned": how,
                "partitions": infos,
                "timings": {"total_seconds": round(result.seconds, 3), "peak_gib": round(result.peak_gib, 3)},
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return result


def merge(out_dir: Path, keys: list[str]) -> None:
    """The run's Parquet series: each partition's series concatenated and summed over the key columns.

    Scores by city and grade, list sizes, entries and exits, decisions, children reached and responses
    are counts over disjoint sets of citizens, so they add. The contact series' mean share is weighted
    by the partition's ties."""
    for name, schema in SCHEMAS.items():
        tables = [
            pq.read_table(path) for k in keys if (path := out_dir / "partitions" / k / f"{name}.parquet").exists()
        ]
        if not tables:
            continue
        table = pa.concat_tables(tables)
        by = list(MERGE_KEYS[name])
        counts = [c for c in schema.names if c not in by and pa.types.is_integer(schema.field(c).type)]
        if name == "contacts":
            table = table.append_column("weighted", pc.multiply(table["mean_listed_share"], table["ties"]))
        aggs = [(c, "sum") for c in counts] + ([("weighted", "sum")] if name == "contacts" else [])
        grouped = table.group_by(by).aggregate(aggs)
        columns = {c: grouped[c] for c in by} | {c: grouped[f"{c}_sum"] for c in counts}
        if name == "contacts":
            ties = grouped["ties_sum"]
            columns["mean_listed_share"] = pc.if_else(
                pc.equal(ties, 0), 0.0, pc.divide(grouped["weighted_sum"], pc.cast(ties, pa.float64()))
            )
        merged = pa.table({c: columns[c] for c in schema.names}).cast(schema).sort_by([(c, "ascending") for c in by])
        pq.write_table(merged, out_dir / f"{name}.parquet")


__all__ = ["Partition", "PartitionedResult", "finish", "merge", "prepare", "run_partition", "run_partitioned", "split"]
