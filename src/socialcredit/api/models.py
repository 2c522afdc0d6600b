"""The shapes of the API's answers: one pydantic model per success response, and the one error shape.

They describe what the routes return, field for field, so the OpenAPI document (`/openapi.json`) tells a
client exactly what it gets and a schema-driven test can check every answer against it. Times are ISO 8601
UTC text ("…Z", `decisions.jsonable`), kept as text so the JSON is the same with or without the model.

Every error, whoever raises it (a route, the core, the framework, the body limit), is `{"error": message}`
with, where it helps, what it is about (`problems`, `conflicting_ids`, `rows`): `ERRORS` documents each
status once, and routes name the ones they can return with `errors(...)`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Time = str  # ISO 8601 UTC text, "…Z"


class Problem(BaseModel):
    """One located problem: a request field, or a batch row and field."""

    model_config = ConfigDict(extra="allow")
    message: str
    field: str | None = None
    row: int | None = None


class Error(BaseModel):
    """Every error's shape: a message, and what it is about where that helps the caller fix it."""

    model_config = ConfigDict(extra="allow")
    error: str = Field(description="what went wrong, in words")
    problems: list[Problem | str] | None = Field(None, description="each problem found (422, a failed audit)")
    conflicting_ids: list[str] | None = Field(None, description="record_ids already used with other content (409)")
    rows: list[int] | None = Field(None, description="batch rows naming another agency as reporter (403)")


_WHY = {
    400: "the body could not be read as the declared content type (JSON that is not UTF-8, say)",
    401: "no API key where one is needed, or a key that is unknown or revoked",
    403: "the key's role may not do this, or not for this citizen, service or agency",
    404: "no such thing, or the city's disclosure policy does not publish it",
    409: "the request conflicts with what is stored",
    413: "the request body is larger than the limit (4 MiB)",
    422: "the request is malformed or names something that does not exist; each problem is named",
}
ERRORS: dict[int, dict[str, Any]] = {code: {"model": Error, "description": why} for code, why in _WHY.items()}
"""Every error status the API returns, documented once with the shared `Error` shape."""


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entries for these error statuses, from the shared `ERRORS`."""
    return {code: ERRORS[code] for code in codes}


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------- agencies


class RecordsAccepted(_Out):
    batch: int | None = Field(description="the ingest batch; null when nothing new was stored")
    accepted: int
    duplicates: int
    duplicate_ids: list[str]


class Retracted(_Out):
    retracted: int


# ---------------------------------------------------------------------------------------------- decisions


class DecisionAnswer(_Out):
    """What a service provider learns: the outcome and its public reason — never the history behind it."""

    citizen_id: str
    service: str
    at: Time
    outcome: str
    public_reason: str
    rulebook_version: str | None
    valid_until: Time | None
    clock: str = Field(
        description="whose time `at` is: 'asked' (the request named it) or 'service' (the service's "
        "clock, when the request named none)"
    )


class DecisionAnswers(_Out):
    decisions: list[DecisionAnswer]


# ---------------------------------------------------------------------------------------------- public


class RegisterEntry(_Out):
    citizen_id: str
    name: str
    name_latin: str | None
    city: str
    published: bool = Field(description="whether the citizen's rulebook publishes scores")
    score: int | None
    grade: str | None
    rulebook_version: str | None


class RegisterAnswer(_Out):
    query: str
    as_of: Time
    results: list[RegisterEntry]


class BoardEntry(_Out):
    citizen_id: str
    name: str
    name_latin: str | None
    list: str = Field(description="the list's label")
    cause: str | None
    reason: str | None = Field(description="the behaviour, characteristic or grade that listed the citizen")
    since: Time


class Board(_Out):
    city: str
    as_of: Time
    rulebook_version: str
    entries: list[BoardEntry]


# ---------------------------------------------------------------------------------------------- citizens


class ListEntry(_Out):
    list_id: str
    kind: str
    start: Time
    end: Time | None
    cause: str | None
    record_id: str | None
    agency: str | None
    behaviour: str | None
    characteristic: str | None
    grade: str | None
    score: int | None
    version: str | None


class ActiveMeasure(_Out):
    measure: str
    label: str
    kind: str
    effect: str
    services: list[str]
    public_reason: str
    via: str = Field(description='"list:<id>", "memory:<id>", or "parent:<citizen id> list:<id>"')
    since: Time
    until: Time | None
    discount_pct: float | None
    throttle_pct: float | None


class Standing(_Out):
    citizen_id: str
    name: str
    city: str
    as_of: Time
    score: int | None
    grade: str | None
    rulebook_version: str | None
    list_entries: list[ListEntry]
    measures: list[ActiveMeasure]
    clock: str = Field(
        description="whose time as_of is: 'asked' (the request named it) or 'service' (the service's clock)"
    )
    assessed_at: Time | None = Field(
        description="when `score` and `grade` were assessed: they are the published "
        "ones, the latest monthly assessment at or before as_of (None: never assessed)"
    )
    running_score: int | None = Field(
        description="the ledger's score at as_of, clamp(base + points in force), "
        "which the next monthly assessment publishes"
    )


class Score(_Out):
    value: int | None = Field(description="the running score at as_of: clamp(base + sum_of_entries)")
    grade: str | None
    published: int | None = Field(
        description="the published score: the latest monthly assessment at or before "
        "as_of, the one the grade lists follow"
    )
    published_grade: str | None
    assessed_at: Time | None
    base: int | None
    scale: list[int] | None = Field(description="[min, max]")
    sum_of_entries: int


class RuleApplied(_Out):
    id: str
    points: int
    when: str | None
    label: str | None
    source: str | None


class LedgerRecord(_Out):
    record_id: str | None
    agency: str | None
    behaviour: str | None
    occurred_at: Time | None
    attributes: dict[str, Any]


class RecordRef(_Out):
    record_id: str | None
    agency: str | None
    behaviour: str | None


class AppliedCap(_Out):
    """The cap that took points from a record's entry: its rules gave `points_before_cap`, the entry has
    what the cap's period still allowed."""

    id: str
    per: str
    max: int | None
    min: int | None
    points_before_cap: int


