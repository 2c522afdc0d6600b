"""`socialcredit simulate`: run a scenario month by month into a run directory, whole or partitioned.

A thin door over `socialcredit.simulate`: it reads the scenario (and any `--rulebook` overrides), refuses a
run directory already used, and shows a bar per month (or per partition) while the core runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import MofNCompleteColumn

from socialcredit.cli.console import fail, guarded, progress_bar
from socialcredit.cli.console import out as console

if TYPE_CHECKING:
    from socialcredit.simulate.partition import PartitionedResult
    from socialcredit.simulate.scenario import Scenario


def simulate_command(
    scenario: Annotated[Path, typer.Argument(help="scenario file (YAML), e.g. scenarios/demo.yaml")],
    out: Annotated[Path, typer.Option("--out", help="run directory to create (store, Parquet series, run.json)")],
    rulebook: Annotated[
        list[str] | None,
        typer.Option(
            "--rulebook",
            help="CITY=JURISDICTION@VERSION: run CITY under that layer's rules (policy comparison); repeatable",
        ),
    ] = None,
    partition_size: Annotated[
        int | None,
        typer.Option(
            "--partition-size",
            help="split into partitions of at most this many citizens (one or more per city), run side by side",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="partitions run at once (with --partition-size; default 2)")
    ] = None,
    memory_gib: Annotated[
        float | None,
        typer.Option(
            "--memory-gib",
            help="memory the partitions' stores may use together, GiB (default 16; "
            "with --cluster, each task's: default 2)",
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="run the partitions as Spark tasks on this master: local[N] or "
            "spark://HOST:PORT (with --partition-size; needs the [spark] extra)",
        ),
    ] = None,
) -> None:
    """Run a scenario month by month into a run directory (synthetic people only)."""

    @guarded
    def run() -> None:
        # the simulator is imported when a simulation runs: every other command (a server's processes among
        # them) would pay for it at start, pandas included (pyarrow loads it on its first array)
        from socialcredit.simulate.policy import parse_overrides
        from socialcredit.simulate.run import run_scenario
        from socialcredit.simulate.scenario import Scenario, load_scenario

        loaded = load_scenario(scenario)
        if rulebook:  # the command line adds to (and wins over) the scenario's own policy
            policy = {**loaded.policy, **parse_overrides(rulebook)}
            loaded = Scenario.model_validate({**loaded.model_dump(by_alias=True), "policy": policy})
            unknown = [c for c in policy if c not in loaded.cities]
            if unknown:
                fail(f"--rulebook {', '.join(unknown)}: not a city of scenario {loaded.name}")
        if (out / "store.duckdb").exists() or (out / "partitions").exists():
            fail(f"{out}: already holds a run; choose a new --out directory")
        if cluster is not None:
            if partition_size is None:
                fail("--cluster runs partitions: add --partition-size")
            if workers is not None:
                fail("--workers is for the local process pool; with --cluster the cluster's cores decide")
            _run_on_cluster(loaded, out, partition_size, cluster, memory_gib)
            return
        if partition_size is not None:
            _run_partitioned(loaded, out, partition_size, workers or 2, memory_gib or 16.0)
            return
        if workers is not None or memory_gib is not None:
            fail("--workers and --memory-gib apply to partitioned runs: add --partition-size")
        with progress_bar(MofNCompleteColumn()) as bar:
            task = bar.add_task("starting", total=loaded.months)

            def step(done: int, total: int, label: str) -> None:
                bar.update(task, completed=done, description=label)

            result = run_scenario(loaded, out, step)
        denied = result.decisions.get("deny", 0)
        attempts = sum(result.decisions.values())
        console.print(
            f"{loaded.name}: {result.citizens:,} citizens, {loaded.months} months, {result.records:,} records, "
            f"{attempts:,} service attempts ({denied:,} denied) in {result.seconds:.1f}s → {out}"
        )

    run()


def _run_on_cluster(scenario: Scenario, out: Path, size: int, master: str, memory_gib: float | None) -> None:
    """The door to `simulate.cluster`: one bar over the partitions while the cluster runs them."""
    from socialcredit.simulate.cluster import TASK_MEMORY_GIB, run_on_cluster

    with progress_bar(MofNCompleteColumn()) as bar:
        task = bar.add_task(f"partitions on {master}", total=None)

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = run_on_cluster(scenario, out, size, master, step, memory_gib or TASK_MEMORY_GIB)
    _said(scenario, result, out, f"on {master}")


def _run_partitioned(scenario: Scenario, out: Path, size: int, workers: int, memory_gib: float) -> None:
    """The door to `simulate.partition`: a bar per partition while it runs, one line when all are done."""
    from socialcredit.simulate.partition import run_partitioned, split

    with progress_bar(MofNCompleteColumn()) as bar:
        tasks = {p.key: bar.add_task(f"{p.key}: waiting", total=scenario.months) for p in split(scenario, size)}

        def step(key: str, done: int, total: int, label: str) -> None:
            bar.update(tasks[key], completed=done, description=f"{key}: {label}")

        result = run_partitioned(scenario, out, size, workers, memory_gib, step)
    _said(scenario, result, out, f"({workers} at a time)", f", peak {result.peak_gib:.1f} GiB")


def _said(scenario: Scenario, result: PartitionedResult, out: Path, where: str, extra: str = "") -> None:
    """The one line a partitioned run ends with, however its partitions ran."""
    denied = result.decisions.get("deny", 0)
    attempts = sum(result.decisions.values())
    console.print(
        f"{scenario.name}: {result.citizens:,} citizens in {len(result.partitions)} partitions {where}, "
        f"{scenario.months} months, {result.records:,} records, {attempts:,} service attempts ({denied:,} denied) "
        f"in {result.seconds:.1f}s{extra} → {out} (partitions in {out / 'partitions'})"
    )


__all__ = ["simulate_command"]
