"""Answers as tables: Arrow, pandas and polars, and HTML for Jupyter.

Why: an analyst holds a `Standing`, an explanation, a `Decision`, a `RunSummary`, a `Store` or a
`RulebookSet` in a notebook and wants to see it (`_repr_html_`) and to compute with it (`to_arrow()`,
`to_pandas()`, `to_polars()`). Arrow is a runtime dependency already; pandas and polars are optional
extras (`pip install 'socialcredit[pandas]'`, `[polars]`), and asking for one that is missing says
which extra to install instead of failing somewhere deep inside.

Every value shown in HTML is escaped (a name such as `<script>` or `[/]王` is data, never markup); times are
shown in China Standard Time. Times go to Arrow as UTC-zoned timestamps (the stored instant, never a naive
time a reader could take for local).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import html
import importlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

CST = dt.timezone(dt.timedelta(hours=8))
EXTRAS = {"pandas": "pandas", "polars": "polars"}
MAX_ROWS = 50  # rows an HTML table shows; the caption gives the total


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def require(module: str) -> Any:
    """Import an optional dependency, or say which extra of socialcredit installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS.get(module, module)
        raise MissingExtra(f"{module} is not installed; install it with pip install 'socialcredit[{extra}]'") from None


def aware(x: Any) -> Any:
    """Naive (stored, UTC) times as UTC-zoned ones, recursively: what Arrow is given."""
    if isinstance(x, dt.datetime):
        return x.replace(tzinfo=dt.UTC) if x.tzinfo is None else x
    if isinstance(x, Mapping):
        return {k: aware(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [aware(v) for v in x]
    return x


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> pa.Table:
    """An Arrow table of dict rows (times UTC-zoned); `columns` keeps the order and the columns of no rows."""
    fixed = [aware(dict(r)) for r in rows]
    if not fixed:
        return pa.table({c: pa.array([], pa.null()) for c in columns or []})
    t = pa.Table.from_pylist(fixed)
    return t.select([c for c in columns if c in t.column_names]) if columns else t


def shown(v: Any) -> str:
    """One value as escaped HTML text; times in CST, lists joined, nested mappings as `key: value`."""
    if v is None:
        return "—"
    if isinstance(v, str) and v.endswith("Z") and len(v) >= 20 and v[4] == "-" and v[10] == "T":
        with contextlib.suppress(ValueError):  # an ISO UTC time, as the JSON form of an answer carries it
            v = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    if isinstance(v, dt.datetime):
        return html.escape((v if v.tzinfo else v.replace(tzinfo=dt.UTC)).astimezone(CST).strftime("%Y-%m-%d %H:%M"))
    if isinstance(v, Mapping):
        return "; ".join(f"{html.escape(str(k))}: {shown(x)}" for k, x in v.items() if x not in (None, [], {}))
    if isinstance(v, (list, tuple)):
        return ", ".join(shown(x) for x in v)
    return html.escape(str(v))


def html_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], caption: str) -> str:
    """A small HTML table, every cell escaped; at most MAX_ROWS rows, the caption saying how many there are."""
    more = f" (first {MAX_ROWS} of {len(rows)})" if len(rows) > MAX_ROWS else ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{shown(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows[:MAX_ROWS])
    return (
        f"<table><caption>{html.escape(caption)}{more}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def fields_html(title: str, fields: Iterable[tuple[str, Any]]) -> str:
    """A heading and a two-column table of named values (escaped)."""
    rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{shown(v)}</td></tr>" for k, v in fields)
    return f"<div><strong>{html.escape(title)}</strong><table>{rows}</table></div>"


class Tabular:
    """Arrow, pandas, polars and Jupyter HTML for an answer.

    A dataclass gets them with no code of its own: one row of its fields. A class overrides `to_arrow` (the
    table it is best read as) and `_repr_html_`.
    """

    def to_arrow(self) -> pa.Table:
        if not dataclasses.is_dataclass(self):
            raise NotImplementedError(type(self).__name__)
        return table([dataclasses.asdict(self)])

    def to_pandas(self) -> Any:
        """The Arrow table as a pandas DataFrame (the `pandas` extra)."""
        require("pandas")
        return self.to_arrow().to_pandas()

    def to_polars(self) -> Any:
        """The Arrow table as a polars DataFrame (the `polars` extra)."""
        return require("polars").from_arrow(self.to_arrow())

    def _repr_html_(self) -> str:
        if not dataclasses.is_dataclass(self):
            return f"<pre>{html.escape(repr(self))}</pre>"
        return fields_html(type(self).__name__, dataclasses.asdict(self).items())


__all__ = ["MissingExtra", "Tabular", "aware", "fields_html", "html_table", "require", "shown", "table"]
