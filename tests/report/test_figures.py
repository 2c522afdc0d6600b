"""The report's figures read as a data journalist reads them, checked on the matplotlib objects themselves.

Why not pixels: a picture comparison says that something changed, not what. These tests ask the figures the
questions a careful reader asks — does every bar start at zero, are counts ticked in whole numbers, does every
panel say what its marks are, are panels that compare cities (or lists) drawn on the same scale, do any labels
print over each other — of every figure of a report built from the session's test run.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from matplotlib.axes import Axes
from matplotlib.container import BarContainer

from socialcredit.report import society
from socialcredit.report.figures import COUNT_UNITS, Figure
from socialcredit.report.rundir import RunDir


@pytest.fixture(scope="module")
def figures(run_dir: Path) -> dict[str, Figure]:
    with RunDir.open(run_dir) as run:
        doc = society.build(run)
    return {f.id: f for s in doc.sections for f in s.figures}


@pytest.fixture(scope="module")
def comparison(run_dir: Path, replay_dir: Path) -> dict[str, Figure]:
    from socialcredit.report.compare import Pair, build

    pair = Pair.open(run_dir, replay_dir)
    try:
        doc = build(pair)
    finally:
        pair.close()
    return {f.id: f for s in doc.sections for f in s.figures}


def panels(figure: Figure) -> list[Axes]:
    assert figure.drawing is not None, figure.id
    return [ax for ax in figure.drawing.axes if ax.get_visible()]


def test_every_bar_starts_at_zero(figures: dict[str, Figure], comparison: dict[str, Figure]) -> None:
    checked = set()
    for figure in [*figures.values(), *comparison.values()]:
        for ax in panels(figure):
            drawn = [c for c in ax.containers if isinstance(c, BarContainer) and len(c)]
            for horizontal in (False, True):
                sizes = [
                    p.get_width() if horizontal else p.get_height()
                    for c in drawn
                    if (c.orientation == "horizontal") == horizontal
                    for p in c.patches
                ]
                if not sizes:
                    continue
                low, high = ax.get_xlim() if horizontal else ax.get_ylim()
                if min(sizes) >= 0:
                    assert low == 0, f"{figure.id} / {ax.get_title()}: bars start at {low}"
                else:  # bars either side of zero (more or fewer points): zero is on the axis
                    assert low <= min(sizes) and high >= 0, (figure.id, low, high)
                checked.add(figure.id)
    expected = {"lists", "blacklist-exits", "memory", "decisions", "children", "list-changes", "decision-changes"}
    assert expected <= checked
    mean_score = next(ax for ax in panels(figures["memory"]) if ax.get_title() == "mean score")
    assert mean_score.get_ylim()[0] == 0


def test_count_axes_are_ticked_in_whole_numbers(figures: dict[str, Figure], comparison: dict[str, Figure]) -> None:
    found = set()
    for figure in [*figures.values(), *comparison.values()]:
        for ax in panels(figure):
            for axis, (low, high) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
                label = axis.get_label_text()
                if not label or label.split()[0] not in COUNT_UNITS:
                    continue
                ticks = [t for t in axis.get_majorticklocs() if min(low, high) <= t <= max(low, high)]
                assert ticks and all(float(t).is_integer() for t in ticks), (figure.id, label, ticks)
                found.add(figure.id)
    assert {"lists", "blacklist-exits", "decisions", "children", "network", "list-changes", "over-time"} <= found


def test_every_panel_says_what_its_marks_are(figures: dict[str, Figure], comparison: dict[str, Figure]) -> None:
    for figure in [*figures.values(), *comparison.values()]:
        for ax in panels(figure):
            if ax.has_data() and not ax.get_images():  # a matrix of counts prints its numbers in its cells
                legend = ax.get_legend()
                assert legend is not None and legend.get_texts(), f"{figure.id} / {ax.get_title()}: no legend"


def shares(axes: list[Axes], which: str) -> bool:
    group = axes[0].get_shared_x_axes() if which == "x" else axes[0].get_shared_y_axes()
    return len(axes) > 1 and all(group.joined(axes[0], ax) for ax in axes[1:])


def test_panels_that_compare_cities_or_lists_share_their_scales(figures: dict[str, Figure]) -> None:
    assert shares(panels(figures["scores"]), "x") and shares(panels(figures["scores"]), "y")
    assert shares(panels(figures["grades"]), "x") and shares(panels(figures["grades"]), "y")
    assert shares(panels(figures["time-on-list"]), "x") and shares(panels(figures["time-on-list"]), "y")
    assert shares(panels(figures["disparity"]), "x")
    begun, ended = panels(figures["lists"])[1:3]
    assert shares([begun, ended], "y")


def overlapping(boxes: list[tuple[str, object]]) -> list[tuple[str, str]]:
    found = []
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        if box_a.overlaps(box_b):  # type: ignore[attr-defined]
            found.append((a, b))
    return found


def test_no_labels_print_over_each_other(figures: dict[str, Figure], comparison: dict[str, Figure]) -> None:
    for figure in [*figures.values(), *comparison.values()]:
        assert figure.drawing is not None
        figure.drawing.canvas.draw()
        renderer = figure.drawing.canvas.get_renderer()  # type: ignore[attr-defined]
        titles = []
        for ax in panels(figure):
            for axis in (ax.xaxis, ax.yaxis):
                labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
                boxes = [(t.get_text(), t.get_window_extent(renderer).shrunk(0.98, 0.98)) for t in labels]
                assert not overlapping(boxes), (figure.id, ax.get_title(), overlapping(boxes))
            if ax.get_title():
                titles.append((ax.get_title(), ax.title.get_window_extent(renderer)))
        assert not overlapping(titles), (figure.id, overlapping(titles))


def test_time_on_a_list_marks_each_censored_stay(figures: dict[str, Figure]) -> None:
    """Survival curves, not histograms: each list's panel has a tick mark at every length where a stay was still
    running at the run's end, on the curve, and the curve is a step function from 1 down."""
    figure = figures["time-on-list"]
    curves = figure.queries[0].rows
    shown = {ax.get_title().split(" ")[0]: ax for ax in panels(figure)}  # a panel's title starts with its list
    assert set(shown) == {r["list_id"] for r in curves}
    for list_id, ax in shown.items():
        mine = [r for r in curves if r["list_id"] == list_id]
        ticks = next(line for line in ax.get_lines() if line.get_marker() == "|")
        assert list(ticks.get_xdata()) == [r["days"] for r in mine if r["censored"]]
        assert list(ticks.get_ydata()) == [r["still_on"] for r in mine if r["censored"]]
        step = next(line for line in ax.get_lines() if line.get_drawstyle() == "steps-post")
        assert step.get_ydata()[0] == 1.0 and list(step.get_ydata()[1:]) == [r["still_on"] for r in mine]
    assert any(r["censored"] for r in curves) and any(r["ended"] for r in curves)


