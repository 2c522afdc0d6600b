"""A reader of a served store: one of several processes answering questions from the published snapshot.

Decisions (single and batch), standings, explanations, the register, billboards and honour rolls, and the
public pages (dashboard, register, billboards, station monitors) are answered here, from the newest
snapshot the writer published (`socialcredit.snapshot`), opened read-only: a reader never waits on the
writer's lock, so an engine run or a batch being written delays no decision. Every answer names the
snapshot it used (`X-Socialcredit-Snapshot: <generation>`, or `store` for an answer the writer gave from the
store itself; decisions also name their rulebook version).

Everything else (records, retractions, objections, cases, rulebooks, history, the audit routes) is
forwarded to the writer over loopback, as is a question the snapshot cannot answer without an engine run
(a time past what its run answers): the writer runs the engine and answers. While the writer restarts,
forwarded requests wait for it (its socket stays open in the supervisor); a request the old writer had
taken when it died is answered 503 with `Retry-After: 1` and `"retryable": true` — re-sending is safe,
records being idempotent by `record_id`.

What a reader must write (the decisions it answered, the audit entries of its reads, a citizen learning
of a listing by a denial) is shipped to the writer every `SHIP_EVERY_S` in one batch, committed there
as one transaction (group commit). A reader that is killed outright loses what it had not shipped yet, as
the single-process service loses the audit entries it had buffered (at most the last fraction of a second).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.types import Message, Receive, Scope, Send

from socialcredit import snapshot
from socialcredit.api import routes
from socialcredit.api.app import MAX_BODY, SafeJSONResponse, build_app, replaying
from socialcredit.api.auth import SERVICE_KEY
from socialcredit.api.processes import SHUTDOWN_GRACE_S, TOKEN_ENV, TOKEN_HEADER
from socialcredit.api.service import Service
from socialcredit.api.writer import AUDITED, DECIDED, exit_with_supervisor
from socialcredit.audit import AuditTrail, detail_text
from socialcredit.decisions import Decider, Decision, SnapshotCannotAnswer, install, jsonable
from socialcredit.engine import computed_at, utc_naive
from socialcredit.keys import Principal
from socialcredit.rulebook import Rulebook
from socialcredit.store import Store

SHIP_EVERY_S = 0.2
SHIP_MAX = 4000  # decisions or entries per shipment: well under the writer's body limit
TEXTS_KEPT = 256  # audit details whose text a reader keeps made (a decision's: per service and outcome)
WATCH_EVERY_S = 0.05
RETIRE_AFTER_S = 30.0  # an older snapshot's service closes this long after a newer one took over
PROXY_TIMEOUT_S = 120.0  # forwarded requests include impact previews (two engine runs on a copy)
SNAPSHOT_HEADER = b"x-socialcredit-snapshot"
FORWARD_HEADER = b"x-socialcredit-forward"
log = logging.getLogger("socialcredit.reader")

# what a reader answers itself; every other request goes to the writer
_LOCAL = {
    "POST": re.compile(r"/api/v1/decisions"),
    "GET": re.compile(
        r"/api/v1/(register|blacklist/[^/]+|whitelist/[^/]+|citizens/[^/]+/(standing|explanation))"
        r"|/(register|blacklist/[^/]+|station/[^/]+|avatars/[^/]+)?|/static/.+|/docs(/assets/.+)?|/openapi\.json"
    ),
}
_HOP = {b"host", b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"upgrade", b"date", b"server"}


def local(method: str, path: str) -> bool:
    pattern = _LOCAL.get(method)
    return pattern is not None and pattern.fullmatch(path) is not None


class Shipper:
    """Collects what this reader must write and ships it to the writer in batches, in order, until acked."""

    def __init__(self, writer: str, token: str, refused: Path | None = None) -> None:
        self.origin = f"reader-{os.getpid()}-{time.time_ns()}"
        self.token = token
        # where a batch the writer refuses for good (400: it can never be written) is kept, as JSON with the
        # writer's reason, for an operator: retried, it would hold back every later batch of this reader
        self.refused = refused
        self._client = httpx.Client(base_url=writer, timeout=httpx.Timeout(10.0, connect=2.0))
        self._lock = threading.Lock()
        # rows as answered (one append each on the request's path), shipped as the writer's columns
        self._decided: list[tuple[Any, ...]] = []
        self._learned: list[list[Any]] = []
        self._audit: list[tuple[Any, ...]] = []
        self._inflight: dict[str, Any] | None = None
        self._seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ship", daemon=True)
        self.trail = ShippedTrail(self)

    def decided(self, rows: list[tuple[Any, ...]], learned: list[list[Any]]) -> None:
        """`rows` are in the order of `writer.DECIDED`."""
        with self._lock:
            self._decided.extend(rows)
            self._learned.extend(learned)

    def logged(self, entry: tuple[Any, ...]) -> None:
        """`entry` is in the order of `writer.AUDITED`."""
        with self._lock:
            self._audit.append(entry)

    def start(self) -> None:
        self._thread.start()

    def _next(self) -> dict[str, Any] | None:
        with self._lock:
            if not (self._decided or self._learned or self._audit):
                return None
            self._seq += 1
            decided, learned, audit = self._decided[:SHIP_MAX], self._learned[:SHIP_MAX], self._audit[:SHIP_MAX]
            del self._decided[:SHIP_MAX], self._learned[:SHIP_MAX], self._audit[:SHIP_MAX]
        return {
            "origin": self.origin,
            "seq": self._seq,
            "learned": learned,
            "decisions": _columns(decided, DECIDED),
            "audit": _columns(audit, AUDITED),
        }

    def ship(self) -> bool:
        """Send what is waiting, a batch at a time; False when the writer did not take one (kept, re-sent)."""
        while True:
            if self._inflight is None:
                self._inflight = self._next()
                if self._inflight is None:
                    return True
            try:
                r = self._client.post("/internal/v1/shipments", json=self._inflight, headers={TOKEN_HEADER: self.token})
            except httpx.TransportError:
                return False
            if r.status_code == 400:
                self._set_aside(self._inflight, r.text)
            elif r.status_code != 200:
                log.warning("the writer did not take a shipment (%s): %s", r.status_code, r.text[:500])
                return False
            self._inflight = None

    def _set_aside(self, batch: dict[str, Any], reason: str) -> None:
        """A batch the writer will never take: kept in `refused` (never silently dropped), and the next goes."""
        rows = len(batch["decisions"]["service"]) + len(batch["audit"]["action"]) + len(batch["learned"])
        if self.refused is None:
            log.error("the writer refused shipment %s for good (%d rows lost): %s", batch["seq"], rows, reason[:500])
            return
        self.refused.mkdir(parents=True, exist_ok=True)
        path = self.refused / f"{batch['origin']}-{batch['seq']}.json"
        kept = json.dumps({"refused": reason, "shipment": batch}, ensure_ascii=False, default=str)
        path.write_text(kept, encoding="utf-8")
        log.error("the writer refused shipment %s for good; its %d rows are kept in %s", batch["seq"], rows, path)

    def _loop(self) -> None:
        while not self._stop.wait(SHIP_EVERY_S):
            self.ship()

    def close(self, within: float = 2.0) -> None:
        """Stop, shipping what is left (trying for at most `within` seconds)."""
        self._stop.set()
        self._thread.join(timeout=within)
        deadline = time.monotonic() + within
        while not self.ship() and time.monotonic() < deadline:
            time.sleep(0.1)
        self._client.close()


def _columns(rows: list[tuple[Any, ...]], names: tuple[str, ...]) -> dict[str, list[Any]]:
    return dict(zip(names, map(list, zip(*rows, strict=True)), strict=True)) if rows else {n: [] for n in names}


class ShippedTrail(AuditTrail):
    """The audit trail as a reader sees it: entries are stamped here and chained by the writer."""

    def __init__(self, shipper: Shipper) -> None:  # no store: nothing is written here
        self.shipper = shipper
        self._texts: dict[Any, str] = {}

    def append(
        self,
        principal: str,
        action: str,
        citizen_id: str | None = None,
        *,
        logged_at: dt.datetime | None = None,
        defer: bool = False,
        **detail: Any,
    ) -> int:
        at = logged_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        # a decision's detail is one of a few (service, outcome) pairs: its text is made once (keyed only where
        # every value is text: 1, 1.0 and True are one key, and three texts)
        key = tuple(detail.items()) if all(type(v) is str for v in detail.values()) else None
        text = self._texts.get(key) if key is not None else None
        if text is None:
            text = detail_text(detail)
            if key is not None and len(self._texts) < TEXTS_KEPT:
                self._texts[key] = text
        self.shipper.logged((principal, action, citizen_id, text, at.isoformat()))
        return 0

    @property
    def has_pending(self) -> bool:
        return False

    def flush(self) -> None:
        return None

    def flush_within(self) -> None:
        return None

    def entries(self, citizen_id: str | None = None, limit: int = 100, after: int = 0) -> list[dict[str, Any]]:
        raise RuntimeError("a reader does not serve the audit trail; the writer does")


class ShippingDecider(Decider):
    """A decider over a snapshot: decisions are recorded by shipping them to the writer."""

    def __init__(self, store: Store, shipper: Shipper, clock: Any) -> None:
        super().__init__(store, check_facts=False, buffered=True, clock=clock)
        self.shipper = shipper

    def _record(
        self, out: list[Decision], ckeys: list[int], asked_by: str, denied: list[tuple[int, Decision, Rulebook | None]]
    ) -> None:
        rows = [
            (
                ckey,
                d.service,
                d.at.isoformat(),
                d.outcome,
                json.dumps(jsonable(d.reasons), ensure_ascii=False) if d.reasons else "[]",
                asked_by,
                d.rulebook_version,
            )
            for ckey, d in zip(ckeys, out, strict=True)
        ]
        learned = [
            [ckey, d.at.isoformat(), f"Denied {d.service}: {d.public_reason}"]
            for ckey, d, rb in denied
            if rb is not None and not rb.disclosure.notify_citizens
        ]
        self.shipper.decided(rows, learned)


class ReaderService(Service):
    """The service's interface over one published snapshot (read-only); nothing here writes."""

    def __init__(
        self,
        snap: snapshot.Snapshot,
        as_of: dt.datetime | None,
        shipper: Shipper,
        previous: ReaderService | None = None,
    ) -> None:  # not Service.__init__: no writes, no flusher
        self.as_of = utc_naive(as_of) if as_of is not None else None
        self.snapshot = snap
        self.tag = str(snap.generation).encode()  # the X-Socialcredit-Snapshot of its answers
        self.store = Store(snap.path, read_only=True, views=False)
        self.lock = threading.RLock()
        self.decider = ShippingDecider(self.store, shipper, self.now)
        if previous is not None and computed_at(previous.store) == computed_at(self.store):
            # the same engine output (only decisions or audit entries were added): keep its stay index
            self.decider._index = previous.decider._index
        install(self.store, self.decider)
        self.audit = shipper.trail
        self.principals: dict[str, Principal] = {}
        self.on_change = []
        self.on_close = []
        # warm, before it serves; a snapshot that cannot answer now forwards such questions until the next one
        with contextlib.suppress(SnapshotCannotAnswer):
            self.decider.index(self.now())

    def changed(self) -> None:
        return None

    def flush(self) -> None:
        return None

    def close(self) -> None:
        with self.lock:
            self.store.close()


