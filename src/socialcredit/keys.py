"""API keys and the principals they stand for (SPEC §6).

A key is a random 256-bit token shown once at creation; the store keeps only its SHA-256 digest. A slow
password hash (bcrypt, argon2) protects guessable secrets; a 256-bit random token cannot be guessed, so a
fast digest is enough and keeps authentication off the decision path's budget.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from socialcredit.store import Store
from socialcredit.store import keys as key_facts
from socialcredit.yamlio import LocatedError

ROLES = ("admin", "agency", "service", "citizen", "auditor")


@dataclass(frozen=True)
class Principal:
    """Who is asking: `agency:<code>`, `service:<code>`, `citizen:<id>`, `admin`, `auditor` or `public`."""

    role: str
    subject: str | None = None
    key_id: str | None = None

    @property
    def name(self) -> str:
        return f"{self.role}:{self.subject}" if self.subject else self.role


PUBLIC = Principal("public")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_subject(store: Store, role: str, subject: str | None) -> None:
    if role not in ROLES:
        raise LocatedError(f"--role {role!r}: not one of {', '.join(ROLES)}")
    needs = {"agency": "an agency code", "service": "a service provider code", "citizen": "a resident ID"}
    if role in needs and not subject:
        raise LocatedError(f"--role {role} needs --subject ({needs[role]})")
    if role not in needs and subject:
        raise LocatedError(f"--role {role} takes no --subject")
    if role == "agency" and subject not in store.catalog.agencies:
        raise LocatedError(f"--subject {subject!r}: no such agency (see `socialcredit catalog`)")
    if role == "service" and subject not in providers(store):
        raise LocatedError(f"--subject {subject!r}: no such service provider (known: {', '.join(providers(store))})")
    if role == "citizen" and subject is not None:
        store.ckey(subject)  # raises a located error for an unknown citizen


def providers(store: Store) -> list[str]:
    """Service providers are named by the prefix of the services they run (`rail` runs `rail.ticket` …)."""
    return sorted({code.split(".")[0] for code in store.catalog.services})


def provider_services(store: Store, provider: str) -> list[str]:
    return list(store.catalog.services_by_provider.get(provider, ()))


def create_key(store: Store, role: str, subject: str | None = None, label: str = "") -> tuple[str, str]:
    """A new key for a principal: returns (key_id, token). The token is not stored and cannot be recovered."""
    _check_subject(store, role, subject)
    key_id = secrets.token_hex(4)
    token = f"sc_{role}_{key_id}_{secrets.token_urlsafe(32)}"
    key_facts.append_key(
        store, key_id, role, subject, digest(token), dt.datetime.now(dt.UTC).replace(tzinfo=None), label
    )
    return key_id, token


def revoke_key(store: Store, key_id: str) -> None:
    key_facts.ensure_keys(store)
    n = store.con.execute("SELECT count(*) FROM api_keys WHERE key_id = ? AND revoked_at IS NULL", [key_id]).fetchall()
    if not n[0][0]:
        raise LocatedError(f"key {key_id!r}: no such active key")
    key_facts.revoke_key(store, key_id)


def list_keys(store: Store) -> list[dict[str, object]]:
    key_facts.ensure_keys(store)
    rows = store.con.execute(
        "SELECT key_id, role, subject, created_at, revoked_at, label FROM api_keys ORDER BY created_at, key_id"
    ).fetchall()
    cols = ("key_id", "role", "subject", "created_at", "revoked_at", "label")
    return [dict(zip(cols, r, strict=True)) for r in rows]


TOKEN = re.compile(r"^sc_[a-z]+_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}$")


def authenticate(store: Store, token: str) -> Principal | None:
    """The principal a presented token stands for, or None (unknown, malformed or revoked)."""
    if not TOKEN.match(token):
        return None
    rows = store.con.execute(
        "SELECT role, subject, key_id FROM api_keys WHERE digest = ? AND revoked_at IS NULL", [digest(token)]
    ).fetchall()
    return Principal(rows[0][0], rows[0][1], rows[0][2]) if rows else None


__all__ = [
    "PUBLIC",
    "ROLES",
    "Principal",
    "authenticate",
    "create_key",
    "list_keys",
    "provider_services",
    "providers",
    "revoke_key",
]
