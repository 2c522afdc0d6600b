"""The HTTP API over the bundled sample: every endpoint × every role, records, decisions, cases, rulebooks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from socialcredit.api.app import create_app
from socialcredit.engine import Engine
from socialcredit.keys import create_key
from socialcredit.sample import citizen_ids, load_sample
from socialcredit.store import Store

IDS = citizen_ids()
ZHANG = IDS["zhang_wei"]  # court defaulter in Rongcheng (sample-001 is his unpaid debt)
CHEN = IDS["chen_jing"]
ROLES = ("public", "admin", "agency", "service", "citizen", "auditor")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A scored sample store with one key per role; tests copy it so each starts from the same state."""
    path = tmp_path_factory.mktemp("api") / "base.duckdb"
    store = Store(path)
    store.init()
    load_sample(store)
    Engine(store).run()  # as of now: every copy starts scored
    tokens = {
        "admin": create_key(store, "admin")[1],
        "agency": create_key(store, "agency", "commercial_banks")[1],
        "service": create_key(store, "service", "rail")[1],
        "citizen": create_key(store, "citizen", ZHANG)[1],
        "auditor": create_key(store, "auditor")[1],
        "other_citizen": create_key(store, "citizen", CHEN)[1],
    }
    store.close()
    return path, tokens


@pytest.fixture
def api(base, tmp_path):
    path, tokens = base
    copy = tmp_path / "api.duckdb"
    shutil.copyfile(path, copy)
    with TestClient(create_app(copy)) as client:
        client.tokens = tokens  # type: ignore[attr-defined]
        yield client


def auth(client, role: str) -> dict[str, str]:
    return {} if role == "public" else {"Authorization": f"Bearer {client.tokens[role]}"}


NEW_RECORD = {
    "record_id": "api-1",
    "citizen_id": CHEN,
    "behaviour": "unpaid_debt",
    "occurred_at": "2026-10-01T10:00",
    "attributes": {"amount": 5000, "days_late": 40},
}
RULEBOOK_V3 = """\
jurisdiction: rongcheng
name: Rongcheng
level: city
extends: national
region_code: "371082"
version: 3
effective_from: 2026-10-01
source: illustrative
scale: {base: 1000, min: 0, max: 1300}
grades:
  - {grade: AAA, min: 1010}
  - {grade: AA, min: 1005}
  - {grade: A, min: 960}
  - {grade: B, min: 850}
  - {grade: C, min: 600}
  - {grade: D, min: 0}
"""

# every endpoint, with a body that is valid for the role it admits, and the roles it admits
ENDPOINTS = [
    ("POST", "/api/v1/records", {"records": [NEW_RECORD]}, {"agency"}),
    ("POST", "/api/v1/retractions", {"record_ids": ["sample-001"], "reason": "paid"}, {"agency"}),
    ("POST", "/api/v1/decisions", {"citizen_id": ZHANG, "service": "rail.ticket"}, {"service"}),
    ("GET", "/api/v1/register?q=Zhang", None, set(ROLES)),
    ("GET", "/api/v1/blacklist/shenzhen", None, set(ROLES)),
    ("GET", "/api/v1/whitelist/shenzhen", None, set(ROLES)),
    ("GET", f"/api/v1/citizens/{ZHANG}/standing", None, {"citizen", "admin"}),
    ("GET", f"/api/v1/citizens/{ZHANG}/explanation", None, {"citizen", "admin"}),
    ("GET", f"/api/v1/citizens/{ZHANG}/history", None, {"citizen", "admin"}),
    ("GET", f"/api/v1/citizens/{ZHANG}/notifications", None, {"citizen", "admin"}),
    ("GET", f"/api/v1/citizens/{ZHANG}/cases", None, {"citizen", "admin"}),
    (
        "POST",
        f"/api/v1/citizens/{ZHANG}/objections",
        {"agency": "commercial_banks", "record_id": "sample-001", "reason": "I paid in full"},
        {"citizen"},
    ),
    (
        "POST",
        f"/api/v1/citizens/{ZHANG}/repairs",
        {"list_id": "dishonest_judgment_defaulters", "reason": "debt settled"},
        {"citizen"},
    ),
    ("GET", "/api/v1/rulebooks", None, {"admin"}),
    ("GET", "/api/v1/rulebooks/diff?a=rongcheng@1&b=rongcheng@2", None, {"admin"}),
    ("POST", "/api/v1/rulebooks/preview", RULEBOOK_V3, {"admin"}),
    ("POST", "/api/v1/rulebooks?backdate=true", RULEBOOK_V3, {"admin"}),
    ("GET", "/api/v1/cases", None, {"admin"}),
    ("GET", "/api/v1/audit", None, {"auditor"}),
    ("GET", "/api/v1/audit/verify", None, {"auditor"}),
    ("GET", "/api/v1/audit/head", None, {"auditor"}),
]