class Watcher:
    """Swaps the app's service for the newest published snapshot's; the old one retires a little later."""

    def __init__(self, app: FastAPI, db: str, as_of: dt.datetime | None, shipper: Shipper) -> None:
        self.app, self.db, self.as_of, self.shipper = app, db, as_of, shipper
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(WATCH_EVERY_S):
            svc: ReaderService = self.app.state.service
            snap = snapshot.current(self.db)
            if snap is None or snap.generation <= svc.snapshot.generation:
                continue
            try:
                fresh = ReaderService(snap, self.as_of, self.shipper, svc)
            except Exception:  # pruned before we opened it, or not yet readable: the next poll sees a newer one
                log.warning("could not open snapshot %d; trying the next", snap.generation, exc_info=True)
                continue
            self.app.state.service = fresh
            retire = threading.Timer(RETIRE_AFTER_S, svc.close)
            retire.daemon = True  # a stopping reader does not wait for it
            retire.start()


class Front:
    """The reader's ASGI entry: answers its own routes from the snapshot, forwards the rest to the writer."""

    def __init__(self, app: FastAPI, writer: str, max_body: int = MAX_BODY) -> None:
        self.app, self.writer, self.max_body = app, writer, max_body
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if path.startswith("/internal/"):
            await SafeJSONResponse({"error": "Not Found"}, status_code=404)(scope, receive, send)
            return
        body = await self._body(scope, receive, send)
        if body is None:
            return
        if method == "POST" and path == "/api/v1/decisions" and await self._decide_fast(scope, body, send):
            return
        if local(method, path) and await self._answer(scope, body, send):
            return
        await self._forward(scope, body, send)

    async def _decide_fast(self, scope: Scope, body: bytes, send: Send) -> bool:
        """The common decision — `{citizen_id, service}` in JSON from a known service key, about one of its
        own services — through `routes.decide_requests` without the framework's routing, dependencies and model
        validation, which cost more than the decision; anything else (another shape, an unknown key, a refusal,
        an error) returns False and the app answers it, with the same rules and messages as always."""
        svc: ReaderService = self.app.state.service
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() != b"bearer " or not headers.get(b"content-type", b"").startswith(b"application/json"):
            return False
        who = svc.principals.get(auth[7:].strip().decode("latin-1"))
        if who is None or who.role != "service":
            return False
        try:
            doc = json.loads(body)
        except ValueError:
            return False
        if not (
            isinstance(doc, dict)
            and doc.keys() == {"citizen_id", "service"}
            and isinstance(doc["citizen_id"], str)
            and isinstance(doc["service"], str)
        ):
            return False
        if not svc.lock.acquire(blocking=False):
            return False
        try:
            (answer,) = routes.decide_requests([(doc["citizen_id"], doc["service"], None)], who, svc)
        except Exception:  # a refusal or an error: the app says which, in its own words
            return False
        finally:
            svc.lock.release()
        payload = json.dumps(answer, ensure_ascii=False).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (SNAPSHOT_HEADER, svc.tag),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        return True

    async def _body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body (None once a 413 or a vanished client is dealt with), as the app's BodyLimit does."""
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._too_big(scope, receive, send)
            return None
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body:
                await self._too_big(scope, receive, send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_big(self, scope: Scope, receive: Receive, send: Send) -> None:
        """413, made only when sent (made for every request, it cost a tenth of a decision's)."""
        too_big = SafeJSONResponse({"error": f"request body larger than {self.max_body} bytes"}, status_code=413)
        await too_big(scope, receive, send)

    async def _answer(self, scope: Scope, body: bytes, send: Send) -> bool:
        """Answer from the snapshot; False (nothing sent) when the snapshot cannot answer it."""
        svc: ReaderService = self.app.state.service
        scope = {**scope, SERVICE_KEY: svc}
        tag = svc.tag
        forwarded = False

        async def disconnected() -> Message:
            return {"type": "http.disconnect"}

        async def tagged(message: Message) -> None:
            nonlocal forwarded
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if any(k == FORWARD_HEADER for k, _ in headers):
                    forwarded = True
                    return
                message = {**message, "headers": [*headers, (SNAPSHOT_HEADER, tag)]}
            elif forwarded:
                return
            await send(message)

        await self.app(scope, replaying(body, disconnected), tagged)
        return not forwarded

    async def _forward(self, scope: Scope, body: bytes, send: Send) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.writer, timeout=httpx.Timeout(PROXY_TIMEOUT_S, connect=5.0))
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP]
        try:
            r = await self._client.request(scope["method"], target.decode("latin-1"), headers=headers, content=body)
        except httpx.TransportError:
            retry = SafeJSONResponse(
                {
                    "error": "the store's writer is restarting; nothing was lost — send the request again",
                    "retryable": True,
                },
                status_code=503,
                headers={"Retry-After": "1"},
            )
            await retry(scope, _nothing, send)
            return
        out = [(k, v) for k, v in r.headers.raw if k.lower() not in _HOP and k.lower() != b"content-encoding"]
        out.append((b"content-length", str(len(r.content)).encode()))
        out.append((SNAPSHOT_HEADER, b"store"))  # answered by the writer, from the store itself
        await send({"type": "http.response.start", "status": r.status_code, "headers": out})
        await send({"type": "http.response.body", "body": r.content})


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


