"""The HTTP API (/api/v1): one small function per endpoint over the core, each naming the roles it admits.

Roles and what they may do are SPEC §6: agencies submit and retract their own records; service providers
ask decisions for their own services and learn the outcome and its public reason only; citizens see
their own standing, explanation, history and notifications and file objections and repair applications;
admins manage rulebooks and review cases; auditors read and verify the audit trail; the public sees what
each city's disclosure policy publishes. Every write and every read of a citizen's data is audited.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from socialcredit import audit, decisions, explanations, impact, objections, standings
from socialcredit.api import models as m
from socialcredit.api.auth import own_citizen, principal, require, service
from socialcredit.api.models import errors
from socialcredit.api.service import Service
from socialcredit.clock import CST, bounded, stored
from socialcredit.decisions import Decision
from socialcredit.keys import Principal, provider_services
from socialcredit.rulebook_diff import diff as rulebook_diff
from socialcredit.store import BatchRejected
from socialcredit.yamlio import LocatedError

router = APIRouter(responses=errors(401, 413, 422))  # any route: a wrong key, a huge or malformed request
MAX_BATCH = 10_000


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordIn(_In):
    record_id: str = Field(min_length=1, max_length=200)
    citizen_id: str
    behaviour: str
    occurred_at: str = Field(description="ISO 8601; a time without offset is China Standard Time")
    reported_by: str | None = Field(None, description="defaults to the submitting agency; any other is refused")
    attributes: dict[str, Any] = {}


class Batch(_In):
    records: list[RecordIn] = Field(min_length=1, max_length=MAX_BATCH)


class Retraction(_In):
    record_ids: list[str] = Field(min_length=1, max_length=MAX_BATCH)
    reason: str = Field(min_length=1)


class DecisionRequest(_In):
    citizen_id: str
    service: str
    at: dt.datetime | None = Field(
        None,
        description="default the service's clock; a time without offset is CST; "
        "from 1950-01-01 to 31 days past the clock, else 422",
    )


class DecisionBatch(_In):
    requests: list[DecisionRequest] = Field(min_length=1, max_length=MAX_BATCH)


class ObjectionIn(_In):
    agency: str
    record_id: str
    reason: str = Field(min_length=1, max_length=4000)


class RepairIn(_In):
    list_id: str
    reason: str = Field(min_length=1, max_length=4000)


class Review(_In):
    uphold: bool
    note: str = Field("", max_length=4000)


def _cst(t: dt.datetime | None) -> dt.datetime | None:
    return t.replace(tzinfo=CST) if t is not None and t.tzinfo is None else t


def _as_of(svc: Service, as_of: dt.datetime | None, field: str = "as_of") -> dt.datetime:
    """The time asked about, checked against the bounds (`socialcredit.clock`) before any work."""
    t = _cst(as_of)
    return svc.now() if t is None else bounded(t, field, svc.now())


# ---------------------------------------------------------------------------------------------- agencies


@router.post("/records", tags=["agencies"], response_model=m.RecordsAccepted, responses=errors(400, 403, 409))
def submit_records(
    batch: Batch, who: Principal = Depends(require("agency")), svc: Service = Depends(service)
) -> dict[str, Any]:
    """Submit a batch of records: all accepted, or none (every problem named by row and field).

    Idempotent by `record_id`: re-sending an identical batch accepts nothing new and reports the
    duplicates; the same id with other content is a 409 naming the conflicting ids.
    """
    foreign = [i + 1 for i, r in enumerate(batch.records) if r.reported_by not in (None, who.subject)]
    if foreign:
        raise HTTPException(
            403, {"error": f"agency {who.subject} may submit only its own records", "rows": foreign[:50]}
        )
    rows = [{**r.model_dump(), "reported_by": who.subject} for r in batch.records]
    with svc.lock:
        try:
            report = svc.store.ingest(rows, name=f"api:{who.name}")
        except BatchRejected as e:
            conflicts = [p for p in e.problems if "different content" in p.message]
            svc.audit_write(who.name, "records.rejected", None, rows=len(rows), problems=len(e.problems))
            if conflicts and len(conflicts) == len(e.problems):
                ids = [rows[p.row - 1]["record_id"] for p in conflicts if 0 < p.row <= len(rows)]
                raise HTTPException(
                    409, {"error": "record_id already used with different content", "conflicting_ids": ids}
                ) from None
            raise
        svc.audit_write(
            who.name,
            "records.submit",
            None,
            batch=report.batch,
            accepted=report.accepted,
            duplicates=report.duplicates,
            citizens=report.citizens,
        )
        if report.accepted:
            svc.changed()
    return {
        "batch": report.batch,
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "duplicate_ids": report.duplicate_ids,
    }


@router.post("/retractions", tags=["agencies"], response_model=m.Retracted, responses=errors(400, 403))
def retract_records(
    body: Retraction, who: Principal = Depends(require("agency")), svc: Service = Depends(service)
) -> dict[str, Any]:
    """Withdraw some of the agency's own records; the next decision rescoring happens without them."""
    assert who.subject is not None
    with svc.lock:
        n = svc.store.retract(who.subject, body.record_ids, body.reason, who.name)
        svc.audit_write(who.name, "records.retract", None, record_ids=body.record_ids, reason=body.reason)
        svc.changed()
    return {"retracted": n}


