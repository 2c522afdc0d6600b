"""The CLI door: init, sample, citizen, decide, rulebook validate, ingest errors, catalog."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from typer.testing import CliRunner

from conftest import NATIONAL_YAML, citizen, city_yaml, cst, held_by_another_process, rec
from socialcredit.cli import app
from socialcredit.rulebook import shipped_dir
from socialcredit.sample import citizen_ids
from socialcredit.store import Store

runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "cli.duckdb"
    r = runner.invoke(app, ["init", "--db", str(path)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["sample", "--db", str(path)])
    assert r.exit_code == 0, r.output
    assert "sample loaded" in r.output
    return path


def test_citizen_json(db):
    cid = citizen_ids()["zhang_wei"]
    r = runner.invoke(app, ["citizen", cid, "--db", str(db), "--as-of", "2026-09-01", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["citizen_id"] == cid and data["city"] == "rongcheng"
    assert any(e["list_id"] == "dishonest_judgment_defaulters" for e in data["list_entries"])


def test_decide_json(db):
    cid = citizen_ids()["zhang_wei"]
    r = runner.invoke(app, ["decide", cid, "air.ticket", "--db", str(db), "--at", "2026-09-01", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["outcome"] == "deny"


def test_rulebook_validate_shipped_ok():
    r = runner.invoke(app, ["rulebook", "validate", str(shipped_dir() / "rongcheng@1.yaml")])
    assert r.exit_code == 0, r.output
    assert "ok" in r.output


def test_rulebook_validate_broken_names_file_and_line(tmp_path):
    text = (shipped_dir() / "rongcheng@1.yaml").read_text(encoding="utf-8")
    bad = text.replace('when: "coalesce(judged, false) = false"', 'when: "random() > 0.5"', 1)
    assert bad != text
    p = tmp_path / "rongcheng@1.yaml"
    p.write_text(bad, encoding="utf-8")
    line = next(i for i, x in enumerate(bad.splitlines(), start=1) if "id: rc.contract_breach" in x)
    r = runner.invoke(app, ["rulebook", "validate", str(p)])
    assert r.exit_code == 2
    assert f"{p}:{line}: " in r.stderr


def test_ingest_bad_csv_exits_2_naming_row_and_field(db, tmp_path):
    cid = citizen_ids()["xu_hui"]
    p = tmp_path / "bad.csv"
    p.write_text(
        "record_id,citizen_id,behaviour,occurred_at,reported_by,days_late\n"
        f"x1,{cid},late_bill_payment,2026-03-01T00:00:00+08:00,state_grid,abc\n"
    )
    r = runner.invoke(app, ["ingest", str(p), "--db", str(db)])
    assert r.exit_code == 2
    assert f"{p}: row 1, days_late: " in r.stderr


def test_ingest_good_csv(db, tmp_path):
    cid = citizen_ids()["xu_hui"]
    p = tmp_path / "good.csv"
    p.write_text(
        "record_id,citizen_id,behaviour,occurred_at,reported_by,days_late\n"
        f"x2,{cid},late_bill_payment,2026-03-01T00:00:00+08:00,state_grid,12\n"
    )
    r = runner.invoke(app, ["ingest", str(p), "--db", str(db), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["accepted"] == 1


def test_catalog_json():
    r = runner.invoke(app, ["catalog", "--json"])
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert "air.ticket" in json.dumps(data)


def test_missing_store_exits_2(tmp_path):
    r = runner.invoke(app, ["citizen", "110101199001010011", "--db", str(tmp_path / "none.duckdb")])
    assert r.exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["decide", citizen_ids()["zhang_wei"], "air.ticket", "--at", "0001-01-01"],
        ["decide", citizen_ids()["zhang_wei"], "air.ticket", "--at", "9999-12-31T23:00"],
        ["citizen", citizen_ids()["zhang_wei"], "--as-of", "9999-12-31T23:00"],
        ["explain", citizen_ids()["zhang_wei"], "--as-of", "0001-01-01"],
        ["score", "--as-of", "9999-12-31T23:00"],
    ],
)
def test_times_out_of_bounds_exit_2_naming_the_field(db, args):
    r = runner.invoke(app, [*args, "--db", str(db)])
    assert r.exit_code == 2, r.output
    assert any(f in r.output for f in ("as_of: ", "--as-of: ", "at: "))
    assert "Traceback" not in r.output


# ------------------------------------------------------------------ text from data is printed as it is

MARKUP_NAMES = ["[/]王", "[bold]x[/bold] :cat:"]


@pytest.fixture
def odd_names(make_store) -> str:
    """A store whose citizens' names look like Rich markup (and an emoji code); the path of its file."""
    store = make_store()
    store.add_citizens([citizen(i, name=name) for i, name in enumerate(MARKUP_NAMES)])
    path = str(store.path)
    store.close()
    return path


