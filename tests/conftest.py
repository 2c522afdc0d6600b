"""Shared factories: small custom rulebooks, stores built from them, synthetic citizens and records."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, settings

import socialcredit.store
from socialcredit.ids import make_id
from socialcredit.store import Store

# Under pytest-xdist (`make test`: two workers on two cores) the stores a worker opens run DuckDB on one thread:
# DuckDB gives every database a thread per core, so two workers each running a query on two threads
# oversubscribe the cores, and most of the suite's CPU is DuckDB's on stores of a few rows (where a second
# thread buys nothing: an engine run on the sample, best of six, 0.56-0.60 s of CPU on one thread against
# 0.66-0.78 on two, no slower). The whole suite in the checkout, 7 December: 761 s and 733 s of pytest (1,473 and
# 1,412 busy CPU-seconds of the two cores), against 855 s (1,637) with DuckDB's default. The servers and commands
# the tests start as processes of their own keep the default, so DuckDB's parallel execution stays under test.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _connect = socialcredit.store.connect

    def _one_thread(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        con = _connect(path, read_only)
        con.execute("SET threads = 1")
        return con

    socialcredit.store.connect = _one_thread

SLOW_SCALE = float(os.environ.get("SOCIALCREDIT_SLOW_SCALE", "1"))
"""The size of the checks marked `slow`, as a fraction of their whole (1 by hand; `.ci/run` sets 0.1): each such
test says what it scales with it."""

# Hypothesis profiles, chosen by HYPOTHESIS_PROFILE (default `ci`, what `make test` and CI run):
# - ci: derandomized and without an example database, so a run depends on no earlier run and fails the
#   same way twice; tests keep the example counts they state (most are small: each example builds a store);
# - nightly: random, thousands of examples for the tests that scale with `examples()`, failures kept in
#   the ignored .hypothesis/ directory and replayed first next time.
_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, print_blob=True, suppress_health_check=_HEALTH
)
settings.register_profile("nightly", max_examples=2000, deadline=None, print_blob=True, suppress_health_check=_HEALTH)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


# How `make test` spreads the suite over two pytest-xdist workers (`--dist loadscope`, with the scope below).
# A scope is a file (its module-scoped fixtures are built once), or a whole folder whose tests share a costly
# session-scoped fixture (a simulated run, the pages' society), so that fixture is built on one worker only.
# Why a scheduler hook and not `--dist loadgroup` with xdist_group marks: under pytest 9 the worker's renaming
# of node IDs that loadgroup relies on has no effect (pytest reads `Node._id`), so every file was split over
# both workers and each built its module fixtures twice — the Spark sample run among them.
# The Spark folder is one scope but for its cluster tests (which start JVMs of their own, not the session): a
# worker that ran two of its files started a local Spark session (a JVM, 10-30 s of two shared cores) for each.
_SHARED = {"report", "pages", "spark"}
_OWN = {"tests/spark/test_cluster.py"}
# The costliest scopes go first, longest first, so that the two workers finish together (the rest follow
# in collection order); measured with `--durations` on two cores
_FIRST = (
    "tests/spark",
    "tests/spark/test_cluster.py",
    "tests/report",
    "tests/oracle/test_oracle.py",
    "tests/pages",
)
TESTS = Path(__file__).resolve().parent


def scope_of(nodeid: str) -> str:
    """The scheduling scope of a test: its folder under tests/ if that folder is shared (and its file is not one
    of `_OWN`), else its file."""
    path = nodeid.split("::", 1)[0]
    parts = path.split("/")
    shared = len(parts) > 2 and parts[0] == "tests" and parts[1] in _SHARED and path not in _OWN
    return "/".join(parts[:2]) if shared else path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The costliest scopes first (a stable sort: within and after them, collection order)."""
    rank = {scope: i for i, scope in enumerate(_FIRST)}
    items.sort(key=lambda item: rank.get(scope_of(item.nodeid), len(rank)))


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Under `--dist loadscope`, scopes as `scope_of` says, in collection order (no reordering by size)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FolderOrFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    config.option.loadscopereorder = False
    return FolderOrFile(config, log)


def examples(ci: int, nightly: int) -> int:
    """A test's example count under the loaded profile: `ci` in the suite, `nightly` by hand."""
    return nightly if PROFILE == "nightly" else ci


REGION = "371082"

