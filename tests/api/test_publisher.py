"""When the writer publishes: after changed facts only once the writes pause (or have gone on for a while), so an
agency's batches sent one after the other do not each wait behind an engine run over the one before; and how: the
engine runs beside the writes, so a write that arrives during a run commits at once."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from fastapi.testclient import TestClient
from test_api import IDS, ZHANG, base  # noqa: F401 (base is a fixture)

from socialcredit import decisions
from socialcredit.api import writer
from socialcredit.api.app import build_app
from socialcredit.api.service import Service
from socialcredit.engine import Engine, run_state
from socialcredit.snapshot import Snapshot
from socialcredit.store import Store

AS_OF = dt.datetime(2026, 9, 1)  # the service's clock: after the sample's last record


def _write(svc: Service, n: int) -> None:
    """A batch of one back-dated record as the records route writes it: committed, then `changed` under the lock."""
    row = {"record_id": f"burst-{n}", "citizen_id": sorted(IDS.values())[n], "behaviour": "unpaid_debt",
           "occurred_at": "2025-04-01T10:00", "reported_by": "commercial_banks",
           "attributes": {"amount": 5000, "days_late": 100}}  # fmt: skip
    with svc.lock:
        svc.store.ingest([row], name="test")
        svc.changed()


def test_a_burst_of_writes_is_published_once_it_pauses_or_has_gone_on_too_long(
    base: tuple[Path, dict[str, str]],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the publisher's thread is not started: `due` is what its loop asks, and the times are set by hand
    monkeypatch.setattr(writer, "QUIET_S", 60.0)
    monkeypatch.setattr(writer, "SETTLE_S", 600.0)
    db = tmp_path / "served.duckdb"
    shutil.copyfile(base[0], db)
    svc = Service(db, AS_OF)
    try:
        pub = writer.Publisher(svc)
        first = pub.publish()
        assert first is not None and not pub.due()  # nothing changed since

        _write(svc, 0)
        assert not pub.due()  # a write just now: more may follow
        pub.last_change -= 60.0
        assert pub.due()  # the writes paused for QUIET_S

        _write(svc, 1)
        assert not pub.due()  # another write starts the pause again
        pub.first_change -= 600.0
        assert pub.due()  # but the first unpublished write is SETTLE_S old: no longer put off

        after = pub.publish()
        assert after is not None and after.generation == first.generation + 1 and not pub.due()
        assert _published(after) == (["burst-0", "burst-1"], 2)  # both, with the engine run over them
    finally:
        svc.close()


def _burst(store: Store) -> tuple[list[str], int]:
    """The burst records a store holds, and how many of them its engine run scored."""
    ids = store.con.execute("SELECT record_id FROM records WHERE record_id LIKE 'burst-%' ORDER BY 1").fetchall()
    scored = store.con.execute("SELECT count(*) FROM record_entries e JOIN records r ON r.rkey = e.rkey "
                               "WHERE r.record_id LIKE 'burst-%'").fetchall()[0][0]  # fmt: skip
    return [i for (i,) in ids], scored


def _published(snap: Snapshot | Path) -> tuple[list[str], int]:
    """`_burst` of a snapshot (or a copy of the store)."""
    with Store(snap if isinstance(snap, Path) else snap.path, read_only=True) as store:
        return _burst(store)


T = TypeVar("T")


class HeldRun:
    """Every engine run stops at its record step until `go` is set; `entered` says one got there."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered, self.go = threading.Event(), threading.Event()
        real = Engine.records_table

        def held(engine: Engine, as_of: dt.datetime) -> None:
            self.entered.set()
            assert self.go.wait(120), "the test never let the run go on"
            real(engine, as_of)

        monkeypatch.setattr(Engine, "records_table", held)

    def during(self, work: Callable[[], T], meanwhile: Callable[[], None]) -> T:
        """`work` in a thread of its own and, once its engine run is held, `meanwhile` here; then the run goes on.
        What `work` returned (what it raised is raised here)."""
        got: list[T] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                got.append(work())
            except BaseException as e:  # raised again below, in the test's thread
                errors.append(e)

        worker = threading.Thread(target=run)
        worker.start()
        try:
            assert self.entered.wait(120), "no engine run was held"
            meanwhile()
        finally:
            self.go.set()
            worker.join(120)
        assert not worker.is_alive()
        if errors:
            raise errors[0]
        return got[0]


def _writes_at_once(svc: Service, n: int) -> None:
    """burst-n written from another thread, done within seconds: it did not wait for the held engine run."""
    write = threading.Thread(target=_write, args=(svc, n))
    write.start()
    write.join(15)
    assert not write.is_alive(), "the write waited for the engine run"


@pytest.fixture
def served(base: tuple[Path, dict[str, str]], tmp_path: Path) -> Iterator[Service]:  # noqa: F811
    db = tmp_path / "served.duckdb"
    shutil.copyfile(base[0], db)
    svc = Service(db, AS_OF)
    yield svc
    svc.close()