def call(client, method: str, path: str, body, role: str):
    headers = auth(client, role)
    if isinstance(body, str):
        return client.request(method, path, content=body, headers={**headers, "Content-Type": "application/yaml"})
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize("role", ROLES)
def test_authorization_matrix(api, role):
    """Each role × each endpoint: allowed → 2xx, refused → 401 (no key) or 403 (wrong role), never anything else."""
    for method, path, body, allowed in ENDPOINTS:
        r = call(api, method, path, body, role)
        if role in allowed:
            assert r.status_code in (200, 201), (role, method, path, r.status_code, r.text)
        else:
            assert r.status_code == (401 if role == "public" else 403), (role, method, path, r.status_code, r.text)
            assert "error" in r.json()


def test_every_route_is_in_the_matrix(api):
    paths = api.get("/openapi.json").json()["paths"]
    routes = {(m.upper(), p) for p, ops in paths.items() if p.startswith("/api/v1") for m in ops}
    covered = {
        (m, p.split("?")[0].replace(ZHANG, "{citizen_id}").replace("shenzhen", "{city}")) for m, p, _, _ in ENDPOINTS
    }
    covered |= {("POST", "/api/v1/cases/{case_id}/review")}  # reviewed in test_objection_upheld_rescores
    assert routes <= covered, routes - covered


def test_citizen_sees_only_themselves(api):
    r = api.get(f"/api/v1/citizens/{ZHANG}/standing", headers=auth(api, "other_citizen"))
    assert r.status_code == 403
    assert api.get(f"/api/v1/citizens/{CHEN}/standing", headers=auth(api, "other_citizen")).status_code == 200


def test_wrong_key_is_401(api):
    r = api.get("/api/v1/register?q=Zhang", headers={"Authorization": "Bearer sc_admin_00000000_" + "x" * 43})
    assert r.status_code == 401 and r.json()["error"]


def test_records_idempotent_and_conflicts(api):
    h = auth(api, "agency")
    first = api.post("/api/v1/records", json={"records": [NEW_RECORD]}, headers=h).json()
    assert first["accepted"] == 1
    again = api.post("/api/v1/records", json={"records": [NEW_RECORD]}, headers=h).json()
    assert again["accepted"] == 0 and again["duplicate_ids"] == ["api-1"]
    changed = {**NEW_RECORD, "attributes": {"amount": 9999, "days_late": 40}}
    r = api.post("/api/v1/records", json={"records": [changed]}, headers=h)
    assert r.status_code == 409 and r.json()["conflicting_ids"] == ["api-1"]


def test_bad_batch_rejected_whole_with_rows_and_fields(api):
    h = auth(api, "agency")
    good = {**NEW_RECORD, "record_id": "api-2"}
    bad = {**NEW_RECORD, "record_id": "api-3", "citizen_id": "110101199001010011"}
    r = api.post("/api/v1/records", json={"records": [good, bad]}, headers=h)
    assert r.status_code == 422
    assert any(p["row"] == 2 and p["field"] == "citizen_id" for p in r.json()["problems"])
    again = api.post("/api/v1/records", json={"records": [good]}, headers=h).json()
    assert again["accepted"] == 1  # nothing of the rejected batch was written


def test_agency_may_submit_only_its_behaviours_and_name(api):
    h = auth(api, "agency")
    r = api.post("/api/v1/records", json={"records": [{**NEW_RECORD, "reported_by": "state_grid"}]}, headers=h)
    assert r.status_code == 403
    smoking = {**NEW_RECORD, "record_id": "api-4", "behaviour": "smoking_on_train", "attributes": {}}
    r = api.post("/api/v1/records", json={"records": [smoking]}, headers=h)
    assert r.status_code == 422 and "commercial_banks" in r.text


