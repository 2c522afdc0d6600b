"""Read a report page as its reader sees it: each figure's tables (as printed), captions, images and links."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path


@dataclass
class Page:
    """What a reader sees of a report: each figure's tables (as printed) and captions."""

    tables: dict[tuple[str, int], list[dict[str, str]]] = field(default_factory=dict)
    rows_total: dict[tuple[str, int], int] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    sql: dict[tuple[str, int], str] = field(default_factory=dict)  # the "How computed" text of each query


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = Page()
        self.key: tuple[str, int] | None = None
        self.header: list[str] = []
        self.row: list[str] | None = None
        self.text: list[str] | None = None
        self.figure = ""
        self.in_caption = False
        self.in_sql = False
        self.pre: list[str] | None = None
        self.n_pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure":
            self.figure = a.get("data-figure") or ""
            self.n_pre = 0
        if tag == "details":
            self.in_sql = "sql" in (a.get("class") or "").split()
        if tag == "pre" and self.in_sql:
            self.pre = []
        if tag == "figcaption":
            self.in_caption, self.text = True, []
        if tag == "table" and "data" in (a.get("class") or "").split():
            self.key = (a["data-figure"] or "", int(a["data-query"] or 0))
            self.page.tables[self.key] = []
            self.page.rows_total[self.key] = int(a["data-rows"] or 0)
            self.header = []
        if tag == "tr" and self.key:
            self.row = []
        if tag in ("th", "td") and self.key:
            self.text = []
        if tag == "img":
            self.page.images.append(a.get("src") or "")
        for attr in ("src", "href"):
            if tag in ("link", "script", "a", "img") and a.get(attr):
                self.page.links.append(a[attr] or "")

    def handle_data(self, data: str) -> None:
        if self.text is not None:
            self.text.append(data)
        if self.pre is not None:
            self.pre.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre" and self.pre is not None:
            self.page.sql[(self.figure, self.n_pre)] = "".join(self.pre)
            self.pre, self.n_pre = None, self.n_pre + 1
        if tag == "figcaption":
            self.page.captions[self.figure] = "".join(self.text or []).strip()
            self.in_caption, self.text = False, None
        if tag in ("th", "td") and self.key and self.text is not None and self.row is not None:
            self.row.append("".join(self.text).strip())
            self.text = None
        if tag == "tr" and self.key and self.row is not None:
            if not self.header:
                self.header = self.row
            else:
                self.page.tables[self.key].append(dict(zip(self.header, self.row, strict=True)))
            self.row = None
        if tag == "table":
            self.key = None


def read_page(path: Path) -> Page:
    reader = _Reader()
    reader.feed(path.read_text(encoding="utf-8"))
    return reader.page
