"""API keys as facts: a key appended, a key revoked. Who may hold which key, and tokens, are `socialcredit.keys`."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from socialcredit.store import Store


def ensure_keys(store: Store) -> None:
    """The `api_keys` table, created before a key is written or looked for."""
    store.ensure_on_demand("api_keys")


def append_key(
    store: Store, key_id: str, role: str, subject: str | None, digest: str, created_at: dt.datetime, label: str
) -> None:
    """One new key (its token's digest only: the token itself is never stored)."""
    ensure_keys(store)
    store.con.execute(
        "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL, ?)", [key_id, role, subject, digest, created_at, label]
    )


def revoke_key(store: Store, key_id: str) -> None:
    """Mark a key revoked now (UTC); the row stays, so the audit trail's principals still resolve."""
    ensure_keys(store)
    store.con.execute("UPDATE api_keys SET revoked_at = timezone('UTC', now()) WHERE key_id = ?", [key_id])


__all__ = ["append_key", "ensure_keys", "revoke_key"]