def test_the_numbers_are_never_cut(tmp_path: Path) -> None:
    """A numbers table is printed whole, in a box that only scrolls sideways; past MAX_ROWS rows the page prints
    the first ones and links every row as CSV inside the file itself."""
    import base64
    import csv
    import io

    import pyarrow as pa

    from socialcredit.report.figures import Section
    from socialcredit.report.html import MAX_ROWS, Document, render
    from socialcredit.report.rundir import Query

    rows = MAX_ROWS + 5
    q = Query("many rows", "SELECT 1", pa.table({"n": list(range(rows)), "word": [f"w{i}" for i in range(rows)]}))
    figure = Figure("many", "Many", "a caption", b"\x89PNG", [q])
    doc = Document("t", "l", [], [Section("s", "S", "i", [figure])], "", "", "", "")
    text = render(doc)
    assert "max-height" not in text
    link = re.search(r'<a download="many-0.csv" href="data:text/csv;charset=utf-8;base64,([^"]+)">', text)
    assert link, "a cut table links all its rows"
    got = list(csv.reader(io.StringIO(base64.b64decode(link.group(1)).decode())))
    assert got[0] == ["n", "word"] and len(got) == rows + 1 and got[-1] == [str(rows - 1), f"w{rows - 1}"]


def test_a_partitions_report_says_which_district_it_covers(run_dir: Path, tmp_path: Path) -> None:
    """A partitioned run's partitions are districts of a city (their scenario.yaml says `district:`); a report
    of one must say it covers that district alone, since its rates are not the city's."""
    import shutil

    import yaml

    shutil.copytree(run_dir, tmp_path / "run")
    scenario = yaml.safe_load((tmp_path / "run" / "scenario.yaml").read_text(encoding="utf-8"))
    with RunDir.open(tmp_path / "run") as run:
        assert "district" not in dict(society.facts(run)[1])
    scenario["district"] = {"index": 1, "of": 3}
    (tmp_path / "run" / "scenario.yaml").write_text(yaml.safe_dump(scenario), encoding="utf-8")
    with RunDir.open(tmp_path / "run") as run:
        said = dict(society.facts(run)[1])["district"]
    assert said.startswith("2 of 3 of ") and "that district alone" in said
