"""A real standalone Spark cluster (a master and two workers on 127.0.0.1, started once for this module and
stopped after it): an engine run on it, going on from a DuckDB run's state, gives the derived tables of a full
DuckDB run; the simulator's partitions as its tasks give the local process pool's series; and a run that loses
a worker while its partitions run still completes, with the same series. One cluster for all three, because
each JVM takes seconds to start on two cores (the worker-killing test comes last)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from socialcredit.engine import Engine
from socialcredit.sample import load_sample
from socialcredit.simulate.partition import run_partitioned
from socialcredit.simulate.scenario import parse_scenario
from socialcredit.sparkcluster import JAVA_OPTION_VARIABLES, daemon_env, daemon_java_options, master_state, standalone
from socialcredit.store import Store

from .conftest import require_spark
from .derived import but_run, derived, same

# The sample to 1 July 2025, its fifth assessment: June holds a court listing and its blacklist stay, network
# entries and a characteristic. DuckDB scores it to 1 June first, and the cluster's run goes on from the state
# that run left: one month of the loop, but every step of a run, and the carried state handed to a cluster and
# back. (Five months on the cluster took 65 s here, one 52-58 s: a run's cost there is mostly its jobs' fixed
# cost, not its months. The local-mode tests score whole histories.)
ENGINE_AS_OF = "2025-07-01"
CARRIED_FROM = "2025-06-01"

# small on purpose: a partition's cost is mostly its store's set-up, and the point is placement and re-runs
SCENARIO = """\
name: spark-partitions
seed: 11
start: 2025-01-01
months: 2
cities:
  shenzhen: 90
  rongcheng: 60
rates:
  scale: 3.0
services:
  rail.ticket: 0.05
"""
SIZE = 50  # four partitions: shenzhen 2, rongcheng 2 (one more than the cluster's two cores)


def series(run: Path) -> dict[str, object]:
    return {p.name: pq.read_table(p) for p in sorted(run.glob("*.parquet"))}


def simulate_on(master: str, out: Path) -> subprocess.Popen[str]:
    """`socialcredit simulate … --cluster MASTER` in a process of its own: a process has one Spark context,
    and this suite's other tests hold a local one."""
    scenario = out.parent / "scenario.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    return subprocess.Popen([sys.executable, "-m", "socialcredit.cli", "simulate", str(scenario), "--out", str(out),
                             "--partition-size", str(SIZE), "--cluster", master],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def finished(proc: subprocess.Popen[str]) -> str:
    try:
        output, _ = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, output
    return output


@pytest.fixture(scope="module")
def pool_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_spark()
    out = tmp_path_factory.mktemp("pool") / "run"
    run_partitioned(parse_scenario(SCENARIO, "spark-partitions.yaml"), out, SIZE, workers=2, memory_gib=2)
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    require_spark()
    with standalone(tmp_path_factory.mktemp("cluster"), workers=2) as (master, ui):
        yield master, ui


def test_the_daemons_options_never_name_a_second_collector() -> None:
    """The test cluster's master and workers run on the quick compiler and the serial collector, but a JVM
    given two collectors does not start: none where the caller's options name one, and the caller's own
    daemon options as they are."""
    assert daemon_java_options({}) == "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    assert daemon_java_options({"JAVA_TOOL_OPTIONS": "-Xss4m -XX:+UseZGC"}) == "-XX:TieredStopAtLevel=1"
    assert daemon_java_options({"SPARK_WORKER_OPTS": "-XX:+UseParallelGC"}) == "-XX:TieredStopAtLevel=1"
    assert daemon_java_options({"SPARK_DAEMON_JAVA_OPTS": "-Xmx1g"}) is None


def test_a_collector_or_daemon_options_set_in_spark_env_sh_count_too(tmp_path: Path, monkeypatch) -> None:
    """`spark-class` sources the user's `spark-env.sh` before it starts a master or a worker: a collector named
    there is not doubled by ours, and daemon options set there are left to apply alone."""
    require_spark()
    conf = tmp_path / "conf"
    conf.mkdir()
    monkeypatch.setenv("SPARK_CONF_DIR", str(conf))
    for name in (*JAVA_OPTION_VARIABLES, "SPARK_ENV_LOADED"):
        monkeypatch.delenv(name, raising=False)
    assert daemon_env(tmp_path)["SPARK_DAEMON_JAVA_OPTS"] == "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"  # no file
    (conf / "spark-env.sh").write_text('SPARK_WORKER_OPTS="-Dspark.worker.cleanup.enabled=true -XX:+UseParallelGC"\n')
    assert daemon_env(tmp_path)["SPARK_DAEMON_JAVA_OPTS"] == "-XX:TieredStopAtLevel=1"
    (conf / "spark-env.sh").write_text('SPARK_DAEMON_JAVA_OPTS="$SPARK_DAEMON_JAVA_OPTS -Xss4m"\n')
    assert "SPARK_DAEMON_JAVA_OPTS" not in daemon_env(tmp_path)  # the file's own, as spark-class sources it


