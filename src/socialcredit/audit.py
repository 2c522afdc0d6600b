"""The audit trail: every write and every read of a citizen's data, hash-chained (SPEC §6).

Each entry's hash covers its sequence number, time, principal, action, citizen and detail, and the
previous entry's hash. Altering any field breaks that entry's hash; removing or reordering entries breaks
the chain (each `prev` must equal the hash before it, and sequence numbers must run 1, 2, 3 … without a
gap). The head (count and last hash) is also kept in `meta`, so cutting entries off the end is caught too,
unless the same hand also rewrites the head rows.

The table alone cannot catch that, nor a full rewrite (alter an entry, then recompute every hash after
it): whoever holds the database can make it verify again. A `Checkpoint` closes the gap from outside:
an auditor copies one entry's sequence number and hash somewhere the database's holder cannot reach
(`socialcredit audit head`), and `verify(store, against=checkpoint)` later proves that entry is still
there with that hash. Each hash covers the one before it, so with the chain up to it intact, that
vouches for every entry up to and including the checkpoint's.

Entries are appended in memory and written in batches (at most `FLUSH_EVERY` entries or
`FLUSH_SECONDS` old, and whenever the trail is read): the hash chain is computed at append time, so the
batching changes when a row reaches the disk, never what it says. A batch of rows and the head that
counts them are written in one transaction. Entries still in memory when the process dies are lost
without a trace (the chain simply continues from the last written entry).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlglot import exp

from socialcredit.store import Store
from socialcredit.store.audit import append_entries, ensure_trail

GENESIS = "0" * 64
FLUSH_EVERY = 512
FLUSH_SECONDS = 1.0
COLUMNS = ("seq", "logged_at", "principal", "action", "citizen_id", "detail", "prev", "hash")
ARROW_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("logged_at", pa.timestamp("us")),
        ("principal", pa.string()),
        ("action", pa.string()),
        ("citizen_id", pa.string()),
        ("detail", pa.string()),
        ("prev", pa.string()),
        ("hash", pa.string()),
    ]
)
CHECKPOINT_PREFIX = "socialcredit-audit:v1"
_CHECKPOINT = re.compile(r"socialcredit-audit:v1:([0-9]{1,18}):([0-9a-fA-F]{64})")


def detail_text(detail: dict[str, Any]) -> str:
    """An entry's detail as stored and hashed: JSON with sorted keys. A reader of the service makes it where
    the entry happens and ships the text; the writer hashes and stores that text as it is (`append_shipped`)."""
    return json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str) if detail else "{}"


def entry_hash(
    seq: int, at: dt.datetime, principal: str, action: str, citizen_id: str | None, detail: str, prev: str
) -> str:
    """SHA-256 over the fields joined by the unit separator, which no field contains (details are JSON)."""
    body = "\x1f".join((str(seq), at.isoformat(), principal, action, citizen_id or "", detail, prev))
    return hashlib.sha256(body.encode()).hexdigest()


class AuditTrail:
    """The store's trail; one per store, shared by every door that writes to it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._pending: list[tuple[Any, ...]] = []
        self._oldest = 0.0
        if not store.read_only:  # a published snapshot has the table, or no entries to read
            ensure_trail(store)
        last = (
            store.con.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchall()
            if _has_trail(store)
            else []
        )
        self._seq, self._head = (int(last[0][0]), str(last[0][1])) if last else (0, GENESIS)

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
        """Add one entry; returns its sequence number. `logged_at` (naive UTC) is when it happened, if not
        now: a reader process of the service answered the request and sends its entries on in batches.
        `defer` never writes here: the caller writes them in its own transaction (`flush_within`)."""
        with self._lock:
            at = logged_at if logged_at is not None else dt.datetime.now(dt.UTC).replace(tzinfo=None)
            text = detail_text(detail)
            self._seq += 1
            h = entry_hash(self._seq, at, principal, action, citizen_id, text, self._head)
            self._pending.append((self._seq, at, principal, action, citizen_id, text, self._head, h))
            self._head = h
            if len(self._pending) == 1:
                self._oldest = time.monotonic()
            seq = self._seq
            due = not defer and (len(self._pending) >= FLUSH_EVERY or time.monotonic() - self._oldest > FLUSH_SECONDS)
        if due:
            self.flush()
        return seq

    def append_shipped(
        self,
        principals: list[str],
        actions: list[str],
        citizen_ids: list[str | None],
        details: list[str],
        logged_at: list[dt.datetime],
    ) -> int:
        """Entries a reader of the service stamped and serialised (`detail_text`), in its order: chained here
        and written, after any pending ones, inside the caller's store transaction in one insert; returns
        the last sequence number. Each detail is hashed and stored as the text it came as (parsing and
        dumping it again would cost more than the hash), so it is checked to be what `detail_text` makes
        at its edges: a JSON object, and free of the separator `entry_hash` joins fields with (JSON escapes
        control characters). The chain moves on only once the rows are written: if the caller's
        transaction fails after that, it calls `resync`."""
        n = len(principals)
        if not (len(actions) == len(citizen_ids) == len(details) == len(logged_at) == n):
            raise ValueError("shipped audit entries: the columns differ in length")
        for i, d in enumerate(details):
            if not (isinstance(d, str) and d[:1] == "{" and d[-1:] == "}" and "\x1f" not in d):
                raise ValueError(f"shipped audit entry {i + 1}: its detail is not a JSON object's text: {d!r:.200}")
        with self._lock:
            seq, head = self._seq, self._head
            seqs, prevs, hashes = [], [], []
            sha = hashlib.sha256
            for at, principal, action, citizen_id, detail in zip(
                logged_at, principals, actions, citizen_ids, details, strict=True
            ):
                seq += 1  # entry_hash, inlined: this loop is the writer's per-entry cost
                h = sha(
                    "\x1f".join((str(seq), at.isoformat(), principal, action, citizen_id or "", detail, head)).encode()
                ).hexdigest()
                seqs.append(seq)
                prevs.append(head)
                hashes.append(h)
                head = h
            columns: dict[str, list[Any]] = {
                "seq": seqs,
                "logged_at": logged_at,
                "principal": principals,
                "action": actions,
                "citizen_id": citizen_ids,
                "detail": details,
                "prev": prevs,
                "hash": hashes,
            }
            if self._pending:  # appended before these, so chained before them: written first
                columns = {c: [r[i] for r in self._pending] + columns[c] for i, c in enumerate(COLUMNS)}
            self._write(columns, seq, head)
            self._seq, self._head = seq, head
            self._pending.clear()
            return seq

    def resync(self) -> None:
        """Continue the chain from what the store holds (after a transaction that wrote entries was rolled back):
        entries still pending are dropped, as a crash would lose them."""
        with self._lock:
            self._pending.clear()
            last = self.store.con.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchall()
            self._seq, self._head = (int(last[0][0]), str(last[0][1])) if last else (0, GENESIS)

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def flush(self) -> None:
        """Write the pending entries, in a transaction of their own."""
        with self._lock:
            if not self._pending:
                return
            with self.store.transaction():
                self._write_pending()
            self._pending.clear()

    def flush_within(self) -> None:
        """Write the pending entries inside the caller's store transaction (transactions do not nest):
        `Service.flush` commits buffered decisions and entries together."""
        with self._lock:
            if self._pending:
                self._write_pending()
                self._pending.clear()

    def _write_pending(self) -> None:
        self._write({c: [r[i] for r in self._pending] for i, c in enumerate(COLUMNS)}, self._seq, self._head)

    def _write(self, columns: dict[str, list[Any]], seq: int, head: str) -> None:
        """The rows and the head that counts them, through the store (`store/audit.py`), in the caller's
        transaction: a crash keeps both or neither."""
        append_entries(self.store, pa.table(columns, schema=ARROW_SCHEMA), seq, head)

    def entries(self, citizen_id: str | None = None, limit: int = 100, after: int = 0) -> list[dict[str, Any]]:
        self.flush()
        query = exp.select(*COLUMNS).from_("audit_log").where("seq > ?")
        args: list[Any] = [after]
        if citizen_id:
            query = query.where("citizen_id = ?")
            args.append(citizen_id)
        query = query.order_by("seq").limit(exp.Placeholder())
        rows = self.store.con.execute(query.sql("duckdb"), [*args, limit]).fetchall()
        return [dict(zip(COLUMNS, r, strict=True)) for r in rows]