NATIONAL_YAML = """\
jurisdiction: national
name: Nation
level: national
version: 1
effective_from: 2020-01-01
source: illustrative
scale: {base: 100, min: 0, max: 200}
grades:
  - {grade: A, min: 120}
  - {grade: B, min: 60}
  - {grade: C, min: 30}
  - {grade: D, min: 0}
disclosure: {notify_citizens: true}
rules:
  - id: late.mild
    behaviour: late_bill_payment
    when: "days_late >= 30 and days_late < 90"
    points: -10
    valid_for: 1y
    source: illustrative
  - id: late.severe
    behaviour: late_bill_payment
    when: "days_late >= 90"
    points: -40
    valid_for: 1y
    source: illustrative
  - id: volunteer
    behaviour: volunteer_work
    points: 5
    valid_for: 2y
    source: illustrative
  - id: court_defaulter
    characteristic: court_defaulter
    points: -50
    source: illustrative
  - id: contacts
    characteristic: blacklisted_contacts
    when: "share >= 0.5"
    points: -7
    source: illustrative
caps:
  - id: volunteer.cap
    behaviour: volunteer_work
    per: year
    max: 10
    source: illustrative
lists:
  - id: blacklist
    kind: blacklist
    label: Blacklist
    grades: [D]
    triggers:
      - characteristic: court_defaulter
    min_stay: 3m
    measures: [air_ban]
    source: illustrative
  - id: rail_list
    kind: blacklist
    label: Rail ban
    triggers:
      - behaviour: smoking_on_train
        duration: 180d
    measures: [rail_ban]
    source: illustrative
  - id: whitelist
    kind: whitelist
    label: Honour roll
    grades: [A]
    measures: [hospital_priority]
    source: illustrative
memory:
  - id: once
    after: blacklist
    never_lists: [whitelist]
    source: illustrative
"""

CITY_YAML = """\
jurisdiction: testcity
name: Test City
level: city
extends: national
region_code: "371082"
version: 1
effective_from: 2020-01-01
source: illustrative
disclosure: {notify_citizens: NOTIFY}
"""

CITY_V2_YAML = """\
jurisdiction: testcity
name: Test City
level: city
extends: national
region_code: "371082"
version: 2
effective_from: 2024-01-01
source: illustrative
disclosure: {notify_citizens: NOTIFY}
rules:
  - id: late.severe
    behaviour: late_bill_payment
    when: "days_late >= 90"
    points: -80
    valid_for: 1y
    source: illustrative
"""


def city_yaml(version: int = 1, notify: bool = True) -> str:
    text = CITY_YAML if version == 1 else CITY_V2_YAML
    return text.replace("NOTIFY", "true" if notify else "false")


def cst(*a: int) -> dt.datetime:
    """A CST wall-clock time as an aware datetime."""
    return dt.datetime(*a, tzinfo=dt.timezone(dt.timedelta(hours=8)))


AGENCY = {
    "late_bill_payment": "state_grid",
    "volunteer_work": "volunteer_association",
    "smoking_on_train": "china_railway",
    "court_defaulter_listing": "local_peoples_court",
    "court_defaulter_delisting": "local_peoples_court",
}


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[..., Store]:
    """make_store(*yaml_texts) → an initialised store holding only those rulebook layers."""
    stores: list[Store] = []
    counter = itertools.count()

    def make(*texts: str, name: str | None = None, memory: bool = False) -> Store:
        texts = texts or (NATIONAL_YAML, city_yaml())
        store = Store(":memory:" if memory else tmp_path / (name or f"s{next(counter)}.duckdb"))
        store.init(load_shipped_rulebooks=False)
        for i, t in enumerate(texts):
            store.add_rulebook(t, f"layer{i}.yaml")
        stores.append(store)
        return store

    yield make
    for s in stores:
        s.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    return make_store()


def citizen(
    n: int, sex: str = "M", city: str = "testcity", born: dt.date = dt.date(1980, 1, 1), **extra: object
) -> dict[str, object]:
    seq = 2 * n + (1 if sex == "M" else 0)
    cid = make_id(REGION, born, seq)
    return {"citizen_id": cid, "name": f"Person {n}", "sex": sex, "birth_date": born.isoformat(), "city": city, **extra}


@pytest.fixture
def make_citizens() -> Callable[..., list[str]]:
    """make_citizens(store, n, contacts={i: [j, …]}, parents={i: [j, …]}) → resident IDs."""

    def make(
        store: Store, n: int, contacts: dict[int, list[int]] | None = None, parents: dict[int, list[int]] | None = None
    ) -> list[str]:
        rows = [citizen(i) for i in range(n)]
        idl = [r["citizen_id"] for r in rows]
        for i, js in (contacts or {}).items():
            rows[i]["contacts"] = [idl[j] for j in js]
        for i, js in (parents or {}).items():
            rows[i]["parents"] = [idl[j] for j in js]
        store.add_citizens(rows)
        return idl

    return make