# ---------------------------------------------------------------------------------------------- decisions


def _answer(d: Decision) -> dict[str, Any]:
    """What a service provider learns: the outcome and its public reason — never the history behind it."""
    return {
        "citizen_id": d.citizen_id,
        "service": d.service,
        "at": decisions.jsonable(d.at),
        "outcome": d.outcome,
        "public_reason": d.public_reason,
        "rulebook_version": d.rulebook_version,
        "valid_until": decisions.jsonable(d.valid_until),
        "clock": d.clock,
    }


@router.post(
    "/decisions",
    tags=["service providers"],
    response_model=m.DecisionAnswer | m.DecisionAnswers,
    responses=errors(400, 403),
)
async def decide(
    body: DecisionRequest | DecisionBatch = Body(...),
    who: Principal = Depends(require("service")),
    svc: Service = Depends(service),
) -> Response:
    """One decision (`{citizen_id, service, at?}`) or a batch (`{requests: [...]}`): a whole train at once.

    Decided on the event loop when the store is free and the last engine run answers (a decision takes
    microseconds, a thread-pool hop would cost more); in the thread pool when another request holds the store,
    or when a time asked needs an engine run first, which is made beside the writes (`Service.question`).
    """
    reqs = body.requests if isinstance(body, DecisionBatch) else [body]
    # bounds first: a far-off time would make the engine assess month after month
    batch = isinstance(body, DecisionBatch)
    times = [svc.now() if r.at is None else _as_of(svc, r.at, f"request {i + 1}: at" if batch else "at")
             for i, r in enumerate(reqs)]  # fmt: skip
    latest = max(times)  # a run that answers the latest time answers the earlier ones
    if svc.decider.valid_for(latest) and svc.lock.acquire(blocking=False):
        try:
            answer = _decide(body, who, svc)
        finally:
            svc.lock.release()
    else:
        answer = await run_in_threadpool(_decide_asked, body, who, svc, latest)
    # the answer is plain JSON already: skip FastAPI's re-validation and encoding (a third of the request)
    return Response(json.dumps(answer, ensure_ascii=False), media_type="application/json")


def _decide_asked(
    body: DecisionRequest | DecisionBatch, who: Principal, svc: Service, latest: dt.datetime
) -> dict[str, Any]:
    with svc.question(latest):
        return _decide(body, who, svc)


def _decide(body: DecisionRequest | DecisionBatch, who: Principal, svc: Service) -> dict[str, Any]:
    reqs = body.requests if isinstance(body, DecisionBatch) else [body]
    answers = decide_requests([(r.citizen_id, r.service, _cst(r.at)) for r in reqs], who, svc)
    return {"decisions": answers} if isinstance(body, DecisionBatch) else answers[0]


def decide_requests(
    reqs: list[tuple[str, str, dt.datetime | None]], who: Principal, svc: Service
) -> list[dict[str, Any]]:
    """(citizen ID, service, naive UTC time or None) → the provider's answers, recorded and audited. The
    common single decision comes here straight from a reader's fast path, with no request model to build."""
    assert who.subject is not None
    mine = provider_services(svc.store, who.subject)
    foreign = sorted({s for _, s, _ in reqs if s not in mine})
    if foreign:
        raise HTTPException(
            403,
            f"provider {who.subject} may ask only about its own services "
            f"({', '.join(sorted(mine))}), not {', '.join(foreign)}",
        )
    out = svc.decider.decide_many(reqs, asked_by=who.name)
    for d in out:
        svc.audit.append(who.name, "decision", d.citizen_id, service=d.service, outcome=d.outcome)
    return [_answer(d) for d in out]


# ---------------------------------------------------------------------------------------------- public