@pytest.mark.parametrize("command", ["citizen", "explain"])
@pytest.mark.parametrize("i", range(len(MARKUP_NAMES)))
def test_names_are_printed_literally(odd_names, command, i):
    cid = citizen(i)["citizen_id"]
    r = runner.invoke(app, [command, str(cid), "--db", odd_names, "--as-of", "2026-09-01"])
    assert r.exit_code == 0, r.output
    assert f"{MARKUP_NAMES[i]} {cid}" in r.stdout


def test_rule_sources_in_brackets_stay_in_the_explanation(db, monkeypatch):
    """Table cells too: '[reported: …]' after a rule was taken for a markup tag and silently dropped."""
    import socialcredit.cli

    monkeypatch.setattr(socialcredit.cli.out, "_width", 1000)  # a table's cells wrap to the width: give them room
    args = ["explain", citizen_ids()["zhang_wei"], "--db", str(db), "--as-of", "2026-09-01"]
    x = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    rules = [f"{r['id']} ({r['points']:+d}) when {r['when'] or 'always'} [{r['source']}]"
             for e in x["ledger"] for r in e["rules"]]  # fmt: skip
    assert any("[reported: " in r for r in rules)
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert [rule for rule in rules if rule not in r.stdout] == []


def test_a_validation_message_keeps_its_brackets(tmp_path):
    p = tmp_path / "national@1.yaml"
    p.write_text(NATIONAL_YAML.replace("valid_for: 2y", "valid_for: 2w", 1), encoding="utf-8")
    r = runner.invoke(app, ["rulebook", "validate", str(p)])
    assert r.exit_code == 2
    assert "'^[1-9][0-9]*[dmy]$'" in r.stderr


# ------------------------------------------------------------------ a store another process holds


@pytest.mark.parametrize(
    "args",
    [["citizen", "110101199001010011"], ["keys", "list"], ["rulebook", "show", "rongcheng"], ["serve", "--port", "9"]],
)
def test_a_store_another_process_holds_exits_2_saying_who(make_store, args):
    store = make_store()
    store.close()
    db = store.path
    with held_by_another_process(db) as holder:
        r = runner.invoke(app, [*args, "--db", str(db)])
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit)  # a message, not a traceback
    said = r.stderr
    assert said.startswith(f"error: {db}: the store is held by another process (PID {holder.pid}: ")
    assert "Stop that process" in said and "HTTP API" in said and "Traceback" not in said
    assert "serving" not in r.stdout


def test_a_command_run_in_process_lets_go_of_its_store(db):
    """A command closes the store it opened when it returns, so a test or a notebook that ran one in-process
    can then hand the file to another process (`serve`, in the README's tour). Waiting for the garbage
    collector is not enough: the decisions' per-store index keeps a Store that answered a question alive."""
    cid = citizen_ids()["zhang_wei"]
    for args in (["citizen", cid, "--as-of", "2026-09-01"], ["decide", cid, "air.ticket", "--at", "2026-09-01"]):
        r = runner.invoke(app, [*args, "--db", str(db)])
        assert r.exit_code == 0, r.output
    with held_by_another_process(db):
        pass


def test_a_run_whose_store_another_process_holds_exits_2(tmp_path):
    Store(tmp_path / "store.duckdb").close()
    with held_by_another_process(tmp_path / "store.duckdb") as holder:
        r = runner.invoke(app, ["report", str(tmp_path)])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit)
    assert f"store.duckdb: the store is held by another process (PID {holder.pid}: " in r.stderr


# ------------------------------------------------------------------ lines are never wrapped


