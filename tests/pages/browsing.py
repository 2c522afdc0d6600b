"""What the browser tests share: a page is clean, signing in through the login form, screenshots, and
what lies outside the viewport."""

from __future__ import annotations

from urllib.parse import urlencode

PHONE = {"width": 390, "height": 844}  # a common phone's CSS viewport (iPhone 12–14)

# Everything drawn (not display:none, not in a closed <details>) whose box leaves the viewport sideways,
# unless an ancestor clips it (overflow other than visible: a ticker, a scrolling code block). The
# document's own scroll width comes first: a page wider than the screen scrolls sideways on a phone.
OUTSIDE_JS = """
(selectors) => {
  const w = window.innerWidth;
  const out = [];
  const root = document.documentElement;
  if (root.scrollWidth > w) out.push(`the document is ${root.scrollWidth}px wide in a ${w}px viewport`);
  const clipped = (e) => {
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') return true;
    }
    return false;
  };
  const where = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
  const span = (e) => {
    const r = e.getBoundingClientRect();
    return `spans x=${Math.round(r.left)}..${Math.round(r.right)}`;
  };
  for (const s of selectors) {
    const found = Array.from(document.querySelectorAll(s));
    if (!found.length) { out.push(`${s}: not on the page`); continue; }
    for (const e of found) {
      const r = e.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      if (r.left < -0.5 || r.right > w + 0.5) out.push(`${s} (${where(e)}) ${span(e)}`);
    }
  }
  for (const e of document.body.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if ((r.left < -0.5 || r.right > w + 0.5) && !clipped(e)) out.push(`${where(e)} ${span(e)}`);
  }
  return Array.from(new Set(out)).slice(0, 20);
}
"""


def outside(page, *selectors: str) -> list[str]:  # type: ignore[no-untyped-def]
    """What sticks out of the viewport sideways: the document, any of `selectors` (each must be on the
    page), and any other drawn element no ancestor clips."""
    return page.evaluate(OUTSIDE_JS, list(selectors))  # type: ignore[no-any-return]


def clean(page) -> None:  # type: ignore[no-untyped-def]
    assert page.failed_requests == []
    assert page.console_errors == []


def sign_in(page, base: str, key: str, next_: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/login?{urlencode({'next': next_})}")
    page.fill("#key", key)
    with page.expect_navigation():
        page.click("form[action='/login'] button[type=submit]")


def shot(page, name: str, full: bool = False) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=str(page.shots / f"{name}.png"), full_page=full)
