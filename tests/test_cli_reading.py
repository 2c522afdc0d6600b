"""The CLI as a reader meets it: --json on every read command, tables at 80 columns that wrap instead of
cutting identifiers and URLs, a spinner on every command that can take seconds, values not Python dicts.

Widths are fixed here (the console's), never the terminal's.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

import socialcredit.cli.console as cli  # the consoles every command prints to
from socialcredit.cli import app
from socialcredit.sample import citizen_ids

runner = CliRunner()
# commands that change the store or start something: every other command reads, and has --json
WRITES = {
    "init",
    "citizens",
    "sample",
    "rulebook load",
    "keys revoke",
    "serve",
    "compact",
    "replay",
    "simulate",
    "rulebook schema",
    "import-derived",
}  # fmt: skip  (schema prints JSON whatever)
BORDERS = "│┃"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reading") / "s.duckdb"
    for args in (["init"], ["sample"], ["score", "--as-of", "2026-09-01"]):
        r = runner.invoke(app, [*args, "--db", str(path)])
        assert r.exit_code == 0, r.output
    return path


def commands(group: Any, prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, cmd in group.commands.items():
        if getattr(cmd, "commands", None):  # a sub-app (keys, audit, rulebook, population)
            found |= commands(cmd, f"{prefix}{name} ")
        else:
            found[f"{prefix}{name}"] = cmd
    return found


def test_every_read_command_has_json() -> None:
    every = commands(typer.main.get_command(app))
    assert set(every) >= WRITES
    missing = [n for n, c in every.items() if n not in WRITES and not any("--json" in p.opts for p in c.params)]
    assert missing == []
    assert {"compare", "report", "rulebook validate", "export", "citizen", "explain", "decide"} <= set(every) - WRITES


def test_rulebook_validate_json_names_each_version(tmp_path: Path) -> None:
    from socialcredit.rulebook import shipped_dir

    r = runner.invoke(app, ["rulebook", "validate", str(shipped_dir() / "shanghai@1.yaml"), "--json"])
    assert r.exit_code == 0, r.output
    answer = json.loads(r.stdout)
    assert answer["ok"] is True and answer["versions"][0]["key"] == "shanghai@1"


def column_texts(output: str) -> list[str]:
    """Each table column's text, its lines joined with nothing between them: a value folded over several lines
    of its cell reads whole again (and one cut with "…" does not)."""
    cols: dict[int, list[str]] = {}
    for line in output.splitlines():
        if line[:1] in BORDERS:
            for i, cell in enumerate(re.split(f"[{BORDERS}]", line)[1:-1]):
                cols.setdefault(i, []).append(cell.strip())
    return ["".join(parts) for _, parts in sorted(cols.items())]


@pytest.mark.parametrize("width", [80, 60])
def test_tables_wrap_instead_of_cutting_at_a_narrow_width(
    db: Path, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    monkeypatch.setattr(cli.out, "_width", width)
    who = citizen_ids()["zhang_wei"]
    x = json.loads(runner.invoke(app, ["explain", who, "--db", str(db), "--json"]).stdout)
    rule_ids = {r["id"] for e in x["ledger"] for r in e["rules"]}
    urls = {u for e in x["ledger"] for r in e["rules"] for u in re.findall(r"https?://[^\s;)]+", r["source"] or "")}
    assert urls and rule_ids
    explained = runner.invoke(app, ["explain", who, "--db", str(db)]).stdout
    standing = runner.invoke(app, ["citizen", who, "--db", str(db)]).stdout
    for shown in (explained, standing):
        assert not [line for line in shown.splitlines() if line[:1] in BORDERS and "…" in line]
        assert max(len(line) for line in shown.splitlines() if line[:1] in BORDERS + "┏┡└") <= width
    explained_cols = "".join(column_texts(explained))
    for value in rule_ids | urls:
        assert value in explained_cols, value
    standing_cols = "".join(column_texts(standing))
    for e in x["list_entries"]:
        assert e["list_id"] in standing_cols
    for m in x["measures"]:
        assert m["measure"] in standing_cols and m["via"] in standing_cols


def test_explain_prints_values_not_python_dicts(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.out, "_width", 200)
    shown = runner.invoke(app, ["explain", citizen_ids()["zhang_wei"], "--db", str(db)]).stdout
    assert "amount=180000" in shown and "days_late=200" in shown
    assert not re.search(r"\{'|'\w+': |\[\{|None\b|datetime\.", shown), shown


@pytest.fixture
def spinner(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """stderr as a terminal (the spinner draws only there), into a buffer."""
    buf = io.StringIO()
    monkeypatch.setattr(cli, "err", Console(file=buf, force_terminal=True, width=100, markup=False, emoji=False))
    return buf


@pytest.mark.parametrize(("args", "says"), [
    (["citizen", "{ID}"], "reading the standing"),
    (["explain", "{ID}"], "explaining"),
    (["decide", "{ID}", "air.ticket"], "deciding"),
])  # fmt: skip
def test_commands_that_may_run_the_engine_show_a_spinner(
    db: Path, spinner: io.StringIO, args: list[str], says: str
) -> None:
    r = runner.invoke(app, [a.replace("{ID}", citizen_ids()["zhang_wei"]) for a in args] + ["--db", str(db)])
    assert r.exit_code == 0, r.output
    assert says in spinner.getvalue()
    assert says not in r.stdout  # stdout stays the answer


def test_report_and_compare_show_a_spinner_while_they_draw(
    spinner: io.StringIO, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import socialcredit.report.compare as compare_module
    import socialcredit.report.society as society

    page = tmp_path / "report.html"
    monkeypatch.setattr(society, "report", lambda run_dir, out, interactive=False: [page])
    r = runner.invoke(app, ["report", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"report": str(page), "figures": []}
    assert "drawing the report" in spinner.getvalue()

    summary = compare_module.Summary(10, 2, 1, 3, 40, 5)
    monkeypatch.setattr(
        compare_module, "compare", lambda a, b, out: compare_module.Comparison([tmp_path / "compare.html"], summary)
    )
    r = runner.invoke(app, ["compare", str(tmp_path), str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    answer = json.loads(r.stdout)
    assert answer["summary"]["other_grade"] == 2 and "5 of 40 decisions" in answer["summary"]["text"]
    assert "comparing" in spinner.getvalue()
