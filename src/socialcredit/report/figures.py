"""A figure: the queries that produced its numbers, a matplotlib plot of them and a caption.

Why this shape: a reader must be able to check every number. So a figure never computes a number in
Python that it shows — it keeps the exact SQL (and its answer) that the plot draws from, and the report
prints both under the picture. Plots are drawn on `matplotlib.figure.Figure` objects with the Agg
canvas, never through pyplot's global state, so building a report is safe to repeat in one process.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator

from socialcredit.report.rundir import Query

PALETTE = ("#1b4f72", "#c0392b", "#27ae60", "#d68910", "#7d3c98", "#566573", "#17a589", "#a04000", "#2e86c1")
OUTCOME_COLOURS = {
    "allow": "#7fb3d5",
    "deny": "#c0392b",
    "throttle": "#e67e22",
    "deprioritise": "#f5b041",
    "publish": "#884ea0",
    "priority": "#27ae60",
    "discount": "#52be80",
    "waive_deposit": "#a9dfbf",
}


@dataclass
class Figure:
    """One figure of a report: picture, caption, and the queries behind its numbers (first = the main one)."""

    id: str
    title: str
    caption: str
    png: bytes
    queries: list[Query]
    limits: list[str] = field(default_factory=list)  # what the figure cannot show yet, and why
    drawing: MplFigure | None = field(default=None, repr=False, compare=False)  # kept for tests and the SVG

    @property
    def main(self) -> Query:
        return self.queries[0]


@dataclass
class Section:
    """A group of figures under one heading (one screenshot each in the tests)."""

    id: str
    title: str
    intro: str
    figures: list[Figure]


def canvas(width: float = 10.0, height: float = 4.0) -> MplFigure:
    fig = MplFigure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png(fig: MplFigure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def grid(fig: MplFigure, n: int, cols: int = 3, sharey: bool = False, sharex: bool = False) -> list[Axes]:
    """`n` small multiples, row-major; spare cells are hidden. Panels that compare like with like (cities,
    lists) share their axes, so equal heights mean equal numbers across panels."""
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    axes = fig.subplots(rows, cols, squeeze=False, sharey=sharey, sharex=sharex)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return flat[:n]


def empty_note(ax: Axes, text: str) -> None:
    """Say in the picture itself that a panel has nothing to draw, rather than leave an empty frame."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10, color="#566573")
    ax.set_xticks([])
    ax.set_yticks([])


def pick(rows: Sequence[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def distinct(rows: Sequence[dict[str, Any]], key: str) -> list[Any]:
    return list(dict.fromkeys(r[key] for r in rows))


def headroom(ax: Axes, totals: Sequence[float], horizontal: bool = False) -> None:
    """Room above stacked bars (and their legend): each layer's base is a sticky edge autoscaling stops at."""
    top = max([1.0, *totals]) * 1.25
    if horizontal:
        ax.set_xlim(0, top)
    else:
        ax.set_ylim(0, top)


# Axis labels that name a count: such an axis gets whole-number ticks only (a test reads them off every figure).
COUNT_UNITS = ("citizens", "stays", "decisions", "children", "people", "ties", "attempts")


def counts(ax: Axes, label: str, axis: str = "y") -> None:
    """Label a count axis (its first word is the unit counted) and tick it at whole numbers only."""
    assert label.split()[0] in COUNT_UNITS, label
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(MaxNLocator(integer=True))
    target.set_label_text(label, fontsize=8)


def legend(ax: Axes, **kw: Any) -> None:
    """Every panel carries its own legend (a panel cut out of the picture must still say what its marks are)."""
    kw.setdefault("fontsize", 7)
    kw.setdefault("framealpha", 0.9)
    ax.legend(**kw)


def month_ticks(ax: Axes, labels: Sequence[str]) -> None:
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45 if len(labels) > 8 else 0, fontsize=8)


__all__ = [
    "OUTCOME_COLOURS",
    "PALETTE",
    "Figure",
    "Section",
    "canvas",
    "counts",
    "distinct",
    "grid",
    "headroom",
    "legend",
    "month_ticks",
    "pick",
    "png",
]
