"""The citizen's own page (standing, the explanation chain, objections and credit repair) and the cookie login.

Who may look: the citizen whose key it is, and admins (reviewers). Everyone else is refused, and every
view is appended to the audit trail under the viewer's name, as every API read of a citizen's data is.

Why forms are safe without CSRF tokens: the key travels in the `sc_key` cookie, set HttpOnly and
SameSite=Strict, so a browser never attaches it to a request started by another site; a forged POST from
elsewhere arrives as the public and is refused like any request without a key. The same holds for the
admin forms. (A deployment that loosened SameSite would need tokens; this one does not loosen it.)
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from socialcredit import objections, standings
from socialcredit.api.auth import COOKIE
from socialcredit.api.service import Service
from socialcredit.clock import stored
from socialcredit.explanations import explain
from socialcredit.keys import Principal, authenticate
from socialcredit.pages import queries
from socialcredit.pages.public import rulebook_today
from socialcredit.pages.render import HEADERS, form, fresh, get_service, message, now, render, viewer
from socialcredit.yamlio import LocatedError

router = APIRouter()
PAGE_ROLES = ("citizen", "admin")


def safe_next(target: str) -> str | None:
    """Only a path on this site may follow a login (never `//elsewhere` or a full URL)."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else None


def login_form(request: Request, next_: str, error: str = "", status: int = 200) -> HTMLResponse:
    return render(request, "login.html", status=status, next=safe_next(next_) or "", error=error)


def refuse(request: Request, who: Principal | None, citizen_id: str) -> HTMLResponse | None:
    """The refusal page for anyone but the citizen themself or an admin; None when they may look."""
    if who is None:
        response = login_form(request, f"/citizens/{citizen_id}", "That key is unknown or revoked.", 401)
        response.delete_cookie(COOKIE, path="/")
        return response
    if who.role == "public":
        return login_form(
            request,
            f"/citizens/{citizen_id}",
            "A citizen's page is shown only to that citizen (with their key) and to reviewers.",
            401,
        )
    if who.role == "admin" or (who.role == "citizen" and who.subject == citizen_id):
        return None
    return message(
        request,
        "Not your record",
        "A citizen may see only their own record; reviewers (admin) may "
        f"see anyone's. You are signed in as {who.name}.",
        status=403,
        who=who,
    )


def citizen_page(
    request: Request, svc: Service, who: Principal, citizen_id: str, status: int = 200, **extra: Any
) -> HTMLResponse:
    at = now(request)
    with svc.lock:
        person = queries.citizen(svc.store, citizen_id)
        if person is None:
            return message(request, "No such citizen", f"No citizen {citizen_id!r} is registered.", status=404, who=who)
        fresh(svc, at)
        x = explain(svc.store, citizen_id, stored(at))
        rb = rulebook_today(svc, person["city"], at)
        cases = objections.cases(svc.store, citizen_id=citizen_id)
        stays = queries.stays(svc.store, citizen_id)
        asked = queries.decisions_about(svc.store, citizen_id)
        notes = queries.notifications(svc.store, citizen_id)
        published = standings.published(svc.store, person["ckey"], rb, at)
        assessed = published if published is not None and published.assessed_at is not None else None
        svc.audit.append(who.name, "page.citizen", citizen_id)
    cat = svc.store.catalog
    lists = {x.id: x for x in rb.lists} if rb else {}
    open_records = {(c["agency"], c["record_id"]) for c in cases if c["kind"] == "objection" and c["status"] == "open"}
    return render(
        request,
        "citizen.html",
        status=status,
        who=who,
        person=person,
        x=x,
        rb=rb,
        cases=cases,
        stays=stays,
        asked=asked,
        notes=notes,
        assessed=assessed,
        lists=lists,
        open_records=open_records,
        at=at,
        behaviours=cat.behaviours,
        characteristics=cat.characteristics,
        measures=cat.measures,
        agencies=cat.agencies,
        services=cat.services,
        mine=who.role == "citizen",
        **extra,
    )


