"""The HTTP door under hostile input: no impersonation, no 5xx, every refusal in the `{"error": ...}` shape."""

from __future__ import annotations

import json

import pytest
import test_api
from test_api import CHEN, NEW_RECORD, ZHANG, auth

from socialcredit.catalog import ENVELOPE

base, api = test_api.base, test_api.api  # the scored sample store with a key per role, and a client over a copy


def _audit_tail(client, n: int = 5) -> list[dict]:
    entries = client.get("/api/v1/audit?limit=1000", headers=auth(client, "auditor")).json()["entries"]
    return entries[-n:]


@pytest.mark.parametrize("field", ENVELOPE)
def test_no_envelope_field_from_attributes_over_http(api, field):
    value = {
        "record_id": "zzz",
        "citizen_id": ZHANG,
        "behaviour": "late_bill_payment",
        "occurred_at": "2020-01-01T00:00",
        "reported_by": "state_grid",
    }[field]
    rec = {**NEW_RECORD, "attributes": {**NEW_RECORD["attributes"], field: value}}
    r = api.post("/api/v1/records", json={"records": [rec]}, headers=auth(api, "agency"))
    assert r.status_code == 422, r.text
    assert f"attributes.{field}" in r.text and "envelope" in r.text
    assert all(e["action"] != "records.submit" for e in _audit_tail(api))
    # the same record sent honestly is stored as the submitting agency's, for the named citizen
    ok = api.post("/api/v1/records", json={"records": [NEW_RECORD]}, headers=auth(api, "agency"))
    assert ok.status_code == 200 and ok.json()["accepted"] == 1
    entry = [e for e in _audit_tail(api) if e["action"] == "records.submit"][-1]
    assert json.loads(entry["detail"])["citizens"] == [CHEN]


def test_a_lone_surrogate_is_a_422_naming_the_field_and_the_connection_lives(api):
    body = json.dumps({"records": [NEW_RECORD]}).replace('"amount": 5000', '"amount": "x\\ud800y"')
    r = api.post("/api/v1/records", content=body, headers={**auth(api, "agency"), "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert "attributes.amount" in r.text and "surrogate" in r.text
    assert api.get("/api/v1/register?q=Zhang").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "role", "body"),
    [
        ("POST", "/api/v1/decisions", "service", '{"citizen_id": "x\\ud800y", "service": "rail.ticket"}'),
        ("GET", "/api/v1/citizens/x%ED%A0%80y/standing", "admin", None),
        ("POST", "/api/v1/retractions", "agency", '{"record_ids": ["\\ud800"], "reason": "\\udfff"}'),
    ],
)
def test_broken_unicode_anywhere_is_a_4xx_in_the_error_shape(api, method, path, role, body):
    headers = {**auth(api, role), "Content-Type": "application/json"}
    r = api.request(method, path, content=body, headers=headers)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert "error" in r.json()


def test_undecodable_bytes_in_a_query_are_text_not_a_crash(api):
    r = api.get("/api/v1/register?q=%ED%A0%80%ED%A0%80")
    assert r.status_code == 200 and r.json()["results"] == []


def test_a_streamed_body_over_the_limit_is_413(base, tmp_path):
    import shutil

    from fastapi.testclient import TestClient

    from socialcredit.api.app import create_app

    path, tokens = base
    copy = tmp_path / "s.duckdb"
    shutil.copyfile(path, copy)
    with TestClient(create_app(copy, max_body=1000)) as client:

        def chunks():
            for _ in range(20):
                yield b" " * 100

        r = client.post(
            "/api/v1/records",
            content=chunks(),
            headers={"Authorization": f"Bearer {tokens['agency']}", "Content-Type": "application/json"},
        )
        assert r.status_code == 413 and "larger than 1000 bytes" in r.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "status"), [("DELETE", "/api/v1/register", 405), ("POST", "/api/v1/records", 400)]
)
def test_framework_errors_use_the_project_shape(api, method, path, status):
    r = api.request(
        method, path, content=b'{"records": [', headers={**auth(api, "agency"), "Content-Type": "application/json"}
    )
    assert r.status_code in (status, 422), r.text
    assert set(r.json()) >= {"error"} and "detail" not in r.json()


@pytest.mark.parametrize("q", ["%%", "__", "%a%", "Z_a"])
def test_register_search_terms_are_literal_text(api, q):
    r = api.get("/api/v1/register", params={"q": q})
    assert r.status_code == 200 and r.json()["results"] == []


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/citizens/{ZHANG}/standing?as_of=7486-01-02T10:34:41%2B17:44",
        f"/api/v1/citizens/{ZHANG}/standing?as_of=9999-12-31T23:59",
        f"/api/v1/citizens/{ZHANG}/explanation?as_of=0001-01-01",
        "/api/v1/blacklist/rongcheng?as_of=0001-01-01",
        "/api/v1/whitelist/rongcheng?as_of=0001-01-01",
        "/api/v1/register?q=Zhang&as_of=0001-01-01",
    ],
)
def test_times_out_of_bounds_are_422_naming_the_field(api, path):
    r = api.get(path, headers=auth(api, "admin"))
    assert r.status_code == 422, r.text
    assert r.json()["error"].startswith("as_of: ")


@pytest.mark.parametrize("at", ["0001-01-01T00:00", "9999-12-31T23:59", "7486-01-02T10:34:41+17:44"])
def test_decision_times_out_of_bounds_are_422(api, at):
    for body, field in [
        ({"citizen_id": ZHANG, "service": "rail.ticket", "at": at}, "at: "),
        (
            {
                "requests": [
                    {"citizen_id": ZHANG, "service": "rail.ticket"},
                    {"citizen_id": ZHANG, "service": "rail.ticket", "at": at},
                ]
            },
            "request 2: at: ",
        ),
    ]:
        r = api.post("/api/v1/decisions", json=body, headers=auth(api, "service"))
        assert r.status_code == 422, r.text
        assert r.json()["error"].startswith(field)


@pytest.mark.parametrize(
    "body",
    [
        {"citizen_id": ZHANG, "service": "air.ticket"},
        {"requests": [{"citizen_id": ZHANG, "service": "rail.ticket"}, {"citizen_id": ZHANG, "service": "air.ticket"}]},
    ],
)
def test_a_provider_may_ask_only_about_its_own_services(api, body):
    """The railway's key asks about rail services; asking about an airline's is a 403 naming both, and no
    decision of the batch is made or logged (the refusal is whole)."""
    before = len(_audit_tail(api, 1000))
    r = api.post("/api/v1/decisions", json=body, headers=auth(api, "service"))
    assert r.status_code == 403, r.text
    assert "rail.ticket" in r.json()["error"] and "not air.ticket" in r.json()["error"]
    assert not [e for e in _audit_tail(api, 1000)[before:] if e["action"] == "decision"]
    ok = api.post(
        "/api/v1/decisions", json={"citizen_id": ZHANG, "service": "rail.ticket"}, headers=auth(api, "service")
    )
    assert ok.status_code == 200 and ok.json()["service"] == "rail.ticket"
