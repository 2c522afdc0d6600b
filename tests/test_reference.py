"""The reference pages in docs/ are generated from the data and must be current."""

from pathlib import Path

from socialcredit.reference import write

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_reference_pages_are_current(tmp_path: Path) -> None:
    for fresh in write(tmp_path):
        shipped = DOCS / fresh.name
        assert shipped.exists(), f"docs/{fresh.name} is missing: run `make docs`"
        assert shipped.read_text(encoding="utf-8") == fresh.read_text(encoding="utf-8"), (
            f"docs/{fresh.name} is stale: run `make docs`"
        )


def test_cli_reference_is_current(tmp_path: Path) -> None:
    from socialcredit.cli.reference import write as write_cli

    fresh = write_cli(tmp_path)
    assert (DOCS / "cli.md").read_text(encoding="utf-8") == fresh.read_text(encoding="utf-8"), (
        "docs/cli.md is stale: run `make docs`"
    )
    text = fresh.read_text(encoding="utf-8")
    for command in ("score", "decide", "audit verify", "rulebook load", "simulate", "report"):
        assert f"## `{command}`" in text
