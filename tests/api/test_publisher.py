"""When the writer publishes: after changed facts only once the writes pause (or have gone on for a while), so an
agency's batches sent one after the other do not each wait behind an engine run over the one before."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from test_api import IDS, base  # noqa: F401 (base is a fixture)

from socialcredit.api import writer
from socialcredit.api.service import Service
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
        assert not pub.due()  # nothing changed since

        _write(svc, 0)
        assert not pub.due()  # a write just now: more may follow
        pub.last_change -= 60.0
        assert pub.due()  # the writes paused for QUIET_S

        _write(svc, 1)
        assert not pub.due()  # another write starts the pause again
        pub.first_change -= 600.0
        assert pub.due()  # but the first unpublished write is SETTLE_S old: no longer put off

        after = pub.publish()
        assert after.generation == first.generation + 1 and not pub.due()
        with Store(after.path, read_only=True) as snap:
            ids = snap.con.execute("SELECT record_id FROM records WHERE record_id LIKE 'burst-%'").fetchall()
            scored = snap.con.execute("SELECT count(*) FROM record_entries e JOIN records r ON r.rkey = e.rkey "
                                      "WHERE r.record_id LIKE 'burst-%'").fetchall()[0][0]  # fmt: skip
        assert sorted(ids) == [("burst-0",), ("burst-1",)] and scored == 2  # both, with the engine run over them
    finally:
        svc.close()
