"""Issue #18's surviving API mutant: another citizen's key is refused on every route about a citizen."""

from __future__ import annotations

import pytest
import test_api
from test_api import ZHANG, auth

base, api = test_api.base, test_api.api  # the scored sample store with a key per role, and a client over a copy

# every /citizens/{id}/* route, with a body that would be valid for ZHANG's own key
ROUTES = [
    ("GET", "standing", None),
    ("GET", "explanation", None),
    ("GET", "history", None),
    ("GET", "notifications", None),
    ("GET", "cases", None),
    ("POST", "objections", {"agency": "commercial_banks", "record_id": "sample-001", "reason": "I paid in full"}),
    ("POST", "repairs", {"list_id": "dishonest_judgment_defaulters", "reason": "debt settled"}),
]


@pytest.mark.parametrize(("method", "route", "body"), ROUTES, ids=[r for _, r, _ in ROUTES])
def test_another_citizen_s_key_is_refused_on_every_citizen_route(api, method, route, body):
    path = f"/api/v1/citizens/{ZHANG}/{route}"
    r = api.request(method, path, json=body, headers=auth(api, "other_citizen"))  # CHEN's key
    assert r.status_code == 403, (path, r.status_code, r.text)
    assert "error" in r.json()
    # ZHANG's own key gets through the same request
    own = api.request(method, path, json=body, headers=auth(api, "citizen"))
    assert own.status_code in (200, 201), (path, own.status_code, own.text)


def test_another_citizen_s_key_is_refused_on_the_citizen_page(api):
    page = f"/citizens/{ZHANG}"
    by_header = api.get(page, headers=auth(api, "other_citizen"))
    assert by_header.status_code == 403 and "Not your record" in by_header.text
    api.cookies.set("sc_key", api.tokens["other_citizen"])
    try:
        by_cookie = api.get(page)
        assert by_cookie.status_code == 403 and "Not your record" in by_cookie.text
        api.cookies.set("sc_key", api.tokens["citizen"])
        assert api.get(page).status_code == 200
    finally:
        api.cookies.clear()


def test_refusals_say_why(api):
    """What each refusal says (mutation survivors in api/auth.py changed only the words): the caller learns
    which rule refused them — own record only, a key of which role, an unknown key."""
    r = api.get(f"/api/v1/citizens/{ZHANG}/standing", headers=auth(api, "other_citizen"))
    assert (r.status_code, r.json()["error"]) == (403, "a citizen may see only their own record")
    r = api.get("/api/v1/cases")
    assert r.status_code == 401 and r.json()["error"].startswith("this needs an API key of role admin")
    r = api.get("/api/v1/cases", headers=auth(api, "citizen"))
    assert r.status_code == 403 and r.json()["error"].startswith("role citizen may not do this (needs admin")
    r = api.get("/api/v1/cases", headers={"Authorization": "Bearer not-a-key"})
    assert (r.status_code, r.json()["error"]) == (401, "unknown or revoked API key")
    # the scheme is case-insensitive, and the key is the part after it
    r = api.get(f"/api/v1/citizens/{ZHANG}/standing", headers={"Authorization": f"bearer  {api.tokens['citizen']}"})
    assert r.status_code == 200, r.text


def test_the_api_reads_the_key_from_the_login_cookie_without_a_header(api):
    """The pages' login sets the `sc_key` cookie; an API call carrying only it is that key's caller."""
    path = f"/api/v1/citizens/{ZHANG}/standing"
    assert api.get(path).status_code == 401  # no header, no cookie: the public
    api.cookies.set("sc_key", api.tokens["citizen"])
    try:
        assert api.get(path).status_code == 200
        api.cookies.set("sc_key", api.tokens["other_citizen"])
        r = api.get(path)
        assert (r.status_code, r.json()["error"]) == (403, "a citizen may see only their own record")
    finally:
        api.cookies.clear()


def test_a_refusal_names_every_role_the_route_admits(api):
    r = api.get(f"/api/v1/citizens/{ZHANG}/standing", headers=auth(api, "service"))
    assert (r.status_code, r.json()["error"]) == (403, "role service may not do this (needs citizen or admin)")