def test_the_engine_on_a_standalone_cluster_is_duckdbs(cluster, tmp_path: Path) -> None:
    """`score --engine spark --master spark://…` (its own process: a process holds one Spark context) runs the
    engine on the cluster, going on from the state a DuckDB run left, and the store it writes home holds the
    derived tables of one full DuckDB run."""
    master, ui = cluster
    duck, spark = tmp_path / "duck.duckdb", tmp_path / "spark.duckdb"
    with Store(duck) as store:
        store.init()
        load_sample(store)
    shutil.copy(duck, spark)
    with Store(duck) as store:
        Engine(store).run(dt.datetime.fromisoformat(ENGINE_AS_OF))  # a time without an offset is CST, as --as-of
        expected = derived(store)
    assert expected["list_entries"][1] and len({r[3] for r in expected["state_ledger"][1]}) == 2  # what it covers
    with Store(spark) as store:
        Engine(store).run(dt.datetime.fromisoformat(CARRIED_FROM))
        assert not store.con.execute("SELECT * FROM list_entries").fetchall()  # the listing is the cluster's to make
    done = subprocess.run([sys.executable, "-m", "socialcredit.cli", "score", "--db", str(spark), "--as-of",
                           ENGINE_AS_OF, "--engine", "spark", "--master", master],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"kept the last run's assessments before {CARRIED_FROM}" in " ".join(done.stdout.split()), done.stdout
    # the work ran on the cluster: one application, finished, that held both workers' cores
    apps = master_state(ui)["completedapps"]
    assert [a["name"] for a in apps] == ["socialcredit"] and apps[0]["cores"] == 2
    with Store(spark) as store:
        same(but_run(expected), but_run(derived(store)))


def test_partitions_on_a_cluster_give_the_process_pools_series(pool_run: Path, cluster, tmp_path: Path) -> None:
    master, ui = cluster
    out = tmp_path / "run"
    said = finished(simulate_on(master, out))
    assert "in 4 partitions on spark://127.0.0.1" in " ".join(said.split())
    assert sorted(p.name for p in (out / "partitions").iterdir()) == sorted(
        p.name for p in (pool_run / "partitions").iterdir()
    )  # every partition in place, no attempt left over
    got, want = series(out), series(pool_run)
    assert got.keys() == want.keys() and "scores.parquet" in got
    for name, table in want.items():
        assert got[name].equals(table), name
    apps = master_state(ui)["completedapps"]
    assert apps and all(a["state"] == "FINISHED" for a in apps)  # it really ran on this cluster


def _worker_pid(port: int) -> int:
    found = subprocess.run(
        ["pgrep", "-f", f"deploy.worker.Worker --host 127.0.0.1 --port {port} "], capture_output=True, text=True
    ).stdout.split()
    assert len(found) == 1, found
    return int(found[0])


def test_a_run_that_loses_a_worker_completes_with_the_same_series(pool_run: Path, cluster, tmp_path: Path) -> None:
    """A worker (with its executor and Python workers, one process group) is killed outright once a
    partition is under way; Spark runs its tasks again on the other worker. Last in this module: the
    cluster has one worker afterwards."""
    master, ui = cluster
    out = tmp_path / "run"
    victim = master_state(ui)["workers"][0]["port"]
    pid = _worker_pid(victim)
    killed = threading.Event()

    def kill_when_running() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed.is_set():
            if (out / "partitions").exists() and any(p.name.startswith(".") for p in (out / "partitions").iterdir()):
                os.killpg(pid, signal.SIGKILL)
                killed.set()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_running, daemon=True)
    killer.start()
    finished(simulate_on(master, out))
    killer.join(timeout=5)
    assert killed.is_set(), "no partition was under way to kill a worker under"
    states = {w["port"]: w["state"] for w in master_state(ui)["workers"]}
    assert states[victim] != "ALIVE"
    got, want = series(out), series(pool_run)
    assert got.keys() == want.keys()
    for name, table in want.items():
        assert got[name].equals(table), name
    assert not [p for p in (out / "partitions").iterdir() if p.name.startswith(".")]  # no attempt left over
