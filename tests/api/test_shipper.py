"""A reader's shipper against a writer that refuses one batch for good: the batch is set aside, kept with
the writer's reason, and the batches after it still go (retrying it would hold them back forever)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from socialcredit.api.reader import Shipper


def _writer(refuse: set[int], down: list[bool]) -> tuple[httpx.MockTransport, list[int]]:
    """A fake writer: 503 while `down[0]`, 400 for the sequence numbers in `refuse`, else takes the batch."""
    taken: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seq = json.loads(request.content)["seq"]
        if down[0]:
            return httpx.Response(503, text="writer restarting")
        if seq in refuse:
            return httpx.Response(400, json={"detail": "a shipment not in the readers' form: test"})
        taken.append(seq)
        return httpx.Response(200, json={"recorded": 1})

    return httpx.MockTransport(handle), taken


def _audit(shipper: Shipper, action: str) -> None:
    shipper.logged(("citizen:c1", action, "c1", "{}", "2025-06-01T00:00:00"))


def test_a_batch_refused_for_good_is_kept_and_the_next_ones_go(tmp_path: Path) -> None:
    transport, taken = _writer(refuse={1}, down=[False])
    shipper = Shipper("http://writer", "token", refused=tmp_path / "refused")
    shipper._client = httpx.Client(transport=transport, base_url="http://writer")
    _audit(shipper, "read standing")
    assert shipper.ship()  # batch 1 refused (set aside), nothing else waiting
    _audit(shipper, "read history")
    assert shipper.ship() and taken == [2]
    (kept,) = (tmp_path / "refused").iterdir()
    saved = json.loads(kept.read_text(encoding="utf-8"))
    assert saved["shipment"]["seq"] == 1 and saved["shipment"]["audit"]["action"] == ["read standing"]
    assert "not in the readers' form" in saved["refused"]


def test_a_writer_that_is_down_gets_the_same_batch_again(tmp_path: Path) -> None:
    down = [True]
    transport, taken = _writer(refuse=set(), down=down)
    shipper = Shipper("http://writer", "token", refused=tmp_path / "refused")
    shipper._client = httpx.Client(transport=transport, base_url="http://writer")
    _audit(shipper, "read standing")
    assert not shipper.ship()  # kept in flight, not set aside
    down[0] = False
    assert shipper.ship() and taken == [1]
    assert not (tmp_path / "refused").exists()