def _public_time(svc: Service, as_of: dt.datetime | None) -> dt.datetime:
    """Public views show now by default, or the register and boards as they stood at a past time."""
    now = svc.now()
    if as_of is None:
        return now
    t = _as_of(svc, as_of)
    if t > now:
        raise HTTPException(422, "as_of: the future is not published")
    return t


AsOf = Query(
    None,
    description="show the register as it stood at this time (default now; no offset = CST; "
    "from 1950-01-01 to now, else 422)",
)
QuestionAsOf = Query(
    None,
    description="the time asked about (default the service's clock; no offset = CST; "
    "from 1950-01-01 to 31 days past the clock, else 422)",
)


@router.get("/register", tags=["public"], response_model=m.RegisterAnswer)
def register(
    q: str = Query(min_length=2, max_length=100),
    as_of: dt.datetime | None = AsOf,
    svc: Service = Depends(service),
    who: Principal = Depends(principal),
) -> dict[str, Any]:
    """Search the register by name (characters or pinyin) or resident ID; scores only where published."""
    at = _public_time(svc, as_of)
    with svc.question(at):
        found = standings.register(svc.store, q, at, svc.decider.rulebook, limit=50)
        svc.audit.append(who.name, "register.search", None, q=q, shown=[r.citizen["citizen_id"] for r in found])
    out = [
        {
            "citizen_id": r.citizen["citizen_id"],
            "name": r.citizen["name"],
            "name_latin": r.citizen["name_latin"],
            "city": r.citizen["city"],
            "published": r.published,
            "score": r.assessment.score if r.assessment else None,
            "grade": r.assessment.grade if r.assessment else None,
            "rulebook_version": r.rulebook.version if r.rulebook else None,
        }
        for r in found
    ]
    return {"query": q, "as_of": decisions.jsonable(at), "results": out}


BOARD_LIMIT = 500  # the newest stays of a board; the rest are not sent


