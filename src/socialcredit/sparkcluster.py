"""A real Spark standalone cluster on 127.0.0.1: a master and workers, each its own JVM started from the
PySpark distribution's own classes (the wheel has no start-master.sh), on free ports, with bounded waits,
and every JVM stopped when the block ends, however it ends.

For the tests that run the engine and the simulator's partitions on a cluster, and for
`benchmarks/simulate.py --cluster`, which measures the partitions on one worker and on two. It needs
PySpark (the `spark` extra) and Java 17, and listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

START_SECONDS = 120  # a JVM's start on a loaded two-core machine; past this the start fails, it does not hang


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the JVM binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


# where a JVM's options can name a garbage collector (HotSpot refuses to start with two)
JAVA_OPTION_VARIABLES = ("SPARK_DAEMON_JAVA_OPTS", "SPARK_MASTER_OPTS", "SPARK_WORKER_OPTS", "JAVA_TOOL_OPTIONS",
                          "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS")  # fmt: skip


def daemon_java_options(environ: dict[str, str]) -> str | None:
    """The master's and workers' JVM options, unless the caller set their own: they only place executors and pass
    messages, so the quick compiler and one collector thread (`SPARK_DAEMON_JAVA_OPTS`; the standalone-cluster
    test file 197 -> 167 busy CPU-s, with the simulation's session on the quick compiler too). The collector
    only where no option names one."""
    from socialcredit.engine.executors.spark import ONE_RUN_JAVA  # PySpark: a cluster needs it anyway

    if environ.get("SPARK_DAEMON_JAVA_OPTS"):
        return None
    flags = [flag for v in JAVA_OPTION_VARIABLES for flag in environ.get(v, "").split()]
    named = any(flag.startswith("-XX:+Use") and flag.endswith("GC") for flag in flags)
    return ONE_RUN_JAVA + ("" if named else " -XX:+UseSerialGC")


def spark_env_options(environ: dict[str, str]) -> dict[str, str]:
    """The JVM option variables as Spark's own start script leaves them in `environ` once it has sourced the
    user's `spark-env.sh` (from SPARK_CONF_DIR, or SPARK_HOME/conf), as `spark-class` does before starting a
    JVM: a collector named there must count as one named in the environment. Spark's script reads the file,
    not this module, so the two can never read it differently."""
    script = (
        'source "$SPARK_HOME/bin/load-spark-env.sh" >/dev/null 2>&1; for v; do printf "%s=%s\\0" "$v" "${!v}"; done'
    )
    done = subprocess.run(["bash", "-c", script, "bash", *JAVA_OPTION_VARIABLES], env=environ,
                          capture_output=True, timeout=60, check=True)  # fmt: skip
    return dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if item)


def daemon_env(tmp: Path) -> dict[str, str]:
    """The environment a master or a worker starts in: logs and work under `tmp`, loopback only, and the JVM options
    of `daemon_java_options` unless the caller's environment or `spark-env.sh` set their own."""
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(tmp),
        "SPARK_WORKER_DIR": str(tmp / "work"),
        "SPARK_DAEMON_MEMORY": "256m",
    }
    options = daemon_java_options({**env, **spark_env_options(env)})
    return env if options is None else {**env, "SPARK_DAEMON_JAVA_OPTS": options}


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([str(spark_home() / "bin" / "spark-class"), *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """The JVM and anything it started (its own process group): TERM, then KILL after 20 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


def master_state(ui: int) -> dict[str, Any]:
    return httpx.get(f"http://127.0.0.1:{ui}/json/", timeout=5).json()


def _wait(what: str, ready: Callable[[], bool], procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if ready():
                return
        time.sleep(0.5)
    tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}" for log in logs)
    raise RuntimeError(f"the Spark {what} did not come up within {START_SECONDS} s:\n{tails}")


@contextlib.contextmanager
def standalone(tmp: Path, workers: int = 2, memory: str = "1g") -> Iterator[tuple[str, int]]:
    """(master URL, master web UI port) of a running cluster whose workers (one core and `memory` each) have
    all registered; logs and the workers' directories go in `tmp`."""
    env = daemon_env(tmp)
    (tmp / "work").mkdir(exist_ok=True)
    port, ui = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    logs = [tmp / "master.log"]
    try:
        procs.append(_start(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                             "--webui-port", str(ui)], logs[0], env))  # fmt: skip
        _wait("master", lambda: master_state(ui)["status"] == "ALIVE", procs, logs)
        url = f"spark://127.0.0.1:{port}"
        for i in range(workers):
            logs.append(tmp / f"worker{i}.log")
            procs.append(_start(["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port",
                                 str(free_port()), "--webui-port", str(free_port()), "--cores", "1", "--memory",
                                 memory, "--work-dir", str(tmp / "work"), url], logs[-1], env))  # fmt: skip
        _wait("workers", lambda: len([w for w in master_state(ui)["workers"] if w["state"] == "ALIVE"]) == workers,
              procs, logs)  # fmt: skip
        yield url, ui
    finally:
        for proc in reversed(procs):
            _stop(proc)
