"""The admin page: rulebook versions and their diff, impact preview then scheduling, and the review queue.

Only role admin gets in. A new version is previewed before it is scheduled (`impact.preview` runs the one
scoring path on a scratch copy, so previewing changes nothing); scheduling and reviewing are writes, so
each is audited and followed by `svc.changed()`, which tells the decider its view of the facts is stale.
Forms rely on the SameSite=Strict key cookie against cross-site forgery (see `pages.citizen`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from socialcredit import impact, objections
from socialcredit.api.service import Service
from socialcredit.compiler import CST
from socialcredit.keys import Principal
from socialcredit.pages import queries
from socialcredit.pages.citizen import login_form
from socialcredit.pages.render import HEADERS, form, get_service, message, render, viewer
from socialcredit.rulebook_diff import diff
from socialcredit.yamlio import LocatedError

router = APIRouter()


def _admin(request: Request) -> tuple[Principal | None, HTMLResponse | None]:
    who = viewer(request)
    if who is None or who.role == "public":
        return None, login_form(
            request, "/admin", "The admin page needs an admin key." if who else "That key is unknown or revoked.", 401
        )
    if who.role != "admin":
        return None, message(
            request,
            "Admins only",
            f"You are signed in as {who.name}; the admin page needs an admin key.",
            status=403,
            who=who,
        )
    return who, None


def admin_page(
    request: Request, who: Principal, status: int = 200, a: str = "", b: str = "", **extra: Any
) -> HTMLResponse:
    svc: Service = get_service(request)
    changes: dict[str, Any] | None = None
    diff_error = ""
    with svc.lock:
        rbs = svc.store.rulebooks()
        choices = [rb.version for rb in rbs.all_resolved()]
        if a and b:
            # a `+` typed into an address bar arrives as a space
            a, b = a.strip().replace(" ", "+"), b.strip().replace(" ", "+")
            try:
                books = []
                for spec in (a, b):
                    city, pin = rbs.parse_version(spec)
                    rb = rbs.resolve(city, None, pin)
                    if rb is None:
                        raise LocatedError(f"{spec}: does not resolve")
                    books.append(rb)
                changes = diff(books[0], books[1])
                # the dropdowns show what was compared: `rongcheng@1` is the chain it resolved to
                a, b = books[0].version, books[1].version
                choices += [v for v in dict.fromkeys((a, b)) if v not in choices]
            except LocatedError as e:
                diff_error = str(e)
        versions = queries.rulebook_versions(svc.store)
        open_cases = objections.cases(svc.store, status="open")
        decided = [c for c in objections.cases(svc.store) if c["status"] != "open"][-20:][::-1]
        people = queries.case_citizens(svc.store, [c["citizen_id"] for c in open_cases + decided])
        svc.audit.append(who.name, "page.admin", None, cases=[c["citizen_id"] for c in open_cases][:1000])
    return render(
        request,
        "admin.html",
        status=status,
        who=who,
        versions=versions,
        choices=choices,
        a=a,
        b=b,
        changes=changes,
        diff_error=diff_error,
        open_cases=open_cases,
        decided=decided,
        people=people,
        **extra,
    )


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
def admin(request: Request, a: str = "", b: str = "", reviewed: int | None = None, scheduled: str = "") -> HTMLResponse:
    who, refused = _admin(request)
    if who is None:
        return refused or login_form(request, "/admin", status=401)
    return admin_page(request, who, a=a, b=b, reviewed=reviewed, scheduled=scheduled)


@router.post("/admin/preview", response_class=HTMLResponse, include_in_schema=False)
def preview(request: Request, data: dict[str, str] = Depends(form)) -> HTMLResponse:
    """Show what the uploaded version would change; nothing is stored."""
    who, refused = _admin(request)
    if who is None:
        return refused or login_form(request, "/admin", status=401)
    text = data.get("text", "")
    svc: Service = get_service(request)
    try:
        with svc.lock:
            clock = svc.now()
            result = impact.preview(svc.store, text, "upload", clock)
            svc.audit.append(who.name, "page.rulebook.preview", None, version=result["version"])
    except LocatedError as e:
        return admin_page(request, who, status=422, text=text, upload_error=str(e))
    return admin_page(request, who, text=text, impact=result, ahead=ahead(result, clock))


def ahead(result: dict[str, Any], clock: dt.datetime) -> dict[str, Any] | None:
    """Why a preview of a version that starts after the service's clock shows few or no changes, and which
    date would show its rules at work: the preview compares standings as of the version's first day, and a
    version governs only records from that day on, of which the store holds none yet. None when the version
    starts on or before the clock's day."""
    today = clock.replace(tzinfo=dt.UTC).astimezone(CST).date()
    starts = dt.date.fromisoformat(result["effective_from"])
    if starts <= today:
        return None
    zero = all(not (r["score_changed"] or r["grade_changed"] or r["list_changed"]) for r in result["by_city"])
    return {"clock": clock, "starts": starts, "zero": zero, "try": today - dt.timedelta(days=365)}


@router.post("/admin/rulebooks", include_in_schema=False)
def schedule(request: Request, data: dict[str, str] = Depends(form)) -> Response:
    """Load the previewed version: it governs records from its `effective_from` on."""
    who, refused = _admin(request)
    if who is None:
        return refused or login_form(request, "/admin", status=401)
    text = data.get("text", "")
    svc: Service = get_service(request)
    try:
        with svc.lock:
            layer = impact.schedule(svc.store, text, f"page:{who.name}", svc.now())
            svc.audit_write(
                who.name,
                "page.rulebook.schedule",
                None,
                version=layer.key,
                effective_from=layer.effective_from.isoformat(),
            )
            svc.changed()
    except LocatedError as e:
        return admin_page(request, who, status=422, text=text, upload_error=str(e))
    return RedirectResponse(f"/admin?scheduled={layer.key}#rulebooks", status_code=303, headers=HEADERS)


@router.post("/admin/cases/{case_id}", include_in_schema=False)
def review(request: Request, case_id: int, data: dict[str, str] = Depends(form)) -> Response:
    """Uphold (a retraction or a repair record, then rescoring) or reject one case."""
    who, refused = _admin(request)
    if who is None:
        return refused or login_form(request, "/admin", status=401)
    if data.get("decision") not in ("uphold", "reject"):
        return admin_page(request, who, status=422, review_error=f"case {case_id}: choose uphold or reject")
    svc: Service = get_service(request)
    try:
        with svc.lock:
            case = objections.review(svc.store, case_id, data["decision"] == "uphold", who.name, data.get("note", ""))
            svc.audit_write(
                who.name, "page.case.review", case["citizen_id"], case_id=case_id, uphold=data["decision"] == "uphold"
            )
            svc.changed()
    except LocatedError as e:
        return admin_page(request, who, status=422, review_error=str(e))
    return RedirectResponse(f"/admin?reviewed={case_id}#cases", status_code=303, headers=HEADERS)