def test_paths_and_messages_are_never_wrapped(tmp_path, monkeypatch):
    """A path longer than the terminal is wide, in a narrow one, comes out whole on one line."""
    monkeypatch.setenv("COLUMNS", "40")  # Rich reads it as it prints, unless it was already set when it started
    deep = tmp_path / ("a-directory-with-a-name-longer-than-the-terminal-is-wide-" * 2)
    deep.mkdir()
    r = runner.invoke(app, ["init", "--db", str(deep / "s.duckdb")])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"store ready at {deep / 's.duckdb'} with ") and r.stdout.count("\n") == 1
    r = runner.invoke(app, ["citizen", "110101199001010011", "--db", str(deep / "none.duckdb")])
    assert r.exit_code == 2
    assert r.stderr == f"error: {deep / 'none.duckdb'}: no store here; run `socialcredit init` first (or pass --db)\n"


def test_rulebook_load_refuses_a_past_date_unless_backdated(tmp_path):
    """Like the admin API: a version dated before the store's today (its last run) would rescore the past."""
    db = str(tmp_path / "l.duckdb")
    for args in (["init"], ["sample"], ["score", "--as-of", "2026-09-01"]):
        assert runner.invoke(app, [*args, "--db", db]).exit_code == 0
    text = (shipped_dir() / "rongcheng@2.yaml").read_text(encoding="utf-8")
    past = tmp_path / "rongcheng@9.yaml"
    past.write_text(
        re.sub(
            r"(?m)^effective_from: .*$", "effective_from: 2026-08-20", re.sub(r"(?m)^version: .*$", "version: 9", text)
        ),
        encoding="utf-8",
    )
    r = runner.invoke(app, ["rulebook", "load", str(past), "--db", db])
    assert r.exit_code == 2 and "effective_from 2026-08-20 is before today (2026-09-01)" in r.output, r.output
    r = runner.invoke(app, ["rulebook", "load", str(past), "--db", db, "--backdate"])
    assert r.exit_code == 0 and "loaded rongcheng@9" in r.output, r.output
    # after the store's clock, a date is not in the past, whatever the wall clock says
    later = tmp_path / "rongcheng@10.yaml"
    later.write_text(
        re.sub(
            r"(?m)^effective_from: .*$", "effective_from: 2026-09-15", re.sub(r"(?m)^version: .*$", "version: 10", text)
        ),
        encoding="utf-8",
    )
    r = runner.invoke(app, ["rulebook", "load", str(later), "--db", db])
    assert r.exit_code == 0 and "loaded rongcheng@10, in force from 2026-09-15" in r.stdout, r.output


def test_rulebook_validate_warns_when_a_version_drops_what_the_previous_had(tmp_path):
    """An author who wrote only the changes into shanghai@2 lost Shanghai's filial-piety rule silently."""
    p = tmp_path / "shanghai@2.yaml"
    p.write_text(
        "jurisdiction: shanghai\nname: Shanghai\nlevel: city\nextends: national\nversion: 2\n"
        "effective_from: 2027-01-01\nsource: illustrative\nrules:\n"
        "  - id: sh.new\n    behaviour: littering\n    points: -1\n    source: illustrative\n",
        encoding="utf-8",
    )
    r = runner.invoke(app, ["rulebook", "validate", str(p)])
    assert r.exit_code == 0, r.output
    assert r.stdout == "ok: shanghai@2\n"
    first = f"warning: {p}:1: shanghai@2 drops 2 of the rules shanghai@1 had: sh.neglecting_parents, visiting_parents"
    assert r.stderr.startswith(first + " (a version file is a complete rulebook"), r.stderr
    assert f"warning: {p}:1: shanghai@2 drops 1 of the caps shanghai@1 had: sh.visiting_parents.per_year" in r.stderr
    whole = (shipped_dir() / "shanghai@1.yaml").read_text(encoding="utf-8")
    p.write_text(
        whole.replace("version: 1", "version: 2").replace("effective_from: 2016-05-01", "effective_from: 2027-01-01"),
        encoding="utf-8",
    )
    r = runner.invoke(app, ["rulebook", "validate", str(p)])
    assert r.exit_code == 0 and r.stderr == "", r.stderr


