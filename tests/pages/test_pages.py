"""The pages over HTTP: disclosure respected, the citizen page shown only to its citizen and admins (and
audited), cookie login, objections and reviews through forms, the admin's diff, preview and scheduling."""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import yaml
from fastapi.testclient import TestClient

from socialcredit.api.app import create_app
from socialcredit.api.auth import COOKIE
from socialcredit.compiler import CST
from socialcredit.rulebook import RulebookSet, shipped_dir, shipped_layers
from socialcredit.store import Store

from .pages_society import HIDDEN_LIST, Society


@pytest.fixture(scope="module")
def client(store_copy: Path) -> Iterator[TestClient]:
    with TestClient(create_app(store_copy), follow_redirects=False) as c:
        yield c


def bearer(society: Society, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {society.tokens[who]}"}


def cookie(token: str) -> dict[str, str]:
    """The key as the browser sends it after the login form set it (the client itself keeps no cookies)."""
    return {"Cookie": f"{COOKIE}={token}"}


def name_of(client: TestClient, citizen_id: str) -> str:
    svc = client.app.state.service  # type: ignore[attr-defined]
    with svc.lock:
        rows = svc.store.con.execute("SELECT name FROM citizens WHERE citizen_id = ?", [citizen_id]).fetchall()
    return str(rows[0][0])


def audit_actions(client: TestClient, citizen_id: str) -> list[tuple[str, str]]:
    svc = client.app.state.service  # type: ignore[attr-defined]
    with svc.lock:
        return [(e["principal"], e["action"]) for e in svc.audit.entries(citizen_id=citizen_id, limit=10_000)]


def test_dashboard_shows_each_city_with_its_disclosure(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for city in ("Shenzhen", "Rongcheng"):
        assert city in r.text
    assert 'href="/blacklist/shenzhen"' in r.text and 'href="/station/shenzhen"' in r.text
    assert 'href="/blacklist/rongcheng"' not in r.text
    assert "publishes scores" in r.text and "Decisions by service" in r.text and "citizens on a blacklist<" in r.text
    assert "rail.ticket" in r.text
    assert not re.search(r"https?://", re.sub(r'xmlns="http://www.w3.org/2000/svg"', "", r.text)), "no external URL"


def test_register_shows_scores_only_where_the_city_publishes(client: TestClient, society: Society) -> None:
    published = client.get("/register", params={"q": society.rongcheng})
    assert published.status_code == 200
    assert name_of(client, society.rongcheng) in published.text
    assert re.search(r'class="num score">\d+<', published.text)
    assert "does not publish scores" not in published.text
    hidden = client.get("/register", params={"q": society.other})
    assert name_of(client, society.other) in hidden.text
    assert "Shenzhen does not publish scores" in hidden.text
    assert 'class="num score"' not in hidden.text
    by_name = client.get("/register", params={"q": name_of(client, society.other)})
    assert society.other[:6] in by_name.text and society.other[-4:] in by_name.text
    assert society.other not in by_name.text, "the register prints resident IDs masked"
    hostile = client.get("/register", params={"q": "<script>alert(1)</script>"})
    assert hostile.status_code == 200 and "<script>alert" not in hostile.text and "&lt;script&gt;" in hostile.text


def test_billboard_only_where_the_rulebook_publishes_one(client: TestClient, society: Society) -> None:
    board = client.get("/blacklist/shenzhen")
    assert board.status_code == 200
    assert name_of(client, society.shamed) in board.text
    assert "List of Dishonest Judgment Defaulters" in board.text
    assert "<svg" in board.text, "faces are drawn on the board"
    assert society.shamed not in board.text, "no full resident ID on a public board"
    refused = client.get("/blacklist/rongcheng")
    assert refused.status_code == 200 and "does not publish a blacklist billboard" in refused.text
    assert 'class="card"' not in refused.text
    assert client.get("/blacklist/atlantis").status_code == 404


def test_non_public_lists_never_appear_on_public_pages(client: TestClient, society: Society) -> None:
    assert society.hidden_only, "the scenario should put someone on the non-public list only"
    board = client.get("/blacklist/shenzhen").text
    feed = client.get("/station/shenzhen.json").json()
    label = "Jaywalkers shown on the screens"
    assert label not in board and all(label not in r for e in feed["entries"] for r in e["reasons"])
    for cid in society.hidden_only:
        name = name_of(client, cid)
        masked = f"{cid[:6]}********{cid[-4:]}"
        assert masked not in board and all(e["id"] != masked for e in feed["entries"]), f"{name} ({HIDDEN_LIST})"


def test_station_monitor_and_its_feed_follow_disclosure(client: TestClient, society: Society) -> None:
    page = client.get("/station/shenzhen", params={"every": 2})
    assert page.status_code == 200
    assert page.text.count('class="slide') >= 2 and 'class="slide current"' in page.text
    assert 'data-every="2.0"' in page.text and "/static/station.js" in page.text
    feed = client.get("/station/shenzhen.json")
    assert feed.status_code == 200 and feed.headers["cache-control"] == "no-store"
    data = feed.json()
    assert data["version"].startswith("shenzhen@2") and len(data["entries"]) >= 2
    assert {"id", "name", "name_latin", "reasons", "since", "avatar"} <= set(data["entries"][0])
    assert name_of(client, society.shamed) in {e["name"] for e in data["entries"]}
    assert "has no train-station monitor" in client.get("/station/rongcheng").text
    assert client.get("/station/rongcheng.json").status_code == 404


def test_station_monitor_titles_each_slide_by_its_own_lists(society: Society, tmp_path: Path) -> None:
    """The monitor once stood under one header, 失信被执行人 (judgment defaulters), whatever list its people
    were on, jaywalkers too: now each slide is titled by the labels of the public lists its person is on.
    Here Shenzhen's jaywalker screen is public again (shenzhen@3 is shenzhen@1 once more)."""
    copy = tmp_path / "lists.duckdb"
    shutil.copyfile(society.store, copy)
    layer = yaml.safe_load((shipped_dir() / "shenzhen@1.yaml").read_text(encoding="utf-8"))
    layer.update(version=3, effective_from=dt.date(2020, 1, 2))
    store = Store(copy)
    store.add_rulebook(yaml.safe_dump(layer, sort_keys=False, allow_unicode=True), "test")
    store.close()
    with TestClient(create_app(copy)) as c:
        feed = c.get("/station/shenzhen.json").json()
        page = c.get("/station/shenzhen").text
    assert feed["version"].startswith("shenzhen@3")
    rb = RulebookSet(shipped_layers()).resolve("shenzhen", None)
    assert rb is not None
    labels = {x.label for x in rb.lists if x.kind == "blacklist" and x.public}
    entries = feed["entries"]
    assert all(e["lists"] and set(e["lists"]) <= labels for e in entries)
    for e in entries:  # every reason is one of the person's lists: its label, then why
        assert {r.split(": ")[0] for r in e["reasons"]} == set(e["lists"]), e
    titles = {tuple(e["lists"]) for e in entries}
    assert ("Jaywalkers shown on the screens at crossings",) in titles and len(titles) >= 2, titles
    assert "失信被执行人" not in page, "the header names no one list"
    slides = re.findall(r'<p class="slide-list">(.*?)</p>', page)
    shown = [[html.unescape(t) for t in re.findall(r'<span class="list-label">(.*?)</span>', x)] for x in slides]
    assert shown == [e["lists"] for e in entries]


def test_a_fixed_clock_shows_the_boards_as_they_stood_then(society: Society, tmp_path: Path) -> None:
    copy = tmp_path / "clock.duckdb"
    shutil.copyfile(society.store, copy)
    with duckdb.connect(str(copy), read_only=True) as con:
        first = con.execute("SELECT min(start) FROM list_entries").fetchall()[0][0]
    before = first - dt.timedelta(hours=1)
    with TestClient(create_app(copy, as_of=before)) as c:
        shown = before.replace(tzinfo=dt.UTC).astimezone(CST)
        board = c.get("/blacklist/shenzhen").text
        assert f"Nobody in Shenzhen is on a public blacklist on {shown:%Y-%m-%d}" in board
        assert c.get("/station/shenzhen.json").json()["entries"] == []
        station = c.get("/station/shenzhen").text  # its clock is the service's, not the wall clock
        assert f'<span id="clock-day">{shown:%Y-%m-%d}</span>' in station
        assert f'<span id="clock">{shown:%H:%M}</span>' in station
        assert f"as of {shown:%Y-%m-%d %H:%M}" in c.get("/").text


def test_citizen_page_is_refused_to_the_public_and_to_other_keys(client: TestClient, society: Society) -> None:
    before = audit_actions(client, society.shamed)
    public = client.get(f"/citizens/{society.shamed}")
    assert public.status_code == 401 and 'action="/login"' in public.text
    assert f'value="/citizens/{society.shamed}"' in public.text, "the login form comes back to this page"
    other = client.get(f"/citizens/{society.shamed}", headers=bearer(society, "other"))
    assert other.status_code == 403 and "only their own record" in other.text
    service = client.get(f"/citizens/{society.shamed}", headers=bearer(society, "service"))
    assert service.status_code == 403
    wrong = client.get(f"/citizens/{society.shamed}", headers=cookie("sc_citizen_00000000_" + "x" * 40))
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    unknown = client.get("/citizens/110101199001011237", headers=bearer(society, "admin"))
    assert unknown.status_code == 404 and "No such citizen" in unknown.text
    assert client.get(f"/avatars/{society.shamed}.svg").status_code == 404
    assert client.get(f"/avatars/{society.shamed}.svg", headers=bearer(society, "other")).status_code == 404
    assert audit_actions(client, society.shamed) == before, "a refused view reads nothing"


def test_login_sets_a_strict_cookie_and_the_citizen_page_is_audited(client: TestClient, society: Society) -> None:
    forged = client.post("/login", data={"key": society.tokens["citizen"]}, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    bad = client.post("/login", data={"key": "nonsense", "next": "/"})
    assert bad.status_code == 401 and "unknown or revoked" in bad.text
    service = client.post("/login", data={"key": society.tokens["service"], "next": "/"})
    assert service.status_code == 403 and "use the HTTP API" in service.text and "set-cookie" not in service.headers
    r = client.post("/login", data={"key": society.tokens["citizen"], "next": "//evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == f"/citizens/{society.shamed}"
    set_cookie = r.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie and "Path=/" in set_cookie
    before = audit_actions(client, society.shamed)
    page = client.get(f"/citizens/{society.shamed}", headers=cookie(society.tokens["citizen"]))
    assert page.status_code == 200
    assert name_of(client, society.shamed) in page.text and society.shamed in page.text
    assert "the explanation chain" in page.text and "List of Dishonest Judgment Defaulters" in page.text
    assert "source:" in page.text, "every rule in the chain names its source"
    assert 'action="/citizens/' + society.shamed + '/objections"' in page.text
    avatar = client.get(f"/avatars/{society.shamed}.svg", headers=cookie(society.tokens["citizen"]))
    assert avatar.status_code == 200 and avatar.headers["content-type"].startswith("image/svg+xml")
    admin = client.get(f"/citizens/{society.shamed}", headers=bearer(society, "admin"))
    assert admin.status_code == 200 and 'action="/citizens/' + society.shamed + '/objections"' not in admin.text
    after = audit_actions(client, society.shamed)[len(before) :]
    assert after == [
        (f"citizen:{society.shamed}", "page.citizen"),
        (f"citizen:{society.shamed}", "page.avatar"),
        ("admin", "page.citizen"),
    ]
    out = client.get("/logout")
    assert out.status_code == 303 and COOKIE in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]


def test_repair_application_from_the_page(client: TestClient, society: Society) -> None:
    mine = cookie(society.tokens["citizen"])
    repair = {"list_id": "dishonest_judgment_defaulters", "reason": "The debt is paid."}
    r = client.post(f"/citizens/{society.shamed}/repairs", data=repair, headers=mine)
    assert r.status_code == 303
    assert "The debt is paid." in client.get(f"/citizens/{society.shamed}", headers=mine).text
    bad = client.post(f"/citizens/{society.shamed}/repairs", data={"list_id": "whitelist", "reason": "x"}, headers=mine)
    assert bad.status_code == 422 and "no stay on that blacklist" in bad.text


def test_objection_filed_on_the_page_then_upheld_by_a_reviewer(client: TestClient, society: Society) -> None:
    svc = client.app.state.service  # type: ignore[attr-defined]
    with svc.lock:
        agency, record_id = svc.store.con.execute(
            """SELECT r.agency, r.record_id FROM records r JOIN citizens c USING (ckey) WHERE c.citizen_id = ?
               AND r.rkey IN (SELECT rkey FROM ledger) ORDER BY r.rkey LIMIT 1""",
            [society.shamed],
        ).fetchall()[0]
    form = {"agency": agency, "record_id": record_id, "reason": "I was abroad that day."}
    mine = cookie(society.tokens["citizen"])
    stranger = client.post(f"/citizens/{society.shamed}/objections", data=form, headers=bearer(society, "other"))
    assert stranger.status_code == 403
    forged = client.post(f"/citizens/{society.shamed}/objections", data=form)
    assert forged.status_code == 401, "a post without the (SameSite=Strict) cookie is the public's"
    empty = client.post(f"/citizens/{society.shamed}/objections", data={**form, "reason": " "}, headers=mine)
    assert empty.status_code == 422 and "say why" in empty.text
    filed = client.post(f"/citizens/{society.shamed}/objections", data=form, headers=mine)
    assert filed.status_code == 303
    case_id = int(re.search(r"filed=(\d+)", filed.headers["location"]).group(1))  # type: ignore[union-attr]
    page = client.get(filed.headers["location"], headers=mine).text
    assert f"Case {case_id} filed" in page and "objection open" in page and "I was abroad that day." in page
    queue = client.get("/admin", headers=bearer(society, "admin"))
    assert queue.status_code == 200 and f'action="/admin/cases/{case_id}"' in queue.text
    assert client.post(f"/admin/cases/{case_id}", data={"decision": "uphold"}, headers=mine).status_code == 403
    done = client.post(
        f"/admin/cases/{case_id}",
        data={"decision": "uphold", "note": "checked travel records"},
        headers=bearer(society, "admin"),
    )
    assert done.status_code == 303 and done.headers["location"].startswith(f"/admin?reviewed={case_id}")
    again = client.post(f"/admin/cases/{case_id}", data={"decision": "reject"}, headers=bearer(society, "admin"))
    assert again.status_code == 422 and "already upheld" in again.text
    page = client.get(f"/citizens/{society.shamed}", headers=mine).text
    assert "upheld" in page and f"<code>{record_id}</code>" not in page, "the retracted record left the chain"
    actions = [a for _, a in audit_actions(client, society.shamed)]
    assert "page.objection" in actions and "page.case.review" in actions


def test_admin_page_is_for_admins_only(client: TestClient, society: Society) -> None:
    assert client.get("/admin").status_code == 401
    assert client.get("/admin", headers=bearer(society, "citizen")).status_code == 403
    assert client.post("/admin/preview", data={"text": "x"}, headers=bearer(society, "citizen")).status_code == 403
    assert client.post("/admin/rulebooks", data={"text": "x"}).status_code == 401
    page = client.get(
        "/admin",
        params={"a": "rongcheng@1+national@2", "b": "rongcheng@2+national@2"},
        headers=bearer(society, "admin"),
    )
    assert page.status_code == 200
    assert "scenario:shenzhen@1.yaml" in page.text and "policy:rongcheng=rongcheng@1" in page.text
    assert "rongcheng@1+national@2</code> → <code>rongcheng@2+national@2" in page.text
    diffed = page.text.split('id="diff"')[1].split('id="rulebooks"')[0]
    assert "publish_scores</code> true → false" in diffed
    assert "<code>rc.heroic_act</code>" not in diffed, "a rule with the same content is not shown as changed"


def selected(page: str, select_id: str) -> list[str]:
    """The options a <select> shows as chosen."""
    body = page.split(f'<select id="{select_id}"')[1].split("</select>")[0]
    return re.findall(r"<option selected>([^<]*)</option>", body)


def test_admin_dropdowns_show_the_versions_compared(client: TestClient, society: Society) -> None:
    """`/admin?a=…&b=…` once showed the diff of a and b under dropdowns set to other versions."""
    admin = bearer(society, "admin")
    short = client.get("/admin", params={"a": "rongcheng@1", "b": "rongcheng@2"}, headers=admin).text
    assert "rongcheng@1+national@2</code> → <code>rongcheng@2+national@2" in short
    assert selected(short, "a") == ["rongcheng@1+national@2"] and selected(short, "b") == ["rongcheng@2+national@2"]
    # the chain typed into an address bar: its `+` arrives as a space
    typed = client.get("/admin?a=shenzhen@1+guangdong@1+national@2&b=rongcheng@1+national@1", headers=admin).text
    assert "shenzhen@1+guangdong@1+national@2</code> → <code>rongcheng@1+national@1" in typed
    assert selected(typed, "a") == ["shenzhen@1+guangdong@1+national@2"]
    assert selected(typed, "b") == ["rongcheng@1+national@1"]
    plain = client.get("/admin", headers=admin).text
    assert selected(plain, "a") == [] and len(selected(plain, "b")) == 1, "no diff asked: the newest is offered"


def test_a_preview_after_the_clock_says_why_it_shows_nothing(client: TestClient, society: Society) -> None:
    """A version starting after the service's clock has no record to govern yet: all zeros, and the page
    says so and which date would show its rules at work; previewed with that date, they show."""
    admin = bearer(society, "admin")
    layer = yaml.safe_load((shipped_dir() / "shenzhen@1.yaml").read_text(encoding="utf-8"))
    for rule in layer["rules"]:
        if rule["id"] == "red_light_crossing":
            rule["points"] = -300
    today = dt.datetime.now(CST).date()
    layer.update(version=7, effective_from=today + dt.timedelta(days=10))
    later = client.post("/admin/preview", data={"text": yaml.safe_dump(layer, allow_unicode=True)}, headers=admin)
    assert later.status_code == 200, later.text
    text = re.sub(r"\s+", " ", html.unescape(later.text))
    starts = today + dt.timedelta(days=10)
    assert f"Every count is zero because shenzhen@7 starts on {starts}, after the service's clock" in text
    suggested = re.search(r"preview it with <code>effective_from: (\d{4}-\d\d-\d\d)</code>", text)
    assert suggested, text
    layer.update(effective_from=dt.date.fromisoformat(suggested.group(1)))
    earlier = client.post("/admin/preview", data={"text": yaml.safe_dump(layer, allow_unicode=True)}, headers=admin)
    assert earlier.status_code == 200 and 'class="note ahead"' not in earlier.text
    counts = re.findall(r'<td class="num" data-label="score changes">([\d,]+)</td>', earlier.text)
    assert counts and any(n != "0" for n in counts), "the suggested date shows the rules at work"


def test_preview_then_schedule_a_version_from_the_admin_page(client: TestClient, society: Society) -> None:
    admin = bearer(society, "admin")
    broken = client.post("/admin/preview", data={"text": "jurisdiction: shenzhen\nversion: [\n"}, headers=admin)
    assert broken.status_code == 422 and 'class="error"' in broken.text
    layer = yaml.safe_load((shipped_dir() / "shenzhen@1.yaml").read_text(encoding="utf-8"))
    tomorrow = dt.datetime.now(CST).date() + dt.timedelta(days=1)
    layer.update(version=3, effective_from=tomorrow)
    for rule in layer["rules"]:
        if rule["id"] == "red_light_crossing":
            rule["points"] = -200
    text = yaml.safe_dump(layer, sort_keys=False, allow_unicode=True)
    preview = client.post("/admin/preview", data={"text": text}, headers=admin)
    assert preview.status_code == 200
    assert "If shenzhen@3 takes effect on " + tomorrow.isoformat() in preview.text
    assert "Schedule shenzhen@3" in preview.text
    stored = client.get("/admin", headers=admin).text.split('id="rulebooks"')[1]
    assert "shenzhen@3" not in stored, "a preview stores nothing"
    scheduled = client.post("/admin/rulebooks", data={"text": text}, headers=admin)
    assert scheduled.status_code == 303 and scheduled.headers["location"].startswith("/admin?scheduled=shenzhen@3")
    listed = client.get("/admin", headers=admin).text.split('id="rulebooks"')[1]
    assert "page:admin" in listed
    twice = client.post("/admin/rulebooks", data={"text": text}, headers=admin)
    assert twice.status_code == 422 and "already in the store" in twice.text


def test_a_capped_entry_names_its_cap(make_store, make_citizens) -> None:  # type: ignore[no-untyped-def]
    """volunteer.cap allows +10 a year: the page says which cap left the third volunteering at +0."""
    from conftest import cst, rec
    from socialcredit.keys import create_key

    store = make_store()
    (a,) = make_citizens(store, 1)
    store.ingest(
        [rec(f"v{i}", a, "volunteer_work", cst(2021, 2 + i, 1), hours=1) for i in range(3)],
        now=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    )
    _, token = create_key(store, "admin")
    store.close()
    with TestClient(create_app(store.path, as_of=cst(2021, 12, 1)), follow_redirects=False) as c:
        page = c.get(f"/citizens/{a}", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200, page.text
    text = re.sub(r"\s+", " ", page.text)
    assert text.count("capped by") == 1
    assert "capped by <code>volunteer.cap</code> (at most +10 gained a year): +5 → +0" in text
    assert "hours = 1.0" not in text and "hours = 1" in text  # as the record said it