class LedgerEntry(_Out):
    """A ledger entry with its rules; `record` for a record's entry, `characteristic` (and the record that
    set it, if any) for a characteristic's, `cap` when a cap changed a record's points — the other keys
    are absent, not null."""

    source: str
    points: int
    valid_from: Time
    valid_to: Time | None
    rulebook_version: str | None
    rules: list[RuleApplied]
    record: LedgerRecord | None = None
    characteristic: str | None = None
    set_by_record: RecordRef | None = None
    cap: AppliedCap | None = None


class Explanation(_Out):
    citizen_id: str
    name: str
    city: str
    as_of: Time
    clock: str = Field(description="whose time as_of is: 'asked' or 'service'")
    rulebook_version: str | None
    score: Score
    ledger: list[LedgerEntry]
    list_entries: list[ListEntry]
    measures: list[ActiveMeasure]


class Assessment(_Out):
    at: Time
    score: int | None
    grade: str | None
    rulebook_version: str | None


class ListStay(_Out):
    list_id: str
    kind: str
    start: Time
    end: Time | None
    cause: str | None


class DecisionAsked(_Out):
    at: Time
    service: str
    outcome: str
    asked_by: str | None
    rulebook_version: str | None


class History(_Out):
    citizen_id: str
    assessments: list[Assessment]
    list_stays: list[ListStay]
    decisions: list[DecisionAsked]


class Notification(_Out):
    at: Time
    kind: str
    message: str


class Notifications(_Out):
    citizen_id: str
    notifications: list[Notification]


class Case(_Out):
    case_id: int
    kind: str = Field(description='"objection" or "repair"')
    citizen_id: str
    agency: str | None
    record_id: str | None
    list_id: str | None
    reason: str
    filed_at: Time
    status: str = Field(description='"open", "upheld" or "rejected"')
    reviewer: str | None
    reviewed_at: Time | None
    note: str | None


class CitizenCases(_Out):
    citizen_id: str
    cases: list[Case]


class CaseFiled(_Out):
    case_id: int
    status: str


# ---------------------------------------------------------------------------------------------- admin


class RulebookVersion(_Out):
    jurisdiction: str
    version: int
    effective_from: dt.date
    loaded_at: Time
    origin: str | None
    digest: str


class RulebookVersions(_Out):
    versions: list[RulebookVersion]


class RulebookChange(_Out):
    """One difference: an item added or removed (its fields as before or after), or one field changed."""

    section: Literal["rulebook", "scale", "grades", "disclosure", "rules", "caps", "lists", "memory"]
    id: str | None = Field(description="the item's id (a grade's name); null for rulebook, scale and disclosure")
    change: Literal["added", "removed", "changed"]
    field: str | None = Field(description="the field that changed; null when the whole item is added or removed")
    before: Any = Field(description="the field's value, or the removed item's fields; null where absent")
    after: Any = Field(description="the field's value, or the added item's fields; null where absent")


class RulebookDiff(_Out):
    """Every difference in `changes`, field by field. Also, as before: rules as `[change, id, before, after]`,
    lists as `[id, before, after]` (null where absent), scale and disclosure as `{part: [before, after]}`;
    before and after are the rulebook's own text."""

    a: str
    b: str
    rules: list[list[str | dict[str, Any] | None]] = Field(description="[change, rule id, before, after]")
    lists: list[list[str | dict[str, Any] | None]] = Field(description="[list id, before, after]")
    other: dict[str, list[dict[str, Any]]] = Field(description="{part: [before, after]}")
    changes: list[RulebookChange] = Field(description="every difference, by section, item and field")


class CityImpact(_Out):
    city: str
    citizens: int
    grade_changed: int
    list_changed: int
    score_changed: int


class Snapshot(_Out):
    score: int | None
    grade: str | None
    lists: list[str]


class ImpactSample(_Out):
    citizen_id: str
    name: str
    city: str
    before: Snapshot
    after: Snapshot


class Impact(_Out):
    version: str
    effective_from: str
    as_of: Time
    by_city: list[CityImpact]
    sample: list[ImpactSample]


class Scheduled(_Out):
    version: str
    effective_from: str


class Cases(_Out):
    cases: list[Case]


# ---------------------------------------------------------------------------------------------- auditor


class AuditEntry(_Out):
    seq: int
    logged_at: Time
    principal: str
    action: str
    citizen_id: str | None
    detail: str = Field(description="the entry's details as JSON text (hashed as written)")
    prev: str
    hash: str


class AuditEntries(_Out):
    entries: list[AuditEntry]


class AuditHead(_Out):
    checkpoint: str = Field(description="`socialcredit-audit:v1:<seq>:<hash>`, to pass to `verify?against=`")
    seq: int
    hash: str
    entries: int


class AuditVerification(_Out):
    ok: bool
    entries: int
    problems: list[str]
    against: str | None = Field(None, description="the checkpoint verified against; absent without one")
