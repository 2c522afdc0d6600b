"""Partitions as Spark tasks: a partitioned run (see `partition.py`) on a Spark cluster instead of local
worker processes.

Why Spark and not a pool of our own: a country does not fit one machine, and Spark already knows how to
place tasks on workers, notice a lost worker and run its tasks again elsewhere. Each partition is one
task. A partition's run is deterministic from its seed, city and district, so a task run twice (after a
lost worker, or a retried failure) gives the same run; it writes into a directory of its own attempt
and moves it into place only when it is whole, so a half-written attempt never becomes the partition.
The run's series are then merged from the partitions' Parquet files on the driver, as the process pool
does, and equal its run's for the same scenario and partition size (`tests/spark/test_cluster.py`).

The partitions' directories must be on storage every worker sees: the driver's disk for a cluster on
this machine (the workers are local processes), a shared file system for a real one.

The limits of `partition.py` hold here too: a partition sees only its own district's contacts and
households.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from socialcredit.simulate.partition import Partition, PartitionedResult, finish, prepare, run_partition
from socialcredit.simulate.scenario import Scenario
from socialcredit.yamlio import LocatedError

ClusterProgress = Callable[[int, int], None]  # (partitions done, partitions)
TASK_MEMORY_GIB = 2.0  # each task's DuckDB memory by default (one partition, one core)


def _task(item: tuple[str, dict[str, Any]], out_dir: str, settings: dict[str, str]) -> dict[str, Any]:
    """On a Spark executor: one partition's run, moved into `partitions/<key>` once whole."""
    key, data = item
    partition = Partition(key, Scenario.model_validate(data))
    final = Path(out_dir) / "partitions" / key
    attempt = final.with_name(f".{key}.attempt-{uuid.uuid4().hex[:12]}")
    try:
        info = run_partition(partition, attempt, settings)
        try:
            attempt.rename(final)
        except OSError:
            if not (final / "run.json").exists():  # not another attempt's whole run: a real failure
                raise
    finally:
        shutil.rmtree(attempt, ignore_errors=True)  # gone once renamed; a failed attempt's leftovers otherwise
    return info


def run_on_cluster(
    scenario: Scenario,
    out_dir: Path,
    size: int,
    master: str,
    progress: ClusterProgress | None = None,
    memory_gib: float = TASK_MEMORY_GIB,
) -> PartitionedResult:
    """Run `scenario` as partitions of at most `size` citizens, one Spark task each, on `master`
    (`local[N]`, or `spark://HOST:PORT`), and merge the series. `memory_gib` bounds each task's DuckDB."""
    # PySpark warns on import that it does not yet support pandas 3, which this run does not use through it
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    try:
        from pyspark import SparkContext

        from socialcredit.engine.executors.spark import ONE_RUN, session
    except ImportError:
        raise LocatedError(
            "--cluster needs PySpark: pip install 'socialcredit[spark]' (and a Java 17 runtime: "
            "apt-get install openjdk-17-jre-headless)"
        ) from None
    active = SparkContext._active_spark_context  # one per process (Spark's rule): reuse it only if it is this master
    if active is not None and active.master != master:
        raise LocatedError(
            f"this process already has a Spark session on {active.master}; run the cluster "
            f"simulation on {master} in a process of its own (the `socialcredit simulate` command)"
        )
    began = time.perf_counter()
    out_dir = Path(out_dir).resolve()  # the tasks run elsewhere: they need the absolute path
    parts = prepare(scenario, out_dir, size)
    settings = {"threads": "1", "memory_limit": f"{max(0.5, 0.75 * memory_gib):.1f}GiB"}  # one core per task
    items = [(p.key, p.scenario.model_dump(mode="json", by_alias=True)) for p in parts]
    # a task that fails for its own reasons is tried again, then the run fails (local masters default to once)
    # the JVMs only hand out the partitions' tasks (one job) and pipe their results: compiling quickly beats
    # compiling well there whatever the run's size (ONE_RUN), as for a one-command engine run on a small store
    spark = session(master, f"socialcredit-simulate-{scenario.name}", {"spark.task.maxFailures": "4", **ONE_RUN})
    sc = spark.sparkContext
    cores = sc.defaultParallelism  # Spark's default parallelism for this master (its cores, or at least 2)
    try:
        where = str(out_dir)
        job = sc.parallelize(items, len(items)).map(lambda item: _task(item, where, settings))
        infos: list[dict[str, Any]] = []
        failure: list[BaseException] = []

        def collect() -> None:
            try:
                infos.extend(job.collect())
            except BaseException as e:  # raised below, in the caller's thread
                failure.append(e)

        worker = threading.Thread(target=collect, name="spark-collect", daemon=True)
        worker.start()
        tracker = sc.statusTracker()
        while worker.is_alive():
            worker.join(0.5)
            if progress is not None:
                done = sum(info.numCompletedTasks for sid in tracker.getActiveStageIds()
                           if (info := tracker.getStageInfo(sid)) is not None)  # fmt: skip
                progress(min(done, len(parts)), len(parts))
        if failure:
            raise LocatedError(f"the cluster run failed: {str(failure[0]).splitlines()[0][:500]}") from failure[0]
        if progress is not None:
            progress(len(parts), len(parts))
    finally:
        if active is None:  # ours: stopped; a session the caller had stays theirs
            spark.stop()
        for left in (out_dir / "partitions").glob(".*.attempt-*"):  # a killed attempt cannot clean up after itself
            shutil.rmtree(left, ignore_errors=True)
    by_key = {i["partition"]: i for i in infos}
    how = {"size": size, "cluster": master, "parallelism": cores, "duckdb": settings}
    # no sampler reaches the executors' machines: the peak is the largest one task's (as it reported it)
    peak = max((float(i["worker_peak_gib"]) for i in infos), default=0.0)
    return finish(scenario, out_dir, [by_key[p.key] for p in parts], how, began, peak, cores)


__all__ = ["run_on_cluster"]