def _published_once(served: Service) -> writer.Publisher:
    """A publisher that has published the store once, and a write since (burst-0): its next publish runs the engine."""
    pub = writer.Publisher(served)
    assert pub.publish() is not None
    _write(served, 0)
    return pub


def test_a_write_during_an_engine_run_commits_at_once_and_is_published_by_the_next_run(
    served: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    pub = _published_once(served)
    first = pub.current
    assert first is not None
    got = HeldRun(monkeypatch).during(pub.publish, lambda: _writes_at_once(served, 1))
    assert got is None and pub.first_change is not None  # its run missed burst-1: not published, still to be
    after = pub.publish()  # the runs are let go now
    assert after is not None and after.generation == first.generation + 1
    assert _published(after) == (["burst-0", "burst-1"], 2)


def test_writes_that_never_pause_still_get_a_snapshot_once_the_first_is_settle_s_old(
    served: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that writes made stale is published anyway once the first unpublished write is SETTLE_S old: the
    engine catches up under the lock first, so the snapshot holds every write, scored."""
    pub = _published_once(served)
    first = pub.current
    assert first is not None

    def late_write() -> None:
        _writes_at_once(served, 1)
        with served.lock:
            assert pub.first_change is not None
            pub.first_change -= writer.SETTLE_S

    after = HeldRun(monkeypatch).during(pub.publish, late_write)
    assert after is not None and after.generation == first.generation + 1 and pub.first_change is None
    assert _published(after) == (["burst-0", "burst-1"], 2)


@pytest.mark.parametrize("waiting", ["a copy", "an engine run"])
def test_a_copy_or_another_engine_run_waits_for_the_run_beside_it(
    served: Service, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, waiting: str
) -> None:
    """While the publisher's run is open beside the service's connection, a copy of the store (a snapshot's, a
    preview's: DuckDB cannot checkpoint another transaction's changes) or an engine run the service needs for a
    question (it would write the same tables) waits for it, and then succeeds."""
    pub = _published_once(served)
    errors: list[BaseException] = []
    copy = tmp_path / "copy.duckdb"

    def work() -> None:
        try:
            with served.lock:
                if waiting == "a copy":
                    served.store.copy_file(copy)
                else:
                    decisions.ensure_fresh(served.store, AS_OF)
        except BaseException as e:  # what the test reports
            errors.append(e)

    waiter = threading.Thread(target=work)

    def wait_beside() -> None:
        waiter.start()
        waiter.join(1.0)
        assert not errors, errors  # it did not fail at once

    HeldRun(monkeypatch).during(pub.publish, wait_beside)
    waiter.join(120)
    assert not errors, errors
    if waiting == "a copy":
        assert _published(copy) == (["burst-0"], 1)  # the copy came after the run, whole
    assert run_state(served.store)[1] is False


def test_a_write_during_a_questions_engine_run_commits_at_once_and_the_answer_covers_it(
    served: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A question that needs an engine run (facts changed since the last) runs it beside the writes with the
    service's lock let go; a write meanwhile commits at once, and back under the lock the question's run covers
    it too."""
    _write(served, 0)

    def ask() -> bool:
        with served.question(AS_OF):
            return run_state(served.store)[1]  # whether facts changed since the run it is answered from

    assert HeldRun(monkeypatch).during(ask, lambda: _writes_at_once(served, 1)) is False
    assert _burst(served.store) == (["burst-0", "burst-1"], 2)


def test_a_write_during_a_decisions_engine_run_commits_at_once(
    base: tuple[Path, dict[str, str]],  # noqa: F811
    served: Service,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A decision asked after facts changed needs a run: the route makes it beside the writes too."""
    with TestClient(build_app(served)) as client:
        _write(served, 0)
        asked = HeldRun(monkeypatch).during(
            lambda: client.post("/api/v1/decisions", json={"citizen_id": ZHANG, "service": "rail.ticket"},
                                headers={"Authorization": f"Bearer {base[1]['service']}"}).status_code,
            lambda: _writes_at_once(served, 1),
        )  # fmt: skip
        assert asked == 200


def test_a_denial_notified_during_an_engine_run_is_kept(served: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decisions write the notifications a denial causes while a run is under way beside them; the run replaces
    only the listings it computes, so the denial written meanwhile is kept."""
    from socialcredit.store.decisions import notify_learned_by_denials

    pub = _published_once(served)
    ckey = served.store.ckey(ZHANG)

    def deny() -> None:
        with served.lock, served.store.transaction():
            notify_learned_by_denials(served.store, [(ckey, AS_OF, "told during the run")])

    HeldRun(monkeypatch).during(pub.publish, deny)
    told = served.store.con.execute(
        "SELECT count(*) FROM notifications WHERE ckey = ? AND message = 'told during the run'", [ckey]
    ).fetchall()[0][0]
    listed = served.store.con.execute("SELECT count(*) FROM notifications WHERE kind = 'listed'").fetchall()[0][0]
    assert told == 1 and listed > 0