def _entries(stays: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """A board's stays as entries: one per citizen, list, cause and reason, since its earliest stay; newest first."""
    since: dict[tuple[Any, ...], dt.datetime] = {}
    for r in stays:
        key = (r["citizen_id"], r["name"], r["name_latin"], r["list_id"], r["cause"], standings.reason_code(r))
        since[key] = min(since.get(key, r["start"]), r["start"])
    out = sorted(((*k, t) for k, t in since.items()), key=lambda e: e[0])
    out.sort(key=lambda e: e[-1], reverse=True)  # newest first; a tie keeps citizen order (the sort is stable)
    return out[:BOARD_LIMIT]


def _list_board(svc: Service, city: str, kind: str, who: Principal, at: dt.datetime) -> dict[str, Any]:
    with svc.question(at):
        if city not in svc.store.rulebooks().cities:
            raise HTTPException(404, f"no city {city!r}")
        rb = svc.decider.rulebook(city, at)
        if rb is None or not standings.publishes(rb, "billboard" if kind == "blacklist" else "honour_roll"):
            what = "blacklist billboard" if kind == "blacklist" else "honour roll"
            raise HTTPException(404, f"{city} does not publish a {what} (its rulebook's disclosure policy)")
        rows = _entries(standings.board(svc.store, city, rb, kind, at))
        svc.audit.append(who.name, f"{kind}.read", None, city=city, shown=len(rows))
    labels = {x.id: x.label for x in rb.lists}
    return {
        "city": city,
        "as_of": decisions.jsonable(at),
        "rulebook_version": rb.version,
        "entries": [
            {
                "citizen_id": cid,
                "name": n,
                "name_latin": nl,
                "list": labels.get(lid, lid),
                "cause": cause,
                "reason": reason,
                "since": decisions.jsonable(since),
            }
            for cid, n, nl, lid, cause, reason, since in rows
        ],
    }


@router.get("/blacklist/{city}", tags=["public"], response_model=m.Board, responses=errors(404))
def blacklist(
    city: str, as_of: dt.datetime | None = AsOf, svc: Service = Depends(service), who: Principal = Depends(principal)
) -> dict[str, Any]:
    """The city's public blacklist (the billboard's data), where its rulebook publishes one."""
    return _list_board(svc, city, "blacklist", who, _public_time(svc, as_of))


@router.get("/whitelist/{city}", tags=["public"], response_model=m.Board, responses=errors(404))
def whitelist(
    city: str, as_of: dt.datetime | None = AsOf, svc: Service = Depends(service), who: Principal = Depends(principal)
) -> dict[str, Any]:
    """The city's honour roll, where its rulebook publishes scores or a billboard."""
    return _list_board(svc, city, "whitelist", who, _public_time(svc, as_of))


# ---------------------------------------------------------------------------------------------- citizens

CitizenRole = Depends(require("citizen", "admin"))


@router.get("/citizens/{citizen_id}/standing", tags=["citizens"], response_model=m.Standing, responses=errors(403))
def standing(
    citizen_id: str,
    as_of: dt.datetime | None = QuestionAsOf,
    who: Principal = CitizenRole,
    svc: Service = Depends(service),
) -> dict[str, Any]:
    own_citizen(who, citizen_id)
    at = _as_of(svc, as_of)
    with svc.question(at, citizen_id):
        st = decisions.standing(svc.store, citizen_id, stored(at))
        st.clock = "asked" if as_of is not None else "service"
        svc.audit.append(who.name, "citizen.standing", citizen_id)
    return st.to_json()


@router.get(
    "/citizens/{citizen_id}/explanation",
    tags=["citizens"],
    response_model=m.Explanation,
    response_model_exclude_unset=True,
    responses=errors(403),
)
def explanation(
    citizen_id: str,
    as_of: dt.datetime | None = QuestionAsOf,
    who: Principal = CitizenRole,
    svc: Service = Depends(service),
) -> dict[str, Any]:
    """Score → ledger entries → records and rules (with sources); list entries → cause; measures → via."""
    own_citizen(who, citizen_id)
    at = _as_of(svc, as_of)
    with svc.question(at, citizen_id):
        x = explanations.explain(svc.store, citizen_id, stored(at))
        x["clock"] = "asked" if as_of is not None else "service"
        svc.audit.append(who.name, "citizen.explanation", citizen_id)
    return x


@router.get("/citizens/{citizen_id}/history", tags=["citizens"], response_model=m.History, responses=errors(403))
def history(citizen_id: str, who: Principal = CitizenRole, svc: Service = Depends(service)) -> dict[str, Any]:
    """Monthly assessments, every list stay and every decision asked about the citizen."""
    own_citizen(who, citizen_id)
    with svc.question(svc.now(), citizen_id):
        ckey = svc.store.ckey(citizen_id)
        svc.flush()  # buffered decisions about this citizen belong in their history
        con = svc.store.con
        scores = con.execute(
            "SELECT assessed_at, score, grade, version FROM score_log WHERE ckey = ? ORDER BY assessed_at", [ckey]
        ).fetchall()
        stays = con.execute(
            'SELECT list_id, kind, start, "end", cause FROM list_entries WHERE ckey = ? ORDER BY start', [ckey]
        ).fetchall()
        asked = con.execute(
            "SELECT asked_at, service, outcome, asked_by, rulebook_version FROM decisions WHERE ckey = ? "
            "ORDER BY decision_id DESC LIMIT 500",
            [ckey],
        ).fetchall()
        svc.audit.append(who.name, "citizen.history", citizen_id)
    j = decisions.jsonable
    return {
        "citizen_id": citizen_id,
        "assessments": [{"at": j(a), "score": s, "grade": g, "rulebook_version": v} for a, s, g, v in scores],
        "list_stays": [
            {"list_id": lid, "kind": k, "start": j(s), "end": j(e), "cause": c} for lid, k, s, e, c in stays
        ],
        "decisions": [
            {"at": j(a), "service": s, "outcome": o, "asked_by": b, "rulebook_version": v} for a, s, o, b, v in asked
        ],
    }


@router.get(
    "/citizens/{citizen_id}/notifications", tags=["citizens"], response_model=m.Notifications, responses=errors(403)
)
def notifications(citizen_id: str, who: Principal = CitizenRole, svc: Service = Depends(service)) -> dict[str, Any]:
    """What the system told the citizen: listings where the city notifies, else only what a denial revealed."""
    own_citizen(who, citizen_id)
    with svc.lock:
        ckey = svc.store.ckey(citizen_id)
        rows = svc.store.con.execute(
            "SELECT sent_at, kind, message FROM notifications WHERE ckey = ? ORDER BY sent_at", [ckey]
        ).fetchall()
        svc.audit.append(who.name, "citizen.notifications", citizen_id)
    return {
        "citizen_id": citizen_id,
        "notifications": [{"at": decisions.jsonable(a), "kind": k, "message": m} for a, k, m in rows],
    }


@router.get("/citizens/{citizen_id}/cases", tags=["citizens"], response_model=m.CitizenCases, responses=errors(403))
def citizen_cases(citizen_id: str, who: Principal = CitizenRole, svc: Service = Depends(service)) -> dict[str, Any]:
    own_citizen(who, citizen_id)
    with svc.lock:
        svc.store.ckey(citizen_id)
        found = objections.cases(svc.store, citizen_id=citizen_id)
        svc.audit.append(who.name, "citizen.cases", citizen_id)
    return {"citizen_id": citizen_id, "cases": decisions.jsonable(found)}


@router.post(
    "/citizens/{citizen_id}/objections",
    tags=["citizens"],
    status_code=201,
    response_model=m.CaseFiled,
    responses=errors(400, 403),
)
def file_objection(
    citizen_id: str, body: ObjectionIn, who: Principal = Depends(require("citizen")), svc: Service = Depends(service)
) -> dict[str, Any]:
    """Contest one of one's own records; a reviewer decides."""
    own_citizen(who, citizen_id)
    with svc.lock:
        case_id = objections.file_objection(svc.store, citizen_id, body.agency, body.record_id, body.reason)
        svc.audit_write(who.name, "objection.file", citizen_id, case_id=case_id, record_id=body.record_id)
    return {"case_id": case_id, "status": "open"}


@router.post(
    "/citizens/{citizen_id}/repairs",
    tags=["citizens"],
    status_code=201,
    response_model=m.CaseFiled,
    responses=errors(400, 403),
)
def apply_repair(
    citizen_id: str, body: RepairIn, who: Principal = Depends(require("citizen")), svc: Service = Depends(service)
) -> dict[str, Any]:
    """Apply for credit repair of a blacklist stay once its cause is cured; a reviewer decides."""
    own_citizen(who, citizen_id)
    with svc.lock:
        case_id = objections.apply_repair(svc.store, citizen_id, body.list_id, body.reason)
        svc.audit_write(who.name, "repair.apply", citizen_id, case_id=case_id, list_id=body.list_id)
    return {"case_id": case_id, "status": "open"}


# ---------------------------------------------------------------------------------------------- admin

Admin = Depends(require("admin"))


@router.get("/rulebooks", tags=["admin"], response_model=m.RulebookVersions, responses=errors(403))
def rulebook_versions(who: Principal = Admin, svc: Service = Depends(service)) -> dict[str, Any]:
    with svc.lock:
        rows = svc.store.con.execute(
            "SELECT jurisdiction, version, effective_from, loaded_at, origin, digest FROM rulebook_versions "
            "ORDER BY jurisdiction, version"
        ).fetchall()
    cols = ("jurisdiction", "version", "effective_from", "loaded_at", "origin", "digest")
    return {"versions": [decisions.jsonable(dict(zip(cols, r, strict=True))) for r in rows]}


@router.get("/rulebooks/diff", tags=["admin"], response_model=m.RulebookDiff, responses=errors(403))
def rulebook_diff_route(a: str, b: str, who: Principal = Admin, svc: Service = Depends(service)) -> dict[str, Any]:
    """Differences between two resolved versions, e.g. `a=rongcheng@1&b=rongcheng@2`."""
    with svc.lock:
        rbs = svc.store.rulebooks()
        books = []
        for spec in (a, b):
            city, pin = rbs.parse_version(spec)
            rb = rbs.resolve(city, None, pin)
            if rb is None:
                raise LocatedError(f"{spec}: does not resolve")
            books.append(rb)
    return decisions.jsonable(rulebook_diff(books[0], books[1]))


_YAML_BODY = {"requestBody": {"required": True, "content": {"application/yaml": {"schema": {"type": "string"}}}}}


async def _yaml_text(request: Request) -> str:
    """The raw body as UTF-8 text (a rulebook is YAML, not JSON)."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HTTPException(422, f"body: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not text.strip():
        raise HTTPException(422, "body: empty; send the rulebook version as YAML text")
    return text


@router.post(
    "/rulebooks/preview", tags=["admin"], openapi_extra=_YAML_BODY, response_model=m.Impact, responses=errors(403)
)
def rulebook_preview(
    text: str = Depends(_yaml_text), who: Principal = Admin, svc: Service = Depends(service)
) -> dict[str, Any]:
    """Validate a new version and show its impact (who changes grade or list, by city) without changing anything."""
    with svc.lock:  # the store is needed only to copy it; the two engine runs use the copy, outside the lock
        job = impact.copy_for_preview(svc.store, text, "upload", svc.now())
    result = impact.run_preview(job)
    with svc.lock:  # an append may flush the trail into the store
        svc.audit.append(who.name, "rulebook.preview", None, version=result["version"])
    return result


@router.post(
    "/rulebooks",
    tags=["admin"],
    status_code=201,
    openapi_extra=_YAML_BODY,
    response_model=m.Scheduled,
    responses=errors(403),
)
def rulebook_schedule(
    text: str = Depends(_yaml_text),
    backdate: bool = Query(False, description="allow an effective date before today: past records are rescored"),
    who: Principal = Admin,
    svc: Service = Depends(service),
) -> dict[str, Any]:
    """Load (schedule) a version; it governs records from its `effective_from` on.

    A date before the service's today would rescore records that happened under the old rules — the
    retroactive change the versioning exists to prevent — so it is refused unless `backdate=true` says so.
    """
    with svc.lock:
        layer = impact.schedule(svc.store, text, f"api:{who.name}", svc.now(), backdate)
        svc.audit_write(
            who.name, "rulebook.schedule", None, version=layer.key, effective_from=layer.effective_from.isoformat()
        )
        svc.changed()
    return {"version": layer.key, "effective_from": layer.effective_from.isoformat()}


@router.get("/cases", tags=["admin"], response_model=m.Cases, responses=errors(403))
def case_queue(
    status: Literal["open", "upheld", "rejected"] | None = "open",
    who: Principal = Admin,
    svc: Service = Depends(service),
) -> dict[str, Any]:
    """Objections and credit-repair applications waiting for (or past) review."""
    with svc.lock:
        found = objections.cases(svc.store, status=status)
        svc.audit.append(who.name, "cases.read", None, status=status, citizens=[c["citizen_id"] for c in found][:1000])
    return {"cases": decisions.jsonable(found)}


@router.post("/cases/{case_id}/review", tags=["admin"], response_model=m.Case, responses=errors(400, 403))
def review_case(case_id: int, body: Review, who: Principal = Admin, svc: Service = Depends(service)) -> dict[str, Any]:
    """Uphold (retraction or repair record → rescoring) or reject a case."""
    with svc.lock:
        case = objections.review(svc.store, case_id, body.uphold, who.name, body.note)
        svc.audit_write(who.name, "case.review", case["citizen_id"], case_id=case_id, uphold=body.uphold)
        svc.changed()
    return decisions.jsonable(case)


# ---------------------------------------------------------------------------------------------- auditor


@router.get("/audit", tags=["auditor"], response_model=m.AuditEntries, responses=errors(403))
def audit_entries(
    after: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
    citizen_id: str | None = None,
    who: Principal = Depends(require("auditor")),
    svc: Service = Depends(service),
) -> dict[str, Any]:
    with svc.lock:
        rows = svc.audit.entries(citizen_id, limit, after)
    return {"entries": decisions.jsonable(rows)}


@router.get("/audit/head", tags=["auditor"], response_model=m.AuditHead, responses=errors(403, 409))
def audit_head(who: Principal = Depends(require("auditor")), svc: Service = Depends(service)) -> dict[str, Any]:
    """A checkpoint of the last entry, to keep outside the store and pass to `verify?against=` later: the
    store's holder can rewrite the trail whole, but not this copy. 409, and no checkpoint, if the trail
    does not verify now."""
    with svc.lock:
        svc.audit.flush()
        v = audit.verify(svc.store)
    if v.head is None:
        raise HTTPException(409, {"error": "the audit trail does not verify; no checkpoint", "problems": v.problems})
    return {"checkpoint": str(v.head), "seq": v.head.seq, "hash": v.head.hash, "entries": v.entries}


@router.get(
    "/audit/verify",
    tags=["auditor"],
    response_model=m.AuditVerification,
    response_model_exclude_unset=True,
    responses=errors(403),
)
def audit_verify(
    against: str | None = Query(None, description="a checkpoint from /audit/head: also prove nothing up to it changed"),
    who: Principal = Depends(require("auditor")),
    svc: Service = Depends(service),
) -> dict[str, Any]:
    """Walk the hash chain; any altered, removed or reordered entry is named."""
    try:
        checkpoint = audit.Checkpoint.parse(against) if against is not None else None
    except audit.BadCheckpoint as e:
        raise HTTPException(422, str(e)) from None
    with svc.lock:
        svc.audit.flush()
        v = audit.verify(svc.store, checkpoint)
    extra = {"against": str(checkpoint)} if checkpoint else {}
    return {"ok": v.ok, "entries": v.entries, "problems": v.problems, **extra}
