"""Who is asking: API keys in `Authorization: Bearer …` (or the `sc_key` cookie the pages' login sets).

Every route names the roles it admits with `require(...)`; the authorization matrix test walks every
route with every role, so a route without an explicit rule cannot slip through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException, Request

from socialcredit.api.service import Service
from socialcredit.keys import PUBLIC, Principal

COOKIE = "sc_key"


SERVICE_KEY = "socialcredit.service"


async def service(request: Request) -> Service:
    """The service answering this request: the one a reader pinned when the request arrived (its snapshot
    may be replaced by a newer one meanwhile, and the answer names the one it used), else the app's."""
    pinned = request.scope.get(SERVICE_KEY)
    return pinned if pinned is not None else request.app.state.service  # type: ignore[no-any-return]


async def principal(request: Request, svc: Service = Depends(service)) -> Principal:
    """The caller; anyone without a key is the public. A key that is presented but wrong is an error.

    Async, like the other dependencies here: a sync dependency costs a thread-pool hop per request, and
    this is a dictionary look-up (a store query only the first time a key is seen).
    """
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
    if not token:
        return PUBLIC
    who = svc.authenticate(token)
    if who is None:
        raise HTTPException(401, "unknown or revoked API key")
    return who


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting only these roles (401 for the public, 403 for other roles)."""

    async def check(who: Principal = Depends(principal)) -> Principal:
        if who.role in roles:
            return who
        if who.role == "public":
            raise HTTPException(401, f"this needs an API key of role {' or '.join(roles)}")
        raise HTTPException(403, f"role {who.role} may not do this (needs {' or '.join(roles)})")

    return check


def own_citizen(who: Principal, citizen_id: str) -> None:
    """Citizens see only themselves; admins (reviewers) see anyone."""
    if who.role == "citizen" and who.subject != citizen_id:
        raise HTTPException(403, "a citizen may see only their own record")
