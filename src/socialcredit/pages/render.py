"""What every page shares: the template environment, who is looking, form bodies, security headers.

Why pages answer errors in HTML themselves instead of raising `HTTPException`: the app turns
HTTPException into JSON for API clients, and a person in a browser should get a readable page (and a
way to log in) instead.

Why a strict Content-Security-Policy: the pages must work with no CDN and no third-party asset, and
`default-src 'self'` with no inline script or style makes any such slip (or injected markup) fail
loudly in the browser, where the browser tests catch it as a console error.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from socialcredit.api.auth import COOKIE
from socialcredit.api.service import Service
from socialcredit.clock import CST
from socialcredit.keys import PUBLIC, Principal, authenticate
from socialcredit.text import plain

HERE = Path(__file__).resolve().parent
CSP = (
    "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def cst(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored time (naive UTC, or an ISO string ending in Z as `explain` gives) in China Standard Time."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(CST).strftime(fmt)
    return str(value)


def masked(citizen_id: str) -> str:
    """A resident ID as public boards print it: region and the last four characters, birth date hidden."""
    return f"{citizen_id[:6]}********{citizen_id[-4:]}"


def signed(n: int | float | None) -> str:
    return "—" if n is None else f"{n:+d}" if isinstance(n, int) else f"{n:+g}"


templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(cst=cst, masked=masked, signed=signed, plain=plain)
templates.env.globals["CST_LABEL"] = "CST (UTC+8)"


def now(request: Request) -> dt.datetime:
    """The time every page is about: the service's clock (the real present unless the server was started
    with a fixed time, as a simulated world is shown as it stood at the end of its run)."""
    return get_service(request).now()


def fresh(svc: Service, at: dt.datetime) -> None:
    """Make the tables a page reads current for `at`: buffered decisions and audit entries written, and the
    engine's derived tables rerun only if facts or the assessment month changed (the decider knows)."""
    svc.flush()
    svc.decider.index(at)


def get_service(request: Request) -> Service:
    """The running service (the app keeps it in `state`); pages are plain functions of the request."""
    return request.app.state.service  # type: ignore[no-any-return]


def viewer(request: Request) -> Principal | None:
    """Who is looking (the public without a key); None when a presented key is unknown or revoked.

    The same key sources as the API's `principal` dependency (a bearer header, else the `sc_key` cookie),
    but a bad key is an answer here, not an exception, so the page can offer the login form.
    """
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
    if not token:
        return PUBLIC
    svc = get_service(request)
    with svc.lock:
        return authenticate(svc.store, token)


def published(svc: Service, at: dt.datetime) -> list[dict[str, Any]]:
    """Every city with what its rulebook in force today publishes, for the navigation."""
    day = at.replace(tzinfo=dt.UTC).astimezone(CST).date()
    rbs = svc.store.rulebooks()
    out = []
    for city in rbs.cities:
        rb = rbs.resolve(city, day)
        if rb is not None:
            out.append(
                {
                    "city": city,
                    "name": rb.name,
                    "scores": rb.disclosure.publish_scores,
                    "billboard": rb.disclosure.billboard,
                    "station": rb.disclosure.station_monitor,
                }
            )
    return out


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    who = context.pop("who", None) or viewer(request) or PUBLIC
    svc = get_service(request)
    with svc.lock:
        cities = published(svc, svc.now())
    response = templates.TemplateResponse(
        request, name, {"who": who, "nav_cities": cities, **context}, status_code=status
    )
    response.headers.update(HEADERS)
    return response


def message(request: Request, title: str, text: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A plain page that says one thing: not published here, not found, not yours, …"""
    return render(request, "message.html", status=status, title=title, text=text, **context)


async def form(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body as a dict (last value wins), from this site only.

    Parsed here rather than with `Request.form()`, which needs python-multipart for every form type; the
    pages post only urlencoded forms, and the app's body limit already bounds their size. A browser names
    the page a form was posted from in `Origin`; one from another site is refused. The SameSite=Strict
    cookie already keeps forged posts keyless; this also stops a forged *login* (which needs no cookie).
    """
    origin = request.headers.get("origin")
    # the host only: behind a TLS-terminating proxy the scheme the app sees is not the browser's
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, f"form posted from another site ({origin})")
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
