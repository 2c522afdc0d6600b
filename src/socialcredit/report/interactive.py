"""The interactive report's charts: each figure's own matplotlib drawing as inline SVG, plus the points to hover.

Why not a charting library: plotly would mean drawing every figure twice (once for the PNG, once for the
browser), so the two reports could disagree, and inlining plotly.js adds ~3.5 MB to every file. Here the
picture is the same drawing the static report shows, rendered as SVG (text as paths, so no font is fetched),
and the interaction is a ~60-line inline script (`templates/_interactive.js`): hover shows the value under
the pointer, the wheel or the +/− buttons zoom, dragging pans, double-click resets. The points to hover are
read off the drawn artists (bar tops, line vertices, scatter points) in the SVG's own coordinates, with the
category or month their tick labels give, so every figure gets hover without code of its own.

Limit: zoom magnifies the vector drawing (crisp at any scale); it does not re-scale an axis to the data.
"""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D

Point = tuple[float, float, str]  # x, y in SVG user units (pt), and what the reader is told there

_NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
HOVER = "_socialcredit_hover"  # an artist may carry one text per point, said on hover instead of the value


def hover(artist: Artist, texts: list[str]) -> None:
    """Tell the interactive report what to say at each point of `artist` (e.g. a ratio with its interval)."""
    setattr(artist, HOVER, texts)


def hover_at(ax: Axes, x: float, y: float, text: str) -> None:
    """A mark to hover where no point is drawn (a band of a stack, a ridge): `text` at data position (x, y)."""
    marks = getattr(ax, HOVER, [])
    marks.append((x, y, text))
    setattr(ax, HOVER, marks)


def svg(fig: MplFigure, prefix: str) -> str:
    """The figure as an `<svg>` element to inline: no XML prolog, no comments (matplotlib writes each text as a
    comment, and data must never become markup), and every id prefixed so several figures share one page."""
    buf = io.StringIO()
    with mpl.rc_context({"svg.fonttype": "path"}):  # glyphs as paths: no font to fetch, no text to interpret
        fig.savefig(buf, format="svg", metadata=_NO_METADATA)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", text)
    text = re.sub(r'xlink:href="#([^"]+)"', rf'xlink:href="#{prefix}-\1"', text)
    return text.replace("<svg ", '<svg role="img" ', 1)


def _number(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.4g}"


def _tick_name(ax: Axes, axis: str, value: float) -> str | None:
    """The tick label printed at `value` on a categorical axis (months, groups, lists), if there is one."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    for loc, label in zip(target.get_majorticklocs(), target.get_ticklabels(), strict=False):
        if abs(loc - value) < 0.5 and label.get_text() and not _looks_numeric(label.get_text()):
            return label.get_text().replace("\n", " ")
    return None


def _looks_numeric(text: str) -> bool:
    try:
        float(text.replace(",", "").replace("\N{MINUS SIGN}", "-"))
    except ValueError:
        return False
    return True


def _where(ax: Axes, x: float, y: float) -> str:
    """How a data position reads: the category or month at x (or y), else the number, with the axis label."""
    xs = _tick_name(ax, "x", x)
    ys = _tick_name(ax, "y", y)
    if ys is not None and xs is None:  # horizontal: categories down the side, the value along
        return f"{ys}: {_number(x)}"
    xlabel = ax.get_xlabel().split(" (")[0]
    return f"{xs if xs is not None else (xlabel + ' ' if xlabel else '') + _number(x)}: {_number(y)}"


def points(fig: MplFigure, drawn: bool = False) -> list[Point]:
    """Every hoverable mark of a figure, in SVG coordinates (pt from the top left); `drawn` says the layout
    is already done (the SVG was just saved), so it need not be drawn once more."""
    if not drawn:
        fig.canvas.draw()
    height = fig.bbox.height
    scale = 72.0 / fig.dpi
    found: list[Point] = []

    def add(ax: Axes, x: float, y: float, series: str, text: str) -> None:
        px, py = ax.transData.transform((x, y))
        if ax.bbox.x0 - 1 <= px <= ax.bbox.x1 + 1 and ax.bbox.y0 - 1 <= py <= ax.bbox.y1 + 1:
            title = ax.get_title().split("\n")[0]
            head = " · ".join(s for s in (title, series) if s and not s.startswith("_"))
            found.append((round(px * scale, 1), round((height - py) * scale, 1), f"{head}\n{text}" if head else text))

    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for container in ax.containers:
            if not isinstance(container, BarContainer):
                continue
            horizontal = container.orientation == "horizontal"
            for patch in container.patches:
                x, y, w, h = patch.get_x(), patch.get_y(), patch.get_width(), patch.get_height()
                series = str(container.get_label() or patch.get_label())
                if (w if horizontal else h) == 0:
                    continue  # an empty layer of a stack: nothing to point at
                if horizontal:
                    add(ax, x + w, y + h / 2, series, _where(ax, w, y + h / 2))
                else:
                    add(ax, x + w / 2, y + h, series, _where(ax, x + w / 2, h))
        named: dict[int, str] = {}
        for container in ax.containers:
            if isinstance(container, ErrorbarContainer) and container.lines[0] is not None:
                named[id(container.lines[0])] = str(container.get_label())
        for line in ax.get_lines():
            if line.get_transform() != ax.transData or not isinstance(line, Line2D):
                continue  # reference lines drawn in axes coordinates (axvline, axhline)
            said = getattr(line, HOVER, None)
            series = named.get(id(line), str(line.get_label()))
            xs, ys = np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)
            for k, (x, y) in enumerate(zip(xs.tolist(), ys.tolist(), strict=False)):
                text = said[k] if said is not None and k < len(said) else _where(ax, x, y)
                add(ax, x, y, series, text)
        for x, y, text in getattr(ax, HOVER, []):
            add(ax, x, y, "", text)
        for coll in ax.collections:
            if isinstance(coll, PathCollection):
                for x, y in np.asarray(coll.get_offsets(), dtype=float).tolist():
                    add(ax, x, y, str(coll.get_label()), _where(ax, x, y))
    return found


def chart(fig: MplFigure, prefix: str) -> dict[str, Any]:
    """What the interactive template needs of one figure."""
    picture = svg(fig, prefix)  # lays the figure out, so the marks can be read without drawing it again
    return {"svg": picture, "points": [[x, y, t] for x, y, t in points(fig, drawn=True)]}


__all__ = ["HOVER", "chart", "hover", "hover_at", "points", "svg"]
