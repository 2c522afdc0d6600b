"""Docs that can be checked are checked: every command the README shows exists and takes its options."""

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from socialcredit.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    out = []
    for line in text.splitlines():
        m = re.match(r"^socialcredit (.+?)(\s+#.*)?$", line.strip())
        if m:
            out.append(shlex.split(m.group(1).replace("[", "").replace("]", "")))
    return out


def test_readme_quickstart_has_exactly_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    block = text.split("## Quickstart", 1)[1].split("```", 2)[1]
    commands = [ln.split("#")[0].strip() for ln in block.splitlines()[1:] if ln.strip()]
    assert commands == ["make demo", "make test"]


@pytest.mark.parametrize("words", readme_commands(), ids=lambda w: " ".join(w[:2]))
def test_readme_command_exists(words: list[str]) -> None:
    # the subcommand path is the leading words that are not arguments; --help must accept it
    path = []
    for w in words:
        if w.startswith("-") or w.isupper() or "." in w or "@" in w or w[0].isdigit():
            break
        path.append(w)
        result = CliRunner().invoke(app, [*path, "--help"])
        if result.exit_code != 0:
            path.pop()
            break
    assert path, f"README shows `socialcredit {' '.join(words)}`, which is not a command"
    # help is a Rich table laid out to $COLUMNS, which crops long option names in a narrow terminal: give it room
    help_text = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).output
    for w in words:
        if w.startswith("--"):
            assert w.split("=")[0] in help_text, f"`socialcredit {' '.join(path)}` has no option {w}"


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_every_screenshot_the_readme_shows_exists_at_its_documented_width() -> None:
    """`make screenshots` renders them (the browser tests, into docs/); a test run writes them to a
    temporary directory instead, so only their presence and size are checked here, never their bytes."""
    text = README.read_text(encoding="utf-8")
    linked = sorted(set(re.findall(r"docs/screenshots/([a-z-]+)\.png", text)))
    assert len(linked) >= 6
    documented = re.search(r"pages at (\d+) px wide, reports at (\d+)", text)
    assert documented, "the README states the screenshots' widths"
    page_width, report_width = map(int, documented.groups())
    for name in linked:
        width, height = _png_size(README.parent / "docs" / "screenshots" / f"{name}.png")
        assert width == (report_width if name.startswith("report-") else page_width), (name, width)
        assert height >= 300, (name, height)


def test_readme_catalog_counts_are_the_catalogs() -> None:
    from socialcredit.catalog import default_catalog

    c = default_catalog()
    line = " ".join(README.read_text(encoding="utf-8").split("- `catalog/` — YAML:", 1)[1].split("\n- ")[0].split())
    for n, what in [
        (len(c.behaviours), "behaviours"),
        (len(c.characteristics), "characteristics"),
        (len(c.services), "services"),
        (len(c.measures), "measures"),
        (len(c.agencies), "agencies"),
    ]:
        assert f"{n} {what}" in line, (what, n, line)