@contextlib.contextmanager
def held_by_another_process(path: Path) -> Iterator[subprocess.Popen[str]]:
    """A second process that opens the DuckDB file `path` and keeps it open (as a running server does) until
    the block ends; it is killed then, and it ends itself after a minute if nothing kills it."""
    hold = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)"
    with subprocess.Popen([sys.executable, "-c", hold, str(path)], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            assert ready and proc.stdout.readline().strip() == "held", "the holding process did not open the store"
            yield proc
        finally:
            proc.kill()
            proc.wait(timeout=30)


def rec(rid: str, cid: str, behaviour: str, at: dt.datetime, **attrs: object) -> dict[str, object]:
    return {
        "record_id": rid,
        "citizen_id": cid,
        "behaviour": behaviour,
        "occurred_at": at.isoformat(),
        "reported_by": AGENCY[behaviour],
        "attributes": attrs,
    }


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    """Where the browser tests put their screenshots: a temporary directory, so a test run never changes
    a tracked file; `make screenshots` sets SOCIALCREDIT_SCREENSHOTS=docs to refresh the README's."""
    if os.environ.get("SOCIALCREDIT_SCREENSHOTS") == "docs":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOTS
    return Path(tmp_path_factory.mktemp("screenshots"))


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright; `make test` installs it, so its absence is a failure, not a skip."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} missing: run `make test`, which installs Debian's chromium package"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, screenshots):
    """A fresh page that records every failed request and console error, so tests can assert there were none."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    pg.failed_requests = []  # type: ignore[attr-defined]
    pg.console_errors = []  # type: ignore[attr-defined]
    pg.shots = screenshots  # type: ignore[attr-defined]
    pg.on("requestfailed", lambda r: pg.failed_requests.append(r.url))  # type: ignore[attr-defined]
    pg.on("response", lambda r: r.status >= 400 and pg.failed_requests.append(f"{r.status} {r.url}"))  # type: ignore[attr-defined]
    pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))  # type: ignore[attr-defined]
    yield pg
    context.close()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (servers in tests listen there only)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a served store's whole process group (supervisor, writer, readers: a machine losing power), and
    wait until none of it holds the store (at most 30 s).

    A killed process holds nothing once all its threads are zombies (its files, and the store's lock, close with
    the last), and the writer and readers, orphaned by the supervisor's death, are reaped by whatever init the
    machine has, on its own schedule (seconds, here): so the wait is for the group's last thread still running,
    not for the group to be gone."""
    import signal
    import time

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not _running_in_group(proc.pid):
            return
        time.sleep(0.02)
    raise AssertionError(f"process group {proc.pid} still running 30 s after SIGKILL")


def _running_in_group(pgid: int) -> list[int]:
    """The processes of group `pgid` with a thread that is not a zombie (Linux's /proc: state and group in
    `stat`). Every thread, not the process's own line: a killed process's first thread can be a zombie while
    the others still exit, and the files (the store's lock) close with the last."""
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):  # a process that ended while we looked
            if int(_stat_fields(stat)[2]) != pgid:
                continue
            if any(_stat_fields(task)[0] not in ("Z", "X") for task in stat.parent.glob("task/*/stat")):
                running.append(int(stat.parent.name))
    return running


def _stat_fields(stat: Path) -> list[str]:
    """State, parent and process group: the fields after the command's closing parenthesis."""
    return stat.read_text().rsplit(")", 1)[1].split()[:3]


def serve(
    db: Path, port: int, log: Path, ready: str = "/openapi.json", answered: list[Any] | None = None
) -> subprocess.Popen[bytes]:
    """`socialcredit serve` in its own process on 127.0.0.1, returned once `ready` answers 200 (at most 60 s);
    its stderr is appended to `log`, and that first answer to `answered` when given."""
    import time

    import httpx

    with log.open("ab") as err:
        # its own process group: the supervisor, its writer and its readers, killed together by kill_group
        proc = subprocess.Popen(
            [sys.executable, "-m", "socialcredit.cli", "serve", "--db", str(db), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            first = httpx.get(f"http://127.0.0.1:{port}{ready}", timeout=5)
            if first.status_code == 200:
                if answered is not None:
                    answered.append(first)
                return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")
