"""The README's tour of the CLI, run as written: every command, in order, in a fresh store, exits 0 and prints
the line it should.

Why: test_docs.py proves each command exists and takes its options, yet `replay` still failed on the `make demo`
run and `compare` did not show who changes. The tour is read from README.md here, not copied, so a line added
to it is run too, or fails for want of an expected output below.

How each placeholder becomes something real (in a temporary directory, which is the working directory): ID is a
sample resident, T a day inside the sample's records, CHECKPOINT what `audit head` printed, H and P an address
on 127.0.0.1; people.jsonl, records.csv and mycity@1.yaml are small valid files written here; the scenario is the
repository's own with its cities shrunk to a few dozen citizens and two months, so the simulation, report,
replay and comparison take seconds, and `population generate` makes as few citizens per city. A command that
would read the wall clock (`score` scores up to now, `citizen`, `explain` and `decide` ask about now) is given
T instead. A line with optional parts (`[--json]`) runs twice: as shown without them, then with all of them
(once if the two come out the same). `serve` runs with its options only (bare, it would take port 8000, which
another user of the machine may hold), in its own process, until it answers a page; then it is stopped.
About 20 s in all.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import free_port
from socialcredit.ids import make_id
from socialcredit.sample import citizen_ids

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
T = "2026-09-01"  # the sample's records run from March 2025 to August 2026
TINY_CITY = 40  # citizens per city of the shrunk scenario
TINY_MONTHS = 2
SERVE_WAIT = 120.0  # seconds for `serve` to start listening, however loaded the machine

# What each command must print, as a regular expression over its output with whitespace collapsed (so a table
# laid out to any terminal width reads the same). {ID}, {T}, {RULEBOOK} are filled in; a `--json` form must
# instead print JSON, which JSON_CHECKS reads.
EXPECT = {
    "init": r"store ready at .* with 6 cities: beijing, guangzhou, qingzhen, rongcheng, shanghai, shenzhen",
    "sample": r"sample loaded: 16 citizens, 33 records",  # the README's comment says 16 citizens, 33 records
    "citizens": r"registered 3 citizens",
    "population generate": r"stored [\d,]+ citizens \(ckeys [\d,]+–[\d,]+\) and [\d,]+ relations",
    "simulate": rf"\d+ citizens, {TINY_MONTHS} months, \d+ records, \d+ service attempts",
    "ingest": r"accepted 2 records \(batch \d+\); 0 already stored, unchanged",
    "score": r"scored \d+ records into \d+ ledger entries; \d+ monthly assessments",
    "citizen": r"· rongcheng · as of {T} 00:00 CST \(the time asked about\) score \d+ grade \w+ \(published: "
    r"the monthly assessment of [^)]*\); running score \d+ under rongcheng@\d",
    "explain": r"score \d+ = clamp\(base \d+ \+ -?\d+ from the entries below, .* list entries",
    "decide": r"DENY air\.ticket for {ID}: ",
    "rulebook show": r"rongcheng@2\+national@2, in force from \S+; scale \d+–\d+, base \d+; \d+ rules",
    "rulebook diff": r"shanghai@1\+national@\d → rongcheng@1\+national@\d",
    "rulebook validate": r"ok: mycity@1",
    "rulebook load": r"loaded mycity@1, in force from 2026-10-01",
    "rulebook schema": r'"title": "socialcredit rulebook layer"',
    "catalog": r"behaviours .* characteristics .* measures .* services .* agencies",
    "keys create": r"key \S+ for service:rail: \S+",
    "audit verify": r"audit trail intact: \d+ entries, every hash and link checks",
    "audit head": r"^\S+:\d+:[0-9a-f]+$",
    "report": r"report: .*report\.html \(\d+ figures beside it as PNG\)",
    "replay": r"replayed runs/demo under {RULEBOOK}: \d+ citizens, \d+ decisions re-decided",
    "compare": r"comparison: .*compare\.html \(5 figures beside it as PNG\) \d+ of \d+ citizens hold another "
    r"grade in B \(\d+ a better one, \d+ a worse one\); \d+ are on other lists; \d+ of \d+ decisions "
    r"answered differently",
    "export": r"exported \d+ tables and the data of \d+ figures \(\d+ (parquet|csv) files\) to runs/demo/data; ",
    "serve": r"serving socialcredit\.duckdb on http://127\.0\.0\.1:\d+/",
}
# commands that read a clock unless given a time (`score` and `serve` the wall clock, the questions the store's):
# the tour gives them T
CLOCKED = {"score": "--as-of", "citizen": "--as-of", "explain": "--as-of", "decide": "--at", "serve": "--as-of"}
JSON_CHECKS = {  # command → (key of the JSON object it prints, expected value or None for "present")
    "citizen": ("citizen_id", "{ID}"),
    "explain": ("citizen_id", "{ID}"),
    "catalog": ("behaviours", None),
}


def tour() -> list[str]:
    """The tour's commands as the README shows them (comments cut off)."""
    text = README.read_text(encoding="utf-8")
    block = text.split("## A tour of the CLI", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [re.sub(r"\s+#.*$", "", ln).strip() for ln in block.splitlines()]
    return [ln for ln in lines if ln]


def forms(line: str) -> list[str]:
    """The line without its optional parts, then (if it has any) with all of them."""
    plain = re.sub(r"\s*\[[^]]*\]", "", line)
    full = re.sub(r"\[([^]]*)\]", r"\1", line)
    return [plain] if plain == full else [plain, full]


def command_of(words: list[str]) -> str:
    """The command path: `rulebook show`, `audit verify`, `score` …"""
    two = " ".join(words[:2])
    return two if two in EXPECT else words[0]


def collapse(text: str) -> str:
    return " ".join(text.split())


def write_inputs(base: Path, words_seen: list[str]) -> None:
    """The small files the tour names, in the working directory."""
    rongcheng = "371082"
    people = [
        ("Tour Parent", "F", "1950-02-01", 2, {}),
        ("Tour Person", "M", "1980-03-04", 3, {"parents": [0]}),
        ("Tour Spouse", "F", "1982-05-06", 4, {"spouse": 1, "contacts": [1]}),
    ]
    ids = [make_id(rongcheng, dt.date.fromisoformat(b), seq) for _, _, b, seq, _ in people]
    rows = []
    for i, (name, sex, born, _, rel) in enumerate(people):
        row: dict[str, object] = {"citizen_id": ids[i], "name": name, "sex": sex, "birth_date": born,
                                  "city": "rongcheng"}  # fmt: skip
        for k, v in rel.items():
            row[k] = ids[v] if isinstance(v, int) else [ids[j] for j in v]
        rows.append(row)
    (base / "people.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (base / "records.csv").write_text(
        "record_id,citizen_id,behaviour,occurred_at,reported_by,days_late,amount\n"
        f"tour-1,{ids[1]},late_bill_payment,2026-03-01T09:00:00+08:00,state_grid,95,640\n"
        f"tour-2,{ids[2]},late_bill_payment,2026-04-01T09:00:00+08:00,state_grid,12,120\n",
        encoding="utf-8",
    )
    (base / "mycity@1.yaml").write_text(
        'jurisdiction: mycity\nname: My City\nlevel: city\nextends: national\nregion_code: "110105"\n'
        "version: 1\neffective_from: 2026-10-01\nsource: illustrative\nrules:\n"
        "  - id: mycity.volunteer\n    behaviour: volunteer_work\n    points: 3\n    valid_for: 1y\n"
        "    source: illustrative\n",
        encoding="utf-8",
    )
    for word in words_seen:  # the scenario the README names, shrunk
        if word.startswith("scenarios/") and word.endswith(".yaml"):
            scenario = yaml.safe_load((REPO / word).read_text(encoding="utf-8"))
            scenario["cities"] = dict.fromkeys(scenario["cities"], TINY_CITY)
            scenario["months"] = TINY_MONTHS
            (base / word).parent.mkdir(parents=True, exist_ok=True)
            (base / word).write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOCIALCREDIT_DB", raising=False)  # the store is the README's default, ./socialcredit.duckdb
    yield tmp_path


def test_the_readme_tour_runs_as_written(in_tmp: Path) -> None:
    from socialcredit.cli import app

    lines = tour()
    assert lines and all(ln.startswith("socialcredit ") for ln in lines), lines
    write_inputs(in_tmp, [w for ln in lines for w in shlex.split(ln)])
    values = {"ID": citizen_ids()["zhang_wei"], "T": T, "H": "127.0.0.1", "P": str(free_port())}
    runner = CliRunner()
    ran: list[list[str]] = []
    for line in lines:
        for form in forms(line):
            words = shlex.split(form)[1:]
            command = command_of(words)
            assert command in EXPECT, f"README shows `{line}`: add what it must print to EXPECT in this test"
            if command == "serve" and "--port" not in words:
                continue  # as shown it listens on port 8000, which another user of this machine may hold
            args = []
            for w in words:
                if w.isupper() and w.isalpha():
                    assert w in values, f"README placeholder {w} in `{line}` has no value in this test"
                    w = values[w]
                args.append(w)
            if command == "population generate":  # the README's sizes are a city's; a few dozen show the same
                args = [re.sub(r"^([a-z_]+)=\d+$", rf"\1={TINY_CITY}", a) for a in args]
            if command in CLOCKED and CLOCKED[command] not in args:
                args += [CLOCKED[command], T]  # never the wall clock
            if args in ran:
                continue  # `score [--as-of 2026-09-01]` as shown is given that time anyway
            ran.append(args)
            if command == "serve":
                output = serve_bounded(args)
            else:
                result = runner.invoke(app, args)
                output = result.output
                assert result.exit_code == 0, f"`socialcredit {' '.join(args)}` exited {result.exit_code}:\n" + (
                    output + result.stderr + repr(result.exception)
                )
            check(command, args, output, values)
            if command == "audit head":
                values["CHECKPOINT"] = output.strip()
    assert any(a[0] == "serve" for a in ran) and values.get("CHECKPOINT"), "serve and audit head are in the tour"


def check(command: str, args: list[str], output: str, values: dict[str, str]) -> None:
    shown = f"`socialcredit {' '.join(args)}` printed:\n{output}"
    if "--json" in args:
        key, expected = JSON_CHECKS[command]
        data = json.loads(output)
        assert key in data, shown
        if expected is not None:
            assert data[key] == expected.format(**values), shown
        return
    rulebook = args[args.index("--rulebook") + 1] if "--rulebook" in args else ""
    pattern = EXPECT[command]
    for name, value in (("{ID}", values["ID"]), ("{T}", T), ("{RULEBOOK}", rulebook)):
        pattern = pattern.replace(name, re.escape(value))
    text = output.strip() if command == "audit head" else collapse(output)
    assert re.search(pattern, text), f"expected /{pattern}/; {shown}"
    if command == "score" and rulebook:
        assert f"a replay under {rulebook}" in collapse(output), shown


def serve_bounded(args: list[str]) -> str:
    """`serve` in its own process (the in-process commands have closed the store), on 127.0.0.1, until it
    answers one page; then stopped."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "socialcredit.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = f"http://{args[args.index('--host') + 1]}:{args[args.index('--port') + 1]}/docs"
        deadline = time.monotonic() + SERVE_WAIT
        while True:
            try:
                with urllib.request.urlopen(url, timeout=10) as page:
                    assert page.status == 200, url
                    break
            except OSError:
                assert proc.poll() is None, first + proc.stdout.read()
                assert time.monotonic() < deadline, f"serve did not listen within {SERVE_WAIT}s: {first}"
                time.sleep(0.2)
        return first
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
