"""`report --interactive`: the same figures as inline SVG with hover and zoom, everything in the one file.

What is checked: nothing is fetched (no http(s) src/href, no @import, one inline script and no script src), every
figure is an inline SVG with its hover marks, a mark's text is the value the figure's numbers table prints, and in
Chromium the page renders offline, hovering a bar shows its value and the wheel zooms (double-click restores).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from .report_page import read_page
from .report_run import invoke

FIGURES = ("scores", "grades", "lists", "time-on-list", "blacklist-exits", "memory", "decisions", "children",
           "disparity", "network")  # fmt: skip


@pytest.fixture(scope="module")
def interactive_html(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("interactive") / "report.html"
    invoke("report", str(run_dir), "--interactive", "--out", str(out))
    return out


def charts(text: str) -> dict[str, list[list[object]]]:
    found = re.findall(r"""<figure id="fig-([\w-]+)".*?<div class="chart" data-points='([^']*)'>""", text, re.S)
    return {fid: json.loads(html.unescape(points)) for fid, points in found}


def test_the_interactive_report_fetches_nothing(interactive_html: Path) -> None:
    text = interactive_html.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "the page must not load anything"
    assert "@import" not in text and not re.search(r"url\(\s*['\"]?(https?:)?//", text)
    assert text.count("<script") == 1 and not re.search(r"<script[^>]*\bsrc=", text)
    assert "<!--" not in text, "matplotlib's text comments are stripped: data never becomes markup"
    assert "<img" not in text


def test_every_figure_is_an_inline_svg_with_marks_to_hover(interactive_html: Path) -> None:
    text = interactive_html.read_text(encoding="utf-8")
    found = charts(text)
    assert set(found) == set(FIGURES)
    assert all(found[f] for f in FIGURES), "every figure has marks to hover"
    assert text.count("<svg ") == len(FIGURES)
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids)), "each figure's SVG ids are its own"


def test_a_hovered_bar_says_what_the_numbers_table_says(interactive_html: Path) -> None:
    marks = charts(interactive_html.read_text(encoding="utf-8"))["decisions"]
    table = read_page(interactive_html).tables[("decisions", 0)]
    said = {str(m[2]) for m in marks}
    for row in table:
        if row["outcome"] == "allow":
            assert f"{row['service']} · allow\n{row['month'][:7]}: {int(row['decisions']):,}" in said, row


@pytest.mark.browser
def test_the_interactive_report_renders_offline_with_hover_and_zoom(page, interactive_html: Path) -> None:  # type: ignore[no-untyped-def]
    outside: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: r.url.startswith(("file:", "data:")) or outside.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(interactive_html.as_uri())
    page.wait_for_load_state("load")
    assert outside == [] and errors == [] and page.console_errors == [] and page.failed_requests == []
    svg = page.locator("#fig-decisions .chart svg")
    svg.scroll_into_view_if_needed()
    box = svg.bounding_box()
    mark = page.eval_on_selector("#fig-decisions .chart", "c => JSON.parse(c.getAttribute('data-points'))[0]")
    scale = page.eval_on_selector(
        "#fig-decisions .chart svg", "s => s.getBoundingClientRect().width / s.viewBox.baseVal.width"
    )
    page.mouse.move(box["x"] + mark[0] * scale, box["y"] + mark[1] * scale)
    tip = page.locator(".tip")
    assert tip.is_visible() and tip.text_content() == mark[2]
    page.locator("#fig-decisions").screenshot(path=str(page.shots / "report-interactive-hover.png"))
    home = svg.get_attribute("viewBox")
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"() => document.querySelector('#fig-decisions svg').getAttribute('viewBox') !== '{home}'")
    zoomed = [float(v) for v in (svg.get_attribute("viewBox") or "").split()]
    assert zoomed[2] < [float(v) for v in (home or "").split()][2]
    svg.dblclick()
    assert svg.get_attribute("viewBox") == home
