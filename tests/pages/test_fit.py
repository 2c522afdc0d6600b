"""Every page fits its screen, on a phone (390×844) and on a desktop (1280×800): the document is no wider
than the viewport and every drawn element lies inside it sideways (or inside something that scrolls or
clips it on purpose), the key parts of each page by name. Once, at 390 px the citizen's score box sat at
x=510, the station monitor was 778 px wide, the admin's Uphold/Reject buttons were off-screen and the
register's rows ran past the edge."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .browsing import PHONE, clean, outside, shot, sign_in
from .pages_society import Society

pytestmark = pytest.mark.browser

SIZES = {"phone": PHONE, "desktop": {"width": 1280, "height": 800}}


@pytest.fixture(scope="module")
def phone_shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the phone-size screenshots go, to look at when a test fails: never docs/ (the README shows none)."""
    return tmp_path_factory.mktemp("phone")


@pytest.fixture(params=list(SIZES))
def sized(request, browser, phone_shots: Path) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """A fresh page at one screen size, recording failed requests and console errors as `page` does."""
    context = browser.new_context(viewport=SIZES[request.param])
    pg = context.new_page()
    pg.size = request.param  # type: ignore[attr-defined]
    pg.shots = phone_shots  # type: ignore[attr-defined]
    pg.failed_requests = []  # type: ignore[attr-defined]
    pg.console_errors = []  # type: ignore[attr-defined]
    pg.on("requestfailed", lambda r: pg.failed_requests.append(r.url))  # type: ignore[attr-defined]
    pg.on("response", lambda r: r.status >= 400 and pg.failed_requests.append(f"{r.status} {r.url}"))  # type: ignore[attr-defined]
    pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))  # type: ignore[attr-defined]
    yield pg
    context.close()


def fits(page, name: str, *selectors: str) -> None:  # type: ignore[no-untyped-def]
    if page.size == "phone":
        shot(page, f"phone-{name}", full=True)
    problems = outside(page, *selectors)
    assert problems == [], "\n".join(problems)
    clean(page)


def test_dashboard_fits(sized, server: str) -> None:  # type: ignore[no-untyped-def]
    sized.goto(server + "/")
    fits(sized, "dashboard", "section.city", ".tile", "section.city table")


def test_register_fits(sized, server: str) -> None:  # type: ignore[no-untyped-def]
    sized.goto(server + "/register?q=Wang")
    assert sized.locator("table.register tbody tr").count() >= 2
    fits(sized, "register", "#q", ".search button", "table.register tbody tr", "table.register td")


def test_billboard_fits(sized, server: str) -> None:  # type: ignore[no-untyped-def]
    sized.goto(server + "/blacklist/shenzhen")
    fits(sized, "billboard", ".billboard-head", ".billboard-zh", "li.card")


def test_station_monitor_fits(sized, server: str) -> None:  # type: ignore[no-untyped-def]
    sized.goto(server + "/station/shenzhen?every=60")
    fits(
        sized,
        "station",
        ".monitor",
        ".monitor-head",
        ".monitor-clock",
        ".slide.current",
        ".slide.current .name",
        ".slide.current .reasons",
        ".monitor-foot",
    )


def test_citizen_page_fits(sized, server: str, society: Society) -> None:  # type: ignore[no-untyped-def]
    sign_in(sized, server, society.tokens["citizen"], f"/citizens/{society.shamed}")
    sized.locator("table.ledger details.object summary").first.click()  # an open objection form fits too
    fits(
        sized,
        "citizen",
        ".identity",
        ".portrait",
        ".scorebox",
        ".score-value",
        "table.ledger tbody tr",
        "details.object[open] textarea",
        "details.object[open] button",
    )


@pytest.fixture(scope="module")
def open_case(browser, server: str, society: Society) -> None:  # type: ignore[no-untyped-def]
    """One objection waiting for review, filed once for the module on the citizen page."""
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, server, society.tokens["citizen"], f"/citizens/{society.shamed}")
    page.locator("details.object summary").first.click()
    page.locator("details.object[open] textarea").fill("Not me: the record names another person.")
    with page.expect_navigation():
        page.locator("details.object[open] button[type=submit]").click()
    assert "filed" in page.locator("p.ok").inner_text()
    context.close()


def test_admin_page_fits(sized, server: str, society: Society, open_case: None) -> None:  # type: ignore[no-untyped-def]
    diff = "a=shenzhen@1%2Bguangdong@1%2Bnational@2&b=rongcheng@2%2Bnational@2"
    sign_in(sized, server, society.tokens["admin"], f"/admin?{diff}")
    assert sized.locator("#cases button[value=uphold]").count() >= 1
    fits(
        sized,
        "admin",
        "#cases button[value=uphold]",
        "#cases button[value=reject]",
        "#cases input[name=note]",
        "#a",
        "#b",
        "#diff button",
        "#text",
        "#diff table.diff tr",
        "#diff ul.diff li",
        "#rulebooks table",
    )