def _has_trail(store: Store) -> bool:
    return store.has_table("audit_log")


class BadCheckpoint(ValueError):
    """A text that is not a checkpoint; the message quotes it and shows the expected form."""


@dataclass(frozen=True)
class Checkpoint:
    """One entry's sequence number and hash, for a reviewer to keep outside the store.

    The text form is one line with its own name and version (`socialcredit-audit:v1:<seq>:<hash>`), so it
    survives being pasted into a ticket or an e-mail and says what it is years later. Entry 0 with the
    genesis hash is the checkpoint of an empty trail.
    """

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{CHECKPOINT_PREFIX}:{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        m = _CHECKPOINT.fullmatch(text.strip())
        if m is None:
            raise BadCheckpoint(
                f"{text!r} is not an audit checkpoint: expected {CHECKPOINT_PREFIX}:<seq>:<64 hex digits>, "
                "as `socialcredit audit head` prints"
            )
        return cls(int(m[1]), m[2].lower())


@dataclass
class Verdict:
    """`head` is the checkpoint of the last entry, None when the trail does not verify: a checkpoint
    taken over a broken trail would vouch for the break."""

    ok: bool
    entries: int
    problems: list[str]
    head: Checkpoint | None = None


def verify(store: Store, against: Checkpoint | None = None) -> Verdict:
    """Walk the whole chain in stored order and report every break, naming the entry; with `against`, also
    require the checkpoint's entry to be there with the checkpoint's hash (which no rewrite can forge)."""
    if not store.read_only:
        ensure_trail(store)
    rows = (
        store.con.execute(exp.select(*COLUMNS).from_("audit_log").order_by("rowid").sql("duckdb")).fetchall()
        if _has_trail(store)
        else []
    )
    problems: list[str] = []
    prev = GENESIS
    for i, (seq, at, principal, action, citizen_id, detail, stored_prev, h) in enumerate(rows, start=1):
        if seq != i:
            problems.append(f"entry at position {i}: sequence number {seq}, expected {i} (removed or reordered)")
        if stored_prev != prev:
            problems.append(f"entry {seq}: does not follow the entry before it (chain broken)")
        if entry_hash(seq, at, principal, action, citizen_id, detail, stored_prev) != h:
            problems.append(f"entry {seq}: content does not match its hash (altered)")
        prev = h
        if len(problems) >= 20:
            break
    head = dict(store.con.execute("SELECT key, value FROM meta WHERE key IN ('audit_count', 'audit_head')").fetchall())
    if head and not problems and (head.get("audit_count") != str(len(rows)) or head.get("audit_head") != prev):
        problems.append(
            f"trail ends at entry {len(rows)} but its recorded head is entry {head.get('audit_count')} "
            "(entries removed from the end, or the head was altered)"
        )
    if against is not None and (problem := _check_against(rows, against)):
        problems.insert(0, problem)
    return Verdict(not problems, len(rows), problems, None if problems else Checkpoint(len(rows), prev))


def _check_against(rows: list[tuple[Any, ...]], checkpoint: Checkpoint) -> str | None:
    """The checkpoint's entry must be present with exactly its hash; None when it is."""
    hashes = [str(r[7]) for r in rows if r[0] == checkpoint.seq] if checkpoint.seq else [GENESIS]
    if not hashes:
        return (
            f"checkpoint {checkpoint}: entry {checkpoint.seq} is missing, the trail has {len(rows)} entries "
            "(entries removed from the end since the checkpoint was taken)"
        )
    if any(h != checkpoint.hash for h in hashes):
        return (
            f"checkpoint {checkpoint}: entry {checkpoint.seq} has hash {hashes[0]}, not the checkpoint's "
            "(the trail up to the checkpoint was altered and rewritten)"
        )
    return None


__all__ = ["AuditTrail", "BadCheckpoint", "Checkpoint", "Verdict", "verify"]
