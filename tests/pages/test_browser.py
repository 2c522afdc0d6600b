"""The pages in Debian's Chromium against a real server: content, no failed request, no console error
(the pages' Content-Security-Policy turns any external or inline asset into one), a rotating station
monitor that re-reads its feed, the login form, and the README's screenshots."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest

from socialcredit.compiler import CST

from .browsing import clean, shot, sign_in
from .conftest import serving
from .pages_society import Society

pytestmark = pytest.mark.browser


def test_dashboard(page, server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(server + "/")
    assert page.locator("h1").first.inner_text().startswith("Dashboard")
    assert page.locator("section.city").count() == 2
    assert "Shenzhen" in page.locator("#city-shenzhen h2").inner_text()
    assert page.locator("#city-shenzhen svg.bar").count() >= 3
    assert page.locator("link[rel=stylesheet]").evaluate("l => l.sheet.cssRules.length") > 50
    shot(page, "dashboard", full=True)
    clean(page)


def test_register(page, server: str, society: Society) -> None:  # type: ignore[no-untyped-def]
    page.goto(server + "/register")
    page.fill("#q", society.rongcheng)
    with page.expect_navigation():
        page.press("#q", "Enter")
    assert page.locator("td.score").count() == 1
    page.fill("#q", "Wang")
    with page.expect_navigation():
        page.press("#q", "Enter")
    assert page.locator("table.register tbody tr").count() >= 2
    shot(page, "register")
    clean(page)


def test_billboard(page, server: str, society: Society) -> None:  # type: ignore[no-untyped-def]
    page.goto(server + "/blacklist/shenzhen")
    assert page.locator(".billboard-zh").inner_text() == "失信人员曝光台"
    cards = page.locator("li.card")
    assert cards.count() >= 2
    assert page.locator("li.card .face svg").count() == cards.count()
    assert "List of Dishonest Judgment Defaulters" in cards.first.inner_text()
    names = page.locator("li.card .name .zh").all_inner_texts()
    assert len(set(names)) >= 2
    shot(page, "billboard")
    clean(page)


def test_station_monitor_rotates_and_refreshes(page, server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(server + "/station/shenzhen?every=1&refresh=2")
    current = ".slide.current .name .zh"
    first = page.locator(current).inner_text()
    assert first and page.locator(".slide.current").count() == 1
    page.wait_for_function(
        "first => document.querySelector('.slide.current .name .zh').textContent !== first", arg=first, timeout=8000
    )
    assert page.locator("#pos").inner_text() != "1" or page.locator(current).inner_text() != first
    with page.expect_response(lambda r: r.url.endswith("/station/shenzhen.json") and r.ok, timeout=8000):
        pass
    page.wait_for_timeout(300)
    assert page.locator(".slide.current").count() == 1, "after a refresh one person is shown"
    assert int(page.locator("#total").inner_text()) == page.locator(".slide").count() >= 2
    shot(page, "station")
    clean(page)


def test_station_monitor_clock_is_the_service_clock(page, society: Society, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A monitor of a world served as it stood at a fixed time shows that time, after its feed refreshes
    too (its script once ticked the wall clock while its data stayed as of the service's clock)."""
    copy = tmp_path / "clock.duckdb"
    shutil.copyfile(society.store, copy)
    with duckdb.connect(str(copy), read_only=True) as con:
        first = con.execute("SELECT min(start) FROM list_entries").fetchall()[0][0]
    as_of = first.replace(second=0, microsecond=0) + dt.timedelta(days=1, minutes=17)
    shown = as_of.replace(tzinfo=dt.UTC).astimezone(CST)
    with serving(copy, as_of=as_of) as base:
        page.goto(base + "/station/shenzhen?refresh=2")
        with page.expect_response(lambda r: r.url.endswith("/station/shenzhen.json") and r.ok, timeout=8000):
            pass
        page.wait_for_timeout(300)
        assert page.locator("#clock").inner_text() == f"{shown:%H:%M}"
        assert page.locator("#clock-day").inner_text() == f"{shown:%Y-%m-%d}"
        clean(page)


def test_citizen_page_after_login_and_an_objection(page, server: str, society: Society) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, server, society.tokens["citizen"], f"/citizens/{society.shamed}")
    assert page.url.endswith(f"/citizens/{society.shamed}")
    assert society.shamed in page.locator(".identity").inner_text()
    assert page.locator(".score-value").inner_text().strip().lstrip("-").isdigit()
    assert page.locator("table.ledger tbody tr").count() >= 1
    assert "List of Dishonest Judgment Defaulters" in page.locator("main").inner_text()
    assert page.locator("img.portrait").evaluate("img => img.complete && img.naturalWidth > 0")
    page.locator("table.ledger details.object summary").first.click()
    page.locator("details.object[open] textarea").fill("I was not there: the record names the wrong person.")
    with page.expect_navigation():
        page.locator("details.object[open] button[type=submit]").click()
    assert "filed" in page.locator("p.ok").inner_text()
    assert "I was not there" in page.locator("#cases").inner_text()
    shot(page, "citizen", full=True)
    clean(page)


def test_admin_page_shows_the_queue_and_a_diff(page, server: str, society: Society) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, server, society.tokens["admin"], "/admin")
    assert page.url.endswith("/admin")
    assert "I was not there" in page.locator("#cases").inner_text(), "the objection filed on the citizen page"
    page.select_option("#a", "rongcheng@1+national@2")
    page.select_option("#b", "rongcheng@2+national@2")
    with page.expect_navigation():
        page.click("#diff button[type=submit]")
    assert "publish_scores" in page.locator("#diff").inner_text()
    assert page.locator("#a").input_value() == "rongcheng@1+national@2", "the dropdowns show what was compared"
    assert page.locator("#b").input_value() == "rongcheng@2+national@2"
    shot(page, "admin", full=True)
    clean(page)


def test_api_docs_render_from_the_app_alone(page, server: str) -> None:  # type: ignore[no-untyped-def]
    """Swagger UI at /docs, every asset served by the app: no request leaves the service."""
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    page.goto(server + "/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() >= 20
    assert [u for u in asked if not u.startswith(server)] == []
    clean(page)
