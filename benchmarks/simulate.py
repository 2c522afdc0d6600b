"""Simulator throughput: agent-steps per second through the whole monthly loop, and peak memory.

    python benchmarks/simulate.py [--citizens N] [--months M] [--seed S] [--attempts R] [--engine-detail]
                                  [--partition-size P --workers W [--cluster]]

An agent-step is one citizen for one month. Workload: a scenario of N citizens (default 1,000,000;
20% Rongcheng, 80% Shanghai, under the shipped rulebooks) run for M months (default 12) from January
2025 by `run_scenario` — the real path: each month's records are generated for every citizen,
ingested with `Store.ingest` (set-wise validation), responses drawn (repayment, settling, deterrence),
the engine run as of the month's end, and every service attempt (R per adult per month, default
0.02, spread over rail, flights, loans and hotels, plus school admissions for children) decided
through `decisions.decide_many`. Population generation and storing are reported apart. Peak memory
is the process's maximum resident set size, DuckDB's buffers included. Nothing is asserted on time;
the machine is shared, so numbers are noisy — run twice and compare in the same sitting.

What it shows about 1.41 billion (printed at the end): where the time goes per month, and how the
engine's share grows with the number of months. An engine run resumes from the last one when only
records were appended (it reassesses from the earliest month they can change), so a month's engine
run costs the set-wise steps over all records plus one or two months of assessments; `--engine-detail`
prints, per month, each engine step's seconds and the month it resumed from.

With `--partition-size P` the same scenario runs partitioned (`simulate.partition`): each city cut into
districts of at most P citizens, W worker processes at a time, each with its own store. Then the rate is
agent-steps over the whole wall time (population generation included, since workers generate their own),
and peak memory is the largest sampled sum of the workers' resident memory plus this process's. With
`--cluster` as well, the same partitions then run as Spark tasks (`simulate --cluster`) on a standalone
cluster started on 127.0.0.1 (`socialcredit.sparkcluster`), once with one worker and once with two (one core
each): the rates side by side, against the process pool's, and the speed-up from one worker to two (its
half is the scaling efficiency). Needs PySpark and Java 17, as the engine on Spark does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import platform
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from memory import peak_gib  # sibling module: benchmarks run as scripts
from socialcredit.engine import Engine
from socialcredit.simulate.incentives import Incentives
from socialcredit.simulate.run import run_scenario
from socialcredit.simulate.scenario import Scenario, ServiceUse

NATIONAL = 1_410_000_000


def scenario(n: int, months: int, seed: int, attempts: float) -> Scenario:
    per = attempts / 4
    return Scenario(
        name=f"bench-{n}",
        seed=seed,
        start=dt.date(2025, 1, 1),
        months=months,
        cities={"rongcheng": n // 5, "shanghai": n - n // 5},
        services={
            "rail.high_speed": ServiceUse(rate=per),
            "air.ticket": ServiceUse(rate=per),
            "bank.loan": ServiceUse(rate=per),
            "hotel.booking": ServiceUse(rate=per),
            "school.private_admission": ServiceUse.model_validate({"rate": per, "for": "children"}),
        },
        incentives=Incentives(),
    )


def _trace_engine() -> None:
    """Wrap Engine.run (the simulator calls it without progress) to time its steps and say where it resumed."""
    plain = Engine.run

    def traced(self: Engine, as_of: dt.datetime | None = None, pin: str | None = None, progress: object = None):
        marks: list[tuple[str, float]] = [("prepare", time.perf_counter())]
        summary = plain(self, as_of, pin, lambda name, *_: marks.append((name, time.perf_counter())))
        spans: dict[str, float] = {}
        for (name, t), (_, t2) in itertools.pairwise(marks):
            spans[name] = spans.get(name, 0.0) + t2 - t
        detail = " ".join(f"{k} {v:.2f}" for k, v in spans.items())
        since = f"{self.resumed_from:%Y-%m}" if self.resumed_from else "full"
        print(
            f"    engine as of {summary.as_of:%Y-%m-%d}: {summary.seconds:.2f} s, from {since}, "
            f"{summary.assessments} assessments · {detail}",
            flush=True,
        )
        return summary

    Engine.run = traced  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--citizens", type=int, default=1_000_000)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--attempts", type=float, default=0.02, help="service attempts per adult per month")
    ap.add_argument("--engine-detail", action="store_true", help="per month: engine steps' seconds, resumed month")
    ap.add_argument("--partition-size", type=int, default=None, help="run partitioned, at most P citizens each")
    ap.add_argument("--workers", type=int, default=2, help="partitions at once (with --partition-size)")
    ap.add_argument("--memory-gib", type=float, default=16.0, help="memory bound for the partitions' stores")
    ap.add_argument("--cluster", action="store_true",
                    help="with --partition-size: also on a Spark standalone cluster of 1 and of 2 workers")  # fmt: skip
    args = ap.parse_args()
    if args.cluster and args.partition_size is None:
        ap.error("--cluster runs partitions: give --partition-size")
    if args.partition_size is not None:
        partitioned(args)
        return
    if args.engine_detail:
        _trace_engine()
    n, m = args.citizens, args.months
    print(
        f"simulator benchmark · {platform.python_implementation()} {platform.python_version()} · "
        f"{platform.machine()} · {n:,} citizens × {m} months · load {os.getloadavg()[0]:.2f}"
    )
    began = time.perf_counter()

    def progress(done: int, total: int, label: str) -> None:
        if label.endswith("attempts"):
            print(f"  {time.perf_counter() - began:7.1f} s  {label}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        result = run_scenario(scenario(n, m, args.seed, args.attempts), Path(tmp) / "run", progress)
    wall = time.perf_counter() - began
    phases: dict[str, float] = defaultdict(float)
    for month in result.months:
        for phase, seconds in month["seconds"].items():
            phases[phase] += seconds
    looped = sum(phases.values())
    setup = wall - looped
    attempts = sum(result.decisions.values())
    steps = n * m
    print(f"  setup (population generated and stored): {setup:8.1f} s")
    print(f"  monthly loop: {looped:8.1f} s for {steps:,} agent-steps = {steps / looped:,.0f} agent-steps/s "
          f"({result.records:,} records, {attempts:,} decisions)")  # fmt: skip
    records = max(result.records, 1)
    print(f"    {'phase':<10} {'seconds':>10}  {'share':>6}  {'µs/agent-step':>13}  {'µs/record':>9}")
    for phase, seconds in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"    {phase:<10} {seconds:8.1f} s  {100 * seconds / looped:5.1f}%  "
              f"{1e6 * seconds / steps:13.3f}  {1e6 * seconds / records:9.2f}")  # fmt: skip
    print(f"    {'all':<10} {looped:8.1f} s  100.0%  {1e6 * looped / steps:13.3f}  {1e6 * looped / records:9.2f}")
    print(f"  load average at the end: {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)")
    first = sum(result.months[0]["seconds"].values())
    last = sum(result.months[-1]["seconds"].values())
    engine = [mo["seconds"]["engine"] for mo in result.months]
    print(f"  month 1: {first:.1f} s (engine {engine[0]:.1f} s); month {m}: {last:.1f} s (engine {engine[-1]:.1f} s)")
    print(f"  peak memory (ru_maxrss): {peak_gib():.2f} GiB")
    year = NATIONAL * 12 / (steps / looped)
    print(f"  at this rate a national year (1.41 billion × 12 agent-steps) would take {year / 86400:,.1f} days")


def partitioned(args: argparse.Namespace) -> None:
    """The partitioned run on the process pool; with --cluster, then on a local standalone cluster of one
    worker and of two (one core each), and the speed-up between them."""
    from socialcredit.simulate.partition import split

    n, m = args.citizens, args.months
    sc = scenario(n, m, args.seed, args.attempts)
    parts = split(sc, args.partition_size)
    print(
        f"simulator benchmark, partitioned · {platform.python_implementation()} {platform.python_version()} · "
        f"{n:,} citizens × {m} months in {len(parts)} partitions of ≤ {args.partition_size:,}, "
        f"{args.workers} workers, {os.cpu_count()} cores · load {os.getloadavg()[0]:.2f}"
    )
    rates = {"process pool": _partitioned_run(args, sc, None)}
    if args.cluster:
        from socialcredit.sparkcluster import standalone

        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as tmp, standalone(Path(tmp), workers, memory="2g") as (master, _):
                rates[f"cluster, {workers} worker{'s' if workers > 1 else ''}"] = _partitioned_run(args, sc, master)
        one, two = rates["cluster, 1 worker"], rates["cluster, 2 workers"]
        print("  how                  agent-steps/s   ÷ process pool")
        for how, rate in rates.items():
            print(f"  {how:<20} {rate:>14,.0f}   {rate / rates['process pool']:.2f}×")
        print(f"  speed-up from 1 to 2 workers: {two / one:.2f}× (scaling efficiency {two / one / 2:.0%})")
    year = NATIONAL * 12 / max(rates.values())
    print(f"  at the best rate a national year (1.41 billion × 12 agent-steps) would take {year / 86400:,.1f} days")


def _partitioned_run(args: argparse.Namespace, sc: Scenario, master: str | None) -> float:
    """One partitioned run (the process pool, or Spark tasks on `master`); its agent-steps per second over the
    whole wall time."""
    from socialcredit.simulate.cluster import run_on_cluster
    from socialcredit.simulate.partition import run_partitioned

    where = f"Spark tasks on {master}" if master else f"{args.workers} worker processes"
    print(f"  {where}:", flush=True)
    began = time.perf_counter()

    def progress(key: str, done: int, total: int, label: str) -> None:
        if label.endswith("attempts"):
            print(f"  {time.perf_counter() - began:7.1f} s  {key} {label}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        if master is None:
            result = run_partitioned(sc, Path(tmp) / "run", args.partition_size, args.workers, args.memory_gib,
                                     progress)  # fmt: skip
        else:
            result = run_on_cluster(sc, Path(tmp) / "run", args.partition_size, master, memory_gib=args.memory_gib)
    wall = time.perf_counter() - began
    steps = sc.months * sum(sc.cities.values())
    print(f"  wall time: {wall:8.1f} s for {steps:,} agent-steps = {steps / wall:,.0f} agent-steps/s "
          f"({result.records:,} records, {sum(result.decisions.values()):,} decisions), population in")  # fmt: skip
    for info in result.partitions:
        print(f"    {info['partition']:<22} {info['citizens']:>10,} citizens  {info['seconds']:8.1f} s  "
              f"worker peak {info['worker_peak_gib']:.2f} GiB")  # fmt: skip
    print(f"  peak memory, workers together (sampled) + this process: {result.peak_gib + peak_gib():.2f} GiB")
    print(f"  load average at the end: {os.getloadavg()[0]:.2f}")
    return steps / wall


if __name__ == "__main__":
    main()
