"""`socialcredit serve`: one writer and several readers of a store, kept running by this supervisor.

The supervisor opens two listening sockets and never closes them while it runs: the public one (host:port),
shared by the reader processes (`socialcredit.api.reader`, uvicorn each; the kernel hands each new
connection to one of them), and a loopback one for the writer (`socialcredit.api.writer`), which only the
readers use. Holding them here means a reader or the writer that dies is restarted onto the same socket:
connections that arrive meanwhile wait in the socket's queue instead of being refused.

Why uvicorn workers that share one socket, rather than a front process that routes: a front adds a hop
(and a process on two cores) to every request, while most requests are decisions a reader answers
itself; only writes and the few questions a snapshot cannot answer take the second hop, to the writer.
The server stack was chosen by measurement (`benchmarks/decide.py` prints the empty-endpoint floor of
the same stack, and `--stacks` those of granian and hypercorn; on the README's shared 2-core machine,
uvicorn with two workers had the highest median floor and the lowest p99 over three runs).

`serving.json` in the store's snapshot directory names the processes (supervisor, writer, readers) while
it runs, for operators and the fault tests.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from socialcredit import snapshot
from socialcredit.api.processes import SHUTDOWN_GRACE_S, TOKEN_ENV, TOKEN_HEADER

READERS = 2
STATUS = "serving.json"
RESTART_PAUSE_S = 1.0
START_TIMEOUT_S = 300.0  # the writer's first snapshot may need an engine run over a large store


class Supervisor:
    def __init__(self, db: Path, host: str, port: int, as_of: dt.datetime | None, readers: int = READERS) -> None:
        self.db, self.as_of, self.readers_wanted = db, as_of, readers
        self.public = socket.create_server((host, port), backlog=4096)
        self.inner = socket.create_server(("127.0.0.1", 0), backlog=4096)
        for s in (self.public, self.inner):
            s.set_inheritable(True)
        self.writer_url = f"http://127.0.0.1:{self.inner.getsockname()[1]}"
        self.env = {**os.environ, TOKEN_ENV: secrets.token_hex(24)}
        self.writer: subprocess.Popen[bytes] | None = None
        self.readers: list[subprocess.Popen[bytes]] = []
        self.stopping = False
        self.writer_started = -RESTART_PAUSE_S

    def _clock(self) -> list[str]:
        return ["--as-of", self.as_of.isoformat()] if self.as_of is not None else []

    def start_writer(self) -> None:
        if time.monotonic() - self.writer_started < RESTART_PAUSE_S:
            time.sleep(RESTART_PAUSE_S)  # a writer that cannot start is not restarted in a tight loop
        self.writer_started = time.monotonic()
        self.writer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "socialcredit.api.writer",
                "--db",
                str(self.db),
                "--fd",
                str(self.inner.fileno()),
                *self._clock(),
            ],
            pass_fds=[self.inner.fileno()],
            env=self.env,
        )
        self._status()

    def start_reader(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "socialcredit.api.reader",
                "--db",
                str(self.db),
                "--fd",
                str(self.public.fileno()),
                "--writer",
                self.writer_url,
                *self._clock(),
            ],
            pass_fds=[self.public.fileno()],
            env=self.env,
        )
        return proc

    def wait_writer_ready(self) -> None:
        """Until the writer answers (its first snapshot is published then); SystemExit if it died."""
        import httpx

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and not self.stopping:
            assert self.writer is not None
            if self.writer.poll() is not None:
                raise SystemExit(
                    f"the writer of {self.db} stopped (exit status {self.writer.returncode}); its message is above"
                )
            try:
                r = httpx.get(
                    self.writer_url + "/internal/v1/ready", headers={TOKEN_HEADER: self.env[TOKEN_ENV]}, timeout=2
                )
                if r.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        if not self.stopping:
            raise SystemExit(f"the writer of {self.db} did not start within {START_TIMEOUT_S:.0f} s")

    def _status(self) -> None:
        d = snapshot.snapshot_dir(self.db)
        d.mkdir(exist_ok=True)
        status: dict[str, Any] = {
            "supervisor": os.getpid(),
            "writer": self.writer.pid if self.writer else None,
            "readers": [p.pid for p in self.readers],
            "writer_url": self.writer_url,
        }
        part = d / f".{STATUS}.part"
        part.write_text(json.dumps(status))
        os.replace(part, d / STATUS)

    def run(self) -> None:
        def stop(signum: int, frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            self.start_writer()
            self.wait_writer_ready()
            self.readers = [self.start_reader() for _ in range(self.readers_wanted)]
            self._status()
            while not self.stopping:
                time.sleep(0.1)
                self._restart_dead()
        finally:
            self.shutdown()

    def _restart_dead(self) -> None:
        changed = False
        if self.writer is not None and self.writer.poll() is not None and not self.stopping:
            print(
                f"socialcredit serve: the writer (PID {self.writer.pid}) stopped with status "
                f"{self.writer.returncode}; restarting it",
                file=sys.stderr,
                flush=True,
            )
            self.start_writer()
            changed = True
        for i, proc in enumerate(self.readers):
            if proc.poll() is not None and not self.stopping:
                print(
                    f"socialcredit serve: reader PID {proc.pid} stopped with status {proc.returncode}; restarting it",
                    file=sys.stderr,
                    flush=True,
                )
                self.readers[i] = self.start_reader()
                changed = True
        if changed:
            self._status()

    def shutdown(self) -> None:
        """SIGTERM to every child at once (each finishes its requests in flight, within SHUTDOWN_GRACE_S),
        then SIGKILL to any still running; the writer's last act is writing what it buffered."""
        children = [p for p in [*self.readers, self.writer] if p is not None and p.poll() is None]
        for p in children:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_GRACE_S + 1.0
        for p in children:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        (snapshot.snapshot_dir(self.db) / STATUS).unlink(missing_ok=True)
        self.public.close()
        self.inner.close()


def serve_workers(db: Path, host: str, port: int, as_of: dt.datetime | None, readers: int = READERS) -> None:
    """Run the writer and `readers` readers of `db` on host:port until SIGTERM or Ctrl-C."""
    Supervisor(db, host, port, as_of, readers).run()