def test_rulebook_validate_tells_every_error_of_every_file_at_once(tmp_path):
    a, b = tmp_path / "a@1.yaml", tmp_path / "b@1.yaml"
    head = "name: A\nlevel: city\nextends: national\nversion: 1\nsource: illustrative\n"
    rule = "  - id: a.x\n    behaviour: littering\n    points: lots\n    source: illustrative\n"
    a.write_text("jurisdiction: a\n" + head + "effective_from: 2024-13-01\nrules:\n" + rule, encoding="utf-8")
    b.write_text("jurisdiction: b\n" + head + "effective_from: 2024-02-30\n", encoding="utf-8")
    r = runner.invoke(app, ["rulebook", "validate", str(a), str(b)])
    assert r.exit_code == 2
    assert r.stderr.splitlines() == [
        f"error: {a}:7: '2024-13-01' is not a valid value: month must be in 1..12",
        f"{a}:11: rules.0.points: Input should be a valid integer, unable to parse string as an integer",
        f"{b}:7: '2024-02-30' is not a valid value: day is out of range for month",
    ]
    a.write_text(
        a.read_text()
        .replace("2024-13-01", "2024-12-01")
        .replace("lots", "-1")
        .replace("behaviour: littering", "behaviour: guarantor_for_defaulter"),
        encoding="utf-8",
    )
    b.write_text(
        b.read_text().replace("2024-02-30", "2024-02-28") + "remove:\n  rules: [no_such_rule]\n", encoding="utf-8"
    )
    r = runner.invoke(app, ["rulebook", "validate", str(a), str(b)])
    assert r.exit_code == 2
    lines = r.stderr.splitlines()
    assert lines[0].startswith(f"error: {a}:9: unknown behaviour 'guarantor_for_defaulter': it is a characteristic")
    assert "set by behaviour 'guarantee_default'" in lines[0]
    assert lines[1:] == [f"{b}:9: remove.rules: nothing inherited has id 'no_such_rule'"]


def test_rulebook_diff_prints_every_difference(make_store):
    """A grade band raised and a cap cut, once printed as an empty rules table ("None: none")."""
    v2 = (
        NATIONAL_YAML.replace("version: 1", "version: 2")
        .replace("effective_from: 2020-01-01", "effective_from: 2022-01-01")
        .replace("{grade: A, min: 120}", "{grade: A, min: 125}")
        .replace("    max: 10\n", "    max: 6\n")
        .replace("    points: 5\n", "    points: 5\n    label: Volunteering\n")
    )
    store = make_store(NATIONAL_YAML, v2, city_yaml())
    store.close()
    args = ["rulebook", "diff", "testcity@1+national@1", "testcity@1+national@2", "--db", str(store.path)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "testcity@1+national@1 → testcity@1+national@2: 4 differences",
        "rulebook: effective_from 2020-01-01 → 2022-01-01",
        "grades A: min 120 → 125",
        'rules volunteer: label "" → Volunteering',
        "caps volunteer.cap: max 10 → 6",
    ]
    same = runner.invoke(app, [*args[:3], args[2], *args[4:]])
    assert same.stdout.splitlines() == ["testcity@1+national@1 → testcity@1+national@1: no differences"]
    data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert [(c["section"], c["field"]) for c in data["changes"]] == [
        ("rulebook", "effective_from"),
        ("grades", "min"),
        ("rules", "label"),
        ("caps", "max"),
    ]
    assert data["rules"][0][:2] == ["changed", "volunteer"]


def test_explain_prints_values_and_the_cap(make_store, monkeypatch):
    """Attributes as `hours=1`, not `{'hours': 1}`; a capped entry says which cap took its points."""
    import socialcredit.cli

    monkeypatch.setattr(socialcredit.cli.out, "_width", 1000)  # a table's cells wrap to the width: give them room
    store = make_store()
    a = str(citizen(0)["citizen_id"])
    store.add_citizens([citizen(0)])
    store.ingest(
        [rec(f"v{i}", a, "volunteer_work", cst(2021, 2 + i, 1), hours=1) for i in range(3)],
        now=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    )
    store.close()
    r = runner.invoke(app, ["explain", a, "--db", str(store.path), "--as-of", "2021-12-01"])
    assert r.exit_code == 0, r.output
    assert "volunteer_work hours=1 record v2 by volunteer_association" in r.stdout
    assert "{" not in r.stdout and "'" not in r.stdout
    assert "capped by volunteer.cap (at most +10 gained a year): +5 → +0" in r.stdout
    assert r.stdout.count("capped by") == 1