def reader_app(
    db: str, as_of: dt.datetime | None, writer: str, shipper: Shipper, wait_s: float = 120.0
) -> tuple[Front, Watcher]:
    """The reader's app over the newest snapshot of `db` (waiting up to `wait_s` for the first one)."""
    deadline = time.monotonic() + wait_s
    while (snap := snapshot.current(db)) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"{db}: no snapshot was published within {wait_s:.0f} s")
        time.sleep(0.1)
    app = build_app(ReaderService(snap, as_of, shipper))

    @app.exception_handler(SnapshotCannotAnswer)
    async def to_writer(request: Request, exc: SnapshotCannotAnswer) -> Response:
        return Response(status_code=307, headers={FORWARD_HEADER.decode(): "1"})

    watcher = Watcher(app, db, as_of, shipper)
    return Front(app, writer), watcher


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m socialcredit.api.reader --db STORE --fd N --writer URL [--as-of T]`: started by the
    supervisor only (`socialcredit serve`)."""
    import uvicorn

    ap = argparse.ArgumentParser(description="a reader of a served store (started by `socialcredit serve`)")
    ap.add_argument("--db", required=True)
    ap.add_argument("--fd", type=int, required=True, help="the public listening socket, from the supervisor")
    ap.add_argument("--writer", required=True, help="the writer's base URL on loopback")
    ap.add_argument("--as-of", default="", help="the service's fixed clock, naive UTC ISO 8601")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="reader %(process)d: %(message)s")
    exit_with_supervisor()
    shipper = Shipper(a.writer, os.environ.get(TOKEN_ENV, ""), refused=Path(f"{a.db}.refused"))
    shipper.start()
    front, watcher = reader_app(a.db, dt.datetime.fromisoformat(a.as_of) if a.as_of else None, a.writer, shipper)
    watcher.start()
    sock = socket.socket(fileno=a.fd)
    config = uvicorn.Config(front, log_level="warning", timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        watcher.stop()
        shipper.close()


if __name__ == "__main__":
    main()