@router.get("/citizens/{citizen_id}", response_class=HTMLResponse, include_in_schema=False)
def citizen(request: Request, citizen_id: str, filed: int | None = None) -> HTMLResponse:
    who = viewer(request)
    refused = refuse(request, who, citizen_id)
    if refused is not None or who is None:
        return refused or login_form(request, "/", status=401)
    return citizen_page(request, get_service(request), who, citizen_id, filed=filed)


def _file(request: Request, citizen_id: str, data: dict[str, str], kind: str) -> Response:
    """File an objection or a repair case from the page; only the citizen themself may."""
    who = viewer(request)
    refused = refuse(request, who, citizen_id)
    if refused is not None or who is None:
        return refused or login_form(request, "/", status=401)
    if who.role != "citizen":
        return message(
            request,
            "Only the citizen files",
            "Objections and repair applications are filed by the "
            "citizen themself; reviewers decide them on the admin page.",
            status=403,
            who=who,
        )
    svc = get_service(request)
    # filing a case writes no facts (records, retractions), so the decider's view stays valid: no svc.changed()
    try:
        with svc.lock:
            if kind == "objection":
                case_id = objections.file_objection(
                    svc.store, citizen_id, data.get("agency", ""), data.get("record_id", ""), data.get("reason", "")
                )
                svc.audit_write(
                    who.name,
                    "page.objection",
                    citizen_id,
                    case_id=case_id,
                    agency=data.get("agency"),
                    record_id=data.get("record_id"),
                )
            else:
                case_id = objections.apply_repair(
                    svc.store, citizen_id, data.get("list_id", ""), data.get("reason", "")
                )
                svc.audit_write(who.name, "page.repair", citizen_id, case_id=case_id, list_id=data.get("list_id"))
    except LocatedError as e:
        return citizen_page(request, svc, who, citizen_id, status=422, error=str(e))
    return RedirectResponse(f"/citizens/{citizen_id}?filed={case_id}#cases", status_code=303, headers=HEADERS)


@router.post("/citizens/{citizen_id}/objections", include_in_schema=False)
def file_objection(request: Request, citizen_id: str, data: dict[str, str] = Depends(form)) -> Response:
    return _file(request, citizen_id, data, "objection")


@router.post("/citizens/{citizen_id}/repairs", include_in_schema=False)
def apply_repair(request: Request, citizen_id: str, data: dict[str, str] = Depends(form)) -> Response:
    return _file(request, citizen_id, data, "repair")


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request, next: str = "") -> HTMLResponse:
    return login_form(request, next)


@router.post("/login", include_in_schema=False)
def login(request: Request, data: dict[str, str] = Depends(form)) -> Response:
    svc = get_service(request)
    token = data.get("key", "").strip()
    with svc.lock:
        who = authenticate(svc.store, token) if token else None
        if who is not None and who.role in PAGE_ROLES:
            svc.audit.append(who.name, "page.login", who.subject if who.role == "citizen" else None)
    if who is None:
        return login_form(request, data.get("next", ""), "That key is unknown or revoked.", 401)
    if who.role not in PAGE_ROLES:
        return login_form(
            request,
            data.get("next", ""),
            f"The pages have nothing for role {who.role}; use the HTTP API (/docs) with this key.",
            403,
        )
    home = f"/citizens/{who.subject}" if who.role == "citizen" else "/admin"
    response = RedirectResponse(safe_next(data.get("next", "")) or home, status_code=303, headers=HEADERS)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


@router.api_route("/logout", methods=["GET", "POST"], include_in_schema=False)
def logout(request: Request) -> Response:
    """Forget the key cookie. GET is allowed too: signing out changes nothing on the server."""
    response = RedirectResponse("/", status_code=303, headers=HEADERS)
    response.delete_cookie(COOKIE, path="/")
    return response