def test_decision_answer_reveals_no_history(api):
    body = {"citizen_id": ZHANG, "service": "rail.high_speed"}
    r = api.post("/api/v1/decisions", json=body, headers=auth(api, "service"))
    assert r.status_code == 200
    d = r.json()
    assert d["outcome"] == "deny" and d["public_reason"] and d["rulebook_version"].startswith("rongcheng")
    assert set(d) == {
        "citizen_id",
        "service",
        "at",
        "outcome",
        "public_reason",
        "rulebook_version",
        "valid_until",
        "clock",
    }


def test_decision_batch_a_whole_train(api):
    reqs = [{"citizen_id": c, "service": "rail.ticket"} for c in IDS.values()]
    r = api.post("/api/v1/decisions", json={"requests": reqs}, headers=auth(api, "service"))
    assert r.status_code == 200
    out = r.json()["decisions"]
    assert [d["citizen_id"] for d in out] == list(IDS.values())
    assert {d["outcome"] for d in out} >= {"allow", "deny"}


def test_provider_may_ask_only_its_services(api):
    r = api.post("/api/v1/decisions", json={"citizen_id": ZHANG, "service": "air.ticket"}, headers=auth(api, "service"))
    assert r.status_code == 403 and "air.ticket" in r.json()["error"]


def test_bad_input_is_json_never_500(api):
    h = auth(api, "service")
    for body in (b"{not json", b"[]", b'{"citizen_id": 5}', b'{"requests": []}'):
        r = api.post("/api/v1/decisions", content=body, headers={**h, "Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["error"], body
    r = api.post("/api/v1/decisions", json={"citizen_id": "nobody", "service": "rail.ticket"}, headers=h)
    assert r.status_code == 422 and "nobody" in r.json()["error"]
    r = api.post(
        "/api/v1/rulebooks/preview",
        content="jurisdiction: [",
        headers={**auth(api, "admin"), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 422 and "upload" in r.json()["error"]


def test_body_size_limit(api):
    big = b'{"records": [' + b" " * (5 * 1024 * 1024) + b"]}"
    r = api.post("/api/v1/records", content=big, headers={**auth(api, "agency"), "Content-Type": "application/json"})
    assert r.status_code == 413 and "larger" in r.json()["error"]


def test_disclosure_respected(api):
    assert api.get("/api/v1/blacklist/shanghai").status_code == 404  # Shanghai publishes no billboard
    board = api.get("/api/v1/blacklist/shenzhen").json()
    assert all(set(e) >= {"name", "reason", "since"} for e in board["entries"])
    # Rongcheng published scores under rongcheng@1 (to 2020), not under the Seashell rules (rongcheng@2)
    then = api.get("/api/v1/register", params={"q": "Zhang Wei", "as_of": "2020-06-01"}).json()["results"]
    zhang = next(r for r in then if r["citizen_id"] == ZHANG)
    assert zhang["published"] and zhang["score"] == 1000  # not assessed before the sample's records: the base
    now = api.get("/api/v1/register", params={"q": "Zhang Wei"}).json()["results"]
    assert not next(r for r in now if r["citizen_id"] == ZHANG)["published"]
    li = next(r for r in api.get("/api/v1/register", params={"q": "Li Na"}).json()["results"])
    assert not li["published"] and li["score"] is None  # Shanghai does not publish


def test_objection_upheld_rescores(api):
    before = api.get(f"/api/v1/citizens/{ZHANG}/standing", headers=auth(api, "citizen")).json()
    r = api.post(
        f"/api/v1/citizens/{ZHANG}/objections",
        headers=auth(api, "citizen"),
        json={"agency": "commercial_banks", "record_id": "sample-001", "reason": "I paid in full"},
    )
    case = r.json()["case_id"]
    queue = api.get("/api/v1/cases", headers=auth(api, "admin")).json()["cases"]
    assert [c["case_id"] for c in queue] == [case]
    r = api.post(
        f"/api/v1/cases/{case}/review", json={"uphold": True, "note": "bank confirms"}, headers=auth(api, "admin")
    )
    assert r.status_code == 200 and r.json()["status"] == "upheld"
    after = api.get(f"/api/v1/citizens/{ZHANG}/standing", headers=auth(api, "citizen")).json()
    assert after["score"] > before["score"]
    again = api.post(f"/api/v1/cases/{case}/review", json={"uphold": False}, headers=auth(api, "admin"))
    assert again.status_code == 422 and "already upheld" in again.json()["error"]


def test_repair_upheld_reports_a_repair_record(api):
    r = api.post(
        f"/api/v1/citizens/{ZHANG}/repairs",
        headers=auth(api, "citizen"),
        json={"list_id": "dishonest_judgment_defaulters", "reason": "debt settled"},
    )
    case = r.json()["case_id"]
    api.post(f"/api/v1/cases/{case}/review", json={"uphold": True}, headers=auth(api, "admin"))
    x = api.get(f"/api/v1/citizens/{ZHANG}/explanation", headers=auth(api, "citizen")).json()
    repair = [e for e in x["ledger"] if e.get("record", {}).get("behaviour") == "credit_repair_completed"]
    assert repair and repair[0]["points"] > 0


def test_impact_preview_changes_nothing_then_schedule(api):
    h = {**auth(api, "admin"), "Content-Type": "application/yaml"}
    p = api.post("/api/v1/rulebooks/preview", content=RULEBOOK_V3, headers=h).json()
    assert p["version"].startswith("rongcheng@3")
    rong = next(c for c in p["by_city"] if c["city"] == "rongcheng")
    assert rong["grade_changed"] >= 1  # Chen Jing's good deeds now reach AAA
    chen = next(s for s in p["sample"] if s["citizen_id"] == CHEN)
    assert chen["before"]["grade"] != chen["after"]["grade"] == "AAA"
    versions = api.get("/api/v1/rulebooks", headers=auth(api, "admin")).json()["versions"]
    assert not any(v["jurisdiction"] == "rongcheng" and v["version"] == 3 for v in versions)
    r = api.post("/api/v1/rulebooks", content=RULEBOOK_V3, headers=h)
    assert r.status_code == 422 and "before today" in r.json()["error"]  # would rescore past records
    r = api.post("/api/v1/rulebooks", params={"backdate": "true"}, content=RULEBOOK_V3, headers=h)
    assert r.status_code == 201 and r.json()["effective_from"] == "2026-10-01"


def test_reads_and_writes_are_audited_and_verify(api):
    api.get(f"/api/v1/citizens/{ZHANG}/standing", headers=auth(api, "citizen"))
    api.post("/api/v1/decisions", json={"citizen_id": CHEN, "service": "rail.ticket"}, headers=auth(api, "service"))
    entries = api.get("/api/v1/audit", params={"limit": 1000}, headers=auth(api, "auditor")).json()["entries"]
    actions = {(e["action"], e["citizen_id"]) for e in entries}
    assert ("citizen.standing", ZHANG) in actions and ("decision", CHEN) in actions
    assert api.get("/api/v1/audit/verify", headers=auth(api, "auditor")).json() == {
        "ok": True,
        "entries": len(entries),
        "problems": [],
    }


def test_rulebook_diff_names_every_change_and_keeps_its_older_parts(api):
    r = api.get("/api/v1/rulebooks/diff", params={"a": "rongcheng@1", "b": "rongcheng@2"}, headers=auth(api, "admin"))
    assert r.status_code == 200, r.text
    d = r.json()
    assert set(d) == {"a", "b", "rules", "lists", "other", "changes"}
    assert {
        "section": "disclosure",
        "id": None,
        "change": "changed",
        "field": "publish_scores",
        "before": True,
        "after": False,
    } in d["changes"]
    assert ("lists", "blacklist", "min_stay") in {(c["section"], c["id"], c["field"]) for c in d["changes"]}
    assert [i for i, _, _ in d["lists"]] == ["blacklist"] and d["other"]["disclosure"][1]["publish_scores"] is False


def test_explanation_names_the_cap_that_cut_points(make_store, make_citizens):
    from conftest import cst, rec

    store = make_store()
    (a,) = make_citizens(store, 1)
    store.ingest(
        [rec(f"v{i}", a, "volunteer_work", cst(2021, 2 + i, 1), hours=1) for i in range(3)], now=cst(2030, 1, 1)
    )
    _, token = create_key(store, "admin")
    store.close()
    with TestClient(create_app(store.path, as_of=cst(2021, 12, 1))) as c:
        r = c.get(f"/api/v1/citizens/{a}/explanation", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    caps = [e.get("cap") for e in r.json()["ledger"]]
    assert caps == [None, None, {"id": "volunteer.cap", "per": "year", "max": 10, "min": None, "points_before_cap": 5}]
