"""The command line's app: a thin door over the core (store, engine, decisions, rulebooks, catalog)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from socialcredit import decisions, explanations, standings, text
from socialcredit.catalog import default_catalog
from socialcredit.cli.console import (
    DbOpt,
    JsonOpt,
    TimeOpt,
    emit,
    err,
    fail,
    guarded,
    open_store,
    out,
    parse_time,
    progress_bar,
    working,
)
from socialcredit.cli.population import population_app
from socialcredit.cli.report import register as register_reports
from socialcredit.cli.simulate import simulate_command
from socialcredit.clock import cst
from socialcredit.engine import Engine
from socialcredit.rulebook import RulebookSet, dropped, json_schema, previous_version, shipped_layers, validate_files
from socialcredit.rulebook_diff import diff as rulebook_diff_of
from socialcredit.store import Store, default_path

app = typer.Typer(
    help="socialcredit: an inspectable social credit system on a simulated society.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
rulebook_app = typer.Typer(help="Validate, show, compare and load rulebooks.", no_args_is_help=True)
app.add_typer(rulebook_app, name="rulebook")
app.add_typer(population_app, name="population")
app.command("simulate")(simulate_command)
register_reports(app)  # report, compare, replay


@app.command()
@guarded
def init(db: DbOpt = None) -> None:
    """Create the store and load the shipped rulebooks."""
    store = open_store(db, must_exist=False)
    with working("creating the store and checking the shipped rulebooks"):
        store.init()
    out.print(
        f"store ready at {store.path} with {len(store.rulebooks().cities)} cities: "
        f"{', '.join(store.rulebooks().cities)}"
    )


@app.command()
@guarded
def citizens(file: Path, db: DbOpt = None) -> None:
    """Register citizens from a JSON Lines file (citizen_id, name, sex, birth_date, city, parents, spouse, contacts)."""
    store = open_store(db)
    rows = _read_jsonl(file)
    n = store.add_citizens(rows, source=str(file))
    out.print(f"registered {n} citizens")


def _read_jsonl(file: Path) -> list[dict[str, Any]]:
    if not file.exists():
        fail(f"{file}: no such file")
    rows = []
    for i, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            fail(f"{file}:{i}: not JSON: {e.msg}")
        if not isinstance(row, dict):
            fail(f"{file}:{i}: each line must be a JSON object")
        rows.append(row)
    return rows


@app.command()
@guarded
def ingest(file: Path, db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Append a batch of records (CSV, JSON Lines or Parquet); all valid or nothing is written."""
    store = open_store(db)
    with working(f"checking and storing {file}"):
        report = store.ingest(file)
    if json_out:
        emit(report.__dict__)
    else:
        out.print(
            f"accepted {report.accepted} records (batch {report.batch}); {report.duplicates} already stored, unchanged"
        )


@app.command("export-facts")
@guarded
def export_facts(
    to: Annotated[Path, typer.Option("--to", help="directory to write (new, empty, or an earlier export)")],
    db: DbOpt = None,
    rulebook: Annotated[str | None, typer.Option(help="a replay under CITY@VERSION[+PARENT@VERSION]")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the facts an engine run reads, and the compiled rulebooks, as Parquet (for a run on Spark)."""
    from socialcredit.engine.handover import export_facts as export

    manifest = export(open_store(db), to, rulebook)
    if json_out:
        emit({"to": str(to), "tables": dict(manifest.tables)})
        return
    out.print(f"exported {len(manifest.tables)} tables ({manifest.tables['records']} records) to {to}")


@app.command("import-derived")
@guarded
def import_derived(
    from_: Annotated[Path, typer.Option("--from", help="directory of a run's derived tables, as Parquet")],
    db: DbOpt = None,
) -> None:
    """Replace the store's derived tables with a run's from a Parquet directory: all of them or none."""
    from socialcredit.engine.handover import import_derived as bring_home

    manifest = bring_home(open_store(db), from_)
    out.print(f"imported {len(manifest.tables)} derived tables from {from_}")


@app.command()
@guarded
def score(
    db: DbOpt = None,
    as_of: TimeOpt = None,
    rulebook: Annotated[str | None, typer.Option(help="replay under CITY@VERSION[+PARENT@VERSION]")] = None,
    json_out: JsonOpt = False,
    engine: Annotated[str, typer.Option(help="duckdb (embedded) or spark (needs PySpark and Java 17)")] = "duckdb",
    master: Annotated[str, typer.Option(help="with --engine spark: local[N] or spark://HOST:PORT")] = "local[2]",
    full: Annotated[
        bool, typer.Option("--full", help="compute everything from the facts, keeping nothing of the last run")
    ] = False,
) -> None:
    """Run the engine: ledger, scores, grades, list entries, as of a time.

    A run keeps the last run's monthly assessments before the earliest record or relation change appended
    since (the same tables as a full run, at a month's cost); --full recomputes everything."""
    from socialcredit.engine.executors import spark_missing

    if engine not in ("duckdb", "spark"):
        fail(f"--engine {engine!r}: use duckdb or spark")
    if engine == "spark" and (why := spark_missing()):
        fail(why)
    store = open_store(db)
    with progress_bar() as bar:
        task = bar.add_task(f"scoring on {engine}", total=7)
        step = lambda stage, i, n: bar.update(task, description=stage, completed=i, total=n)  # noqa: E731
        if engine == "spark":
            from socialcredit.engine.executors.spark_run import score_on_spark

            summary = score_on_spark(store, master, parse_time(as_of), rulebook, step, full)
        else:
            summary = Engine(store).run(parse_time(as_of), pin=rulebook, progress=step, full=full)
    grades = [(city, g, n) for city, by in standings.grade_counts(store, summary.as_of).items() for g, n in by.items()]
    lists = standings.list_totals(store, summary.as_of)
    if json_out:
        emit({"summary": summary.__dict__, "grades": grades, "lists": lists})
        return
    out.print(
        f"scored {summary.records} records into {summary.ledger_entries} ledger entries; "
        f"{summary.assessments} monthly assessments; {summary.seconds:.1f}s"
        + (f"; kept the last run's assessments before {_cst(summary.resumed_from)} CST" if summary.resumed_from else "")
        + (
            f"; a replay under {summary.pin}: questions keep it until `score` runs without --rulebook"
            if summary.pin
            else ""
        )
    )
    t = Table("city", "grade", "citizens", title="latest assessed grade")
    for row in grades:
        t.add_row(*map(str, row))
    show(t)
    t = Table("list", "on it now", "stays ever", title="lists")
    for item in lists:
        t.add_row(*map(str, item))
    show(t)


@app.command()
@guarded
def citizen(citizen_id: str, db: DbOpt = None, as_of: TimeOpt = None, json_out: JsonOpt = False) -> None:
    """A citizen's standing: score, grade, list entries, active measures."""
    store = open_store(db, read=True)
    with working("reading the standing (the engine runs first if facts changed)"):
        st = decisions.standing(store, citizen_id, parse_time(as_of))
    if json_out:
        emit(st.to_json())
        return
    out.print(Text.assemble((st.name, "bold"), f" {st.citizen_id} · {st.city} · {when(st.as_of, st.clock)}"))
    out.print(Text.assemble("score ", (str(st.score), "bold"), " grade ", (str(st.grade), "bold"),
                            f" (published: the monthly assessment of {_cst(st.assessed_at)})",
                            f"; running score {st.running_score} under {st.rulebook_version}"))  # fmt: skip
    t = Table("list", "kind", "since", "until", "cause", title="list entries")
    for e in st.list_entries:
        t.add_row(e["list_id"], e["kind"], _cst(e["start"]), _cst(e["end"]), _cause(e))
    show(t)
    t = Table("measure", "effect", "services", "via", "until", title="active measures")
    for m in st.measures:
        t.add_row(m.measure, m.effect, ", ".join(m.services), m.via, _cst(m.until))
    show(t)


def show(table: Table) -> None:
    """A table, or one line saying it is empty (an empty grid reads as a rendering fault).

    On a narrow console a cell wraps (at spaces, or inside a word too long for its column) and is never cut
    with "…": a resident ID, a rule id or a source URL must reach the reader whole."""
    if table.row_count:
        for column in table.columns:
            column.overflow = "fold"
        out.print(table)
    else:
        out.print(f"{table.title}: none")


def when(t: dt.datetime, clock: str) -> str:
    """Which time an answer is for, and whose clock that is: `as of 2025-12-31 24:00 CST (the store's clock: its
    last engine run …)` — a question without --as-of is answered at the store's clock, never the wall clock."""
    return f"as of {_cst(t)} CST ({decisions.CLOCKS.get(clock, clock)})"


def _cst(t: dt.datetime | None) -> str:
    if t is None:
        return "—"
    return cst(t).strftime("%Y-%m-%d %H:%M")


def _utc(iso: str) -> dt.datetime:
    """An ISO UTC time from the JSON explanation ("…Z") as the naive UTC the store keeps."""
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).replace(tzinfo=None)


def _cst_day(iso: str | None) -> str:
    """An ISO UTC time from the JSON explanation as its CST calendar day."""
    if iso is None:
        return "never"
    return _cst(_utc(iso))[:10]


def _cause(e: dict[str, Any]) -> str:
    if e["cause"] == "grade":
        return f"grade {e['grade']} (score {e['score']})"
    if e["cause"] == "behaviour":
        return f"{e['behaviour']} record {e['record_id']} ({e['agency']})"
    return f"{e['characteristic']} (record {e['record_id']})"


@app.command()
@guarded
def explain(citizen_id: str, db: DbOpt = None, as_of: TimeOpt = None, json_out: JsonOpt = False) -> None:
    """Why: score → ledger entries → records and rules; list entries → cause; measures → list."""
    store = open_store(db, read=True)
    with working("explaining (the engine runs first if facts changed)"):
        x = explanations.explain(store, citizen_id, parse_time(as_of))
    if json_out:
        emit(x)
        return
    s = x["score"]
    out.print(
        Text.assemble(
            (x["name"], "bold"),
            f" {x['citizen_id']} · {x['city']} · {x['rulebook_version']} · {when(_utc(x['as_of']), x['clock'])}",
        )
    )
    out.print(
        f"running score {s['value']} = clamp(base {s['base']} + {s['sum_of_entries']} from the entries below, "
        f"{s['scale'][0] if s['scale'] else '?'}…{s['scale'][1] if s['scale'] else '?'}) → grade {s['grade']}; "
        f"published score {s['published']} (grade {s['published_grade']}, the monthly assessment of "
        f"{_cst_day(s['assessed_at'])})"
    )
    t = Table("points", "from", "rules", "valid", title="ledger entries in force")
    for e in x["ledger"]:
        if e["source"] == "record":
            r = e["record"]
            what = " ".join(
                w
                for w in (
                    r["behaviour"],
                    text.plain(r["attributes"]) if r["attributes"] else "",
                    f"record {r['record_id']} by {r['agency']}",
                )
                if w
            )
        else:
            what = f"{e['source']}: {e['characteristic']}"
        rules = "\n".join(
            [f"{r['id']} ({r['points']:+d}) when {r['when'] or 'always'} [{r['source']}]" for r in e["rules"]]
            + ([capped(e["cap"], e["points"])] if "cap" in e else [])
        )
        t.add_row(f"{e['points']:+d}", what, rules, f"{_cst_day(e['valid_from'])} → {_cst_day(e['valid_to'])}")
    show(t)
    t = Table("list", "since", "cause", title="list entries")
    for e in x["list_entries"]:
        t.add_row(e["list_id"], _cst_day(e["start"]), _cause(e))
    show(t)
    t = Table("measure", "effect", "via", title="measures")
    for m in x["measures"]:
        t.add_row(m["measure"], m["effect"], m["via"])
    show(t)


def capped(cap: dict[str, Any], points: int) -> str:
    """Why an entry has fewer points than its rules give: `capped by volunteer.cap (at most +10 gained a
    year): +5 → +0`."""
    bounds = [
        f"at most {cap['max']:+d} gained" if cap["max"] is not None else "",
        f"at most {cap['min']:+d} lost" if cap["min"] is not None else "",
    ]
    return (
        f"capped by {cap['id']} ({', '.join(b for b in bounds if b)} a {cap['per']}): "
        f"{cap['points_before_cap']:+d} → {points:+d}"
    )


@app.command()
@guarded
def decide(
    citizen_id: str,
    service: str,
    db: DbOpt = None,
    at: TimeOpt = None,
    json_out: JsonOpt = False,
    no_record: Annotated[
        bool,
        typer.Option(
            "--no-record", help="ask without recording the decision (works on a served store, through its snapshot)"
        ),
    ] = False,
) -> None:
    """Ask for an automated decision: may this citizen use this service? Recorded in the store, as a service
    provider's question is, unless --no-record (the library's `decide()` records only with record=True)."""
    store = open_store(db, read=no_record)
    with working("deciding (the engine runs first if facts changed)"):
        d = decisions.decide(store, citizen_id, service, parse_time(at, "--at"), record=not no_record)
    if json_out:
        emit(d.to_json())
        return
    colour = {"deny": "red", "allow": "green"}.get(d.outcome, "yellow")
    out.print(Text.assemble((d.outcome.upper(), colour), f" {service} for {citizen_id}: {d.public_reason}"))
    out.print(f"  {when(d.at, d.clock)}; rulebook {d.rulebook_version or 'none'}")
    for r in d.reasons:
        out.print(f"  · {r['measure']} ({r['effect']}) via {r['via']} since {_cst(r['since'])}")


@app.command()
def catalog(json_out: JsonOpt = False) -> None:
    """The catalog: behaviours, characteristics, measures, services, agencies."""
    c = default_catalog()
    if json_out:
        emit(c.model_dump())
        return
    t = Table("code", "label", "category", "polarity", "attributes", title="behaviours")
    for b in c.behaviours.values():
        t.add_row(b.code, b.label, b.category, b.polarity, ", ".join(b.attributes))
    show(t)
    t = Table("code", "label", "kind", "attributes", title="characteristics")
    for ch in c.characteristics.values():
        t.add_row(ch.code, ch.label, ch.kind, ", ".join(ch.attributes))
    show(t)
    t = Table("code", "kind", "effect", "services", "reach", title="measures")
    for m in c.measures.values():
        t.add_row(m.code, m.kind, m.effect, ", ".join(m.services), m.reach)
    show(t)
    t = Table("code", "name", "kind", "may report", title="agencies")
    for a in c.agencies.values():
        t.add_row(a.code, a.name, a.kind, ", ".join(a.behaviours))
    show(t)


@rulebook_app.command("validate")
@guarded
def rulebook_validate(files: list[Path], json_out: JsonOpt = False) -> None:
    """Check rulebook files (with the shipped rulebooks they extend); every error at once, as file:line: message.

    A version file is a complete rulebook: a warning names every rule, cap, list or memory the previous
    version of its jurisdiction had and this one drops."""
    layers, warnings = validate_files(files)
    if json_out:
        emit(
            {
                "ok": True,
                "warnings": warnings,
                "versions": [
                    {
                        "key": x.key,
                        "jurisdiction": x.jurisdiction,
                        "version": x.version,
                        "effective_from": x.effective_from.isoformat(),
                        "rules": len(x.rules),
                    }
                    for x in layers
                ],
            }
        )
        return
    for w in warnings:
        err.print(Text.assemble(("warning:", "yellow"), " ", w))
    out.print(f"ok: {', '.join(x.key for x in layers)}")


@rulebook_app.command("show")
@guarded
def rulebook_show(city: str, db: DbOpt = None, at: TimeOpt = None, json_out: JsonOpt = False) -> None:
    """The resolved rulebook of a city (inheritance applied) in force at a time."""
    rbs = open_store(db, read=True).rulebooks() if (db or default_path()).exists() else RulebookSet(shipped_layers())
    when = parse_time(at, "--at")
    day = cst(when).date() if when else None
    rb = rbs.resolve(city, day)
    if rb is None:
        fail(f"no rulebook of {city} is in force then")
    assert rb is not None
    if json_out:
        emit(
            {
                "version": rb.version,
                "scale": rb.scale.model_dump(),
                "grades": [g.model_dump() for g in rb.grades],
                "disclosure": rb.disclosure.model_dump(),
                "rules": [r.model_dump() for r in rb.rules],
                "caps": [c.model_dump() for c in rb.caps],
                "lists": [x.model_dump(by_alias=True) for x in rb.lists],
                "memory": [m.model_dump() for m in rb.memory],
            }
        )
        return
    out.print(
        Text.assemble(
            (rb.name, "bold"),
            f" {rb.version}, in force from {rb.effective_from}; scale {rb.scale.min}–{rb.scale.max}, "
            f"base {rb.scale.base}; {len(rb.rules)} rules",
        )
    )
    t = Table("rule", "on", "when", "points", "expires", "source", title="rules")
    for r in rb.rules:
        t.add_row(
            r.id,
            r.behaviour or r.characteristic or "",
            r.when or "always",
            f"{r.points:+d}",
            r.valid_for or "never",
            r.source,
        )
    show(t)
    t = Table("list", "kind", "grades", "triggers", "measures", title="lists")
    for x in rb.lists:
        t.add_row(
            x.id,
            x.kind,
            ", ".join(x.grades),
            ", ".join(tr.behaviour or tr.characteristic or "" for tr in x.triggers),
            ", ".join(m.measure + (f" ({m.for_})" if m.for_ else "") for m in x.list_measures()),
        )
    show(t)


@rulebook_app.command("diff")
@guarded
def rulebook_diff(a: str, b: str, db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Differences between two resolved versions, e.g. `rongcheng@1 rongcheng@2` or `shanghai@1 shenzhen@1`."""
    rbs = open_store(db, read=True).rulebooks() if (db or default_path()).exists() else RulebookSet(shipped_layers())
    books = []
    for spec in (a, b):
        city, pin = rbs.parse_version(spec)
        rb = rbs.resolve(city, None, pin)
        if rb is None:
            fail(f"{spec}: does not resolve")
        books.append(rb)
    d = rulebook_diff_of(books[0], books[1])
    if json_out:
        emit(d)
        return
    n = len(d["changes"])
    out.print(f"{d['a']} → {d['b']}: " + (f"{n} difference{'s' if n != 1 else ''}" if n else "no differences"))
    for c in d["changes"]:
        out.print(change_line(c))


def change_line(c: dict[str, Any]) -> Text:
    """One difference as a line: `caps volunteer.cap: max 24 → 6`, `rules rc.x: added (behaviour=… points=5 …)`."""
    where = c["section"] + (f" {c['id']}" if c["id"] is not None else "")
    if c["change"] == "changed":
        return Text(f"{where}: {c['field']} {text.plain(c['before'])} → {text.plain(c['after'])}")
    colour = "green" if c["change"] == "added" else "red"
    return Text.assemble(f"{where}: ", (c["change"], colour), f" ({text.plain(c['before'] or c['after'])})")


@rulebook_app.command("load")
@guarded
def rulebook_load(
    file: Path,
    db: DbOpt = None,
    backdate: Annotated[
        bool, typer.Option(help="allow an effective date before the store's today: past records are rescored under it")
    ] = False,
) -> None:
    """Add a rulebook version to the store (checked against everything stored).

    As in the admin API, a date before the store's today (its last engine run, else the real today) is
    refused unless --backdate says the retroactive rescoring is meant."""
    from socialcredit.engine import run_state
    from socialcredit.impact import schedule

    store = open_store(db)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        fail(f"{file}: cannot read: {e}")
    last, _, _ = run_state(store)
    with working(f"checking {file} against every version stored"):
        layer = schedule(store, text, str(file), last, backdate)
    kept = [v for versions in store.rulebooks().layers.values() for v in versions]
    if (prev := previous_version(layer, kept)) is not None:
        for w in dropped(layer, prev):
            err.print(Text.assemble(("warning:", "yellow"), " ", w))
    out.print(f"loaded {layer.key}, in force from {layer.effective_from}")


@rulebook_app.command("schema")
def rulebook_schema() -> None:
    """Print the JSON Schema of the rulebook format (generated from the models)."""
    sys.stdout.write(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n")


@app.command()
@guarded
def sample(db: DbOpt = None) -> None:
    """Load the bundled sample: a few citizens per city and hand-written records."""
    from socialcredit.sample import load_sample

    store = open_store(db, must_exist=False)
    with working("loading the sample"):
        store.init()
        n_citizens, report = load_sample(store)
    out.print(f"sample loaded: {n_citizens} citizens, {report.accepted} records ({report.duplicates} already there)")


@app.command("export")
@guarded
def export_command(
    source: Annotated[Path, typer.Argument(help="a run directory (its store and report) or a store file")],
    to: Annotated[Path, typer.Option("--to", help="directory to write into (made if missing)")],
    fmt: Annotated[
        str, typer.Option("--format", help="parquet (typed) or csv (lists and structs as JSON)")
    ] = "parquet",
    json_out: JsonOpt = False,
) -> None:
    """Write the main tables (readable: resident IDs, cities, behaviours, CST times) and, for a run, every
    report figure's data, named as in the report, with a manifest.json saying what each file is."""
    from socialcredit.export import export

    with progress_bar() as bar:
        task = bar.add_task("exporting", total=None)
        done = export(source, to, fmt, lambda what, i, n: bar.update(task, description=what, completed=i, total=n))
    if json_out:
        emit({"out": str(done.out), **done.manifest()})
        return
    files = len(done.tables) + sum(len(f["files"]) for f in done.figures)
    out.print(
        f"exported {len(done.tables)} tables and the data of {len(done.figures)} figures ({files} {fmt} files) "
        f"to {done.out}; what each file is: {done.out / 'manifest.json'}"
    )
    if done.note:
        out.print(done.note)


# ---------------------------------------------------------------------------------------------- service

keys_app = typer.Typer(
    help="API keys for the HTTP service (stored hashed; a token is shown once).", no_args_is_help=True
)
audit_app = typer.Typer(
    help="The hash-chained audit trail of every write and every read of a citizen's data.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")


@keys_app.command("create")
@guarded
def keys_create(
    role: Annotated[str, typer.Option(help="admin, agency, service, citizen or auditor")],
    subject: Annotated[
        str | None, typer.Option(help="agency code, service provider (rail, air …) or resident ID")
    ] = None,
    label: Annotated[str, typer.Option(help="a note for whoever lists the keys")] = "",
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create an API key for one principal; prints the token once (only its SHA-256 digest is stored)."""
    from socialcredit.keys import create_key

    key_id, token = create_key(open_store(db), role, subject, label)
    if json_out:
        emit({"key_id": key_id, "role": role, "subject": subject, "token": token})
    else:
        out.print(f"key {key_id} for {role}{':' + subject if subject else ''}: {token}")


@keys_app.command("list")
@guarded
def keys_list(db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Every key's id, principal and dates (never the token)."""
    from socialcredit.keys import list_keys

    rows = list_keys(open_store(db, read=True))
    if json_out:
        emit(rows)
        return
    t = Table("key", "role", "subject", "created", "revoked", "label")
    for r in rows:
        t.add_row(*(str(r[k] or "") for k in ("key_id", "role", "subject", "created_at", "revoked_at", "label")))
    show(t)


@keys_app.command("revoke")
@guarded
def keys_revoke(key_id: str, db: DbOpt = None) -> None:
    """Revoke a key: requests with it are refused from now on."""
    from socialcredit.keys import revoke_key

    revoke_key(open_store(db), key_id)
    out.print(f"key {key_id} revoked")


@audit_app.command("verify")
@guarded
def audit_verify(
    against: Annotated[
        str | None, typer.Option(help="a checkpoint from `audit head`: also prove nothing up to it changed")
    ] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Walk the hash chain; exit 1 and name every altered, removed or reordered entry."""
    from socialcredit.audit import BadCheckpoint, Checkpoint, verify

    try:
        checkpoint = Checkpoint.parse(against) if against is not None else None
    except BadCheckpoint as e:
        fail(str(e))
    with working("walking the audit trail"):
        v = verify(open_store(db, read=True), checkpoint)
    if json_out:
        extra = {"against": str(checkpoint)} if checkpoint else {}
        emit({"ok": v.ok, "entries": v.entries, "problems": v.problems, **extra})
    elif v.ok:
        matched = f"; entry {checkpoint.seq} matches the checkpoint" if checkpoint else ""
        out.print(f"audit trail intact: {v.entries} entries, every hash and link checks{matched}", highlight=False)
    else:
        for p in v.problems:
            err.print(Text(p, "red"))
    if not v.ok:
        raise typer.Exit(1)


@audit_app.command("head")
@guarded
def audit_head(db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Print a checkpoint of the last entry, to keep outside the store.

    `audit verify --against` it later proves nothing up to it changed, which the store alone cannot prove
    (whoever holds it can rewrite the trail whole). Exit 1, and no checkpoint, if the trail does not verify.
    """
    from socialcredit.audit import verify

    v = verify(open_store(db, read=True))
    if v.head is None:
        for p in v.problems:
            err.print(Text(p, "red"))
        raise typer.Exit(1)
    if json_out:
        emit({"checkpoint": str(v.head), "seq": v.head.seq, "hash": v.head.hash, "entries": v.entries})
    else:
        out.print(str(v.head), markup=False, highlight=False, soft_wrap=True)  # one line, whatever the width


@audit_app.command("show")
@guarded
def audit_show(
    citizen: Annotated[str | None, typer.Option(help="only entries about this resident ID")] = None,
    limit: int = 50,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The latest audit entries (who did what, to whose data)."""
    from socialcredit.audit import AuditTrail

    trail = AuditTrail(open_store(db, read=True))
    total = trail._seq
    rows = trail.entries(citizen, limit, after=0 if citizen else max(0, total - limit))
    if json_out:
        emit(rows)
        return
    t = Table("seq", "at (UTC)", "principal", "action", "citizen", "detail")
    for r in rows:
        t.add_row(
            str(r["seq"]), str(r["logged_at"])[:19], r["principal"], r["action"], r["citizen_id"] or "", r["detail"]
        )
    show(t)


@app.command()
@guarded
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    as_of: Annotated[
        str | None, typer.Option(help="fix the service's clock, e.g. the last day of a simulated run (default: now)")
    ] = None,
    db: DbOpt = None,
    readers: Annotated[
        int,
        typer.Option(
            min=0,
            max=64,
            help="reader processes answering from published snapshots beside the one writer "
            "(0: one process does everything, behind one lock)",
        ),
    ] = 2,
) -> None:
    """Start the HTTP API (/api/v1, OpenAPI at /docs) and the pages on the store.

    The store stays usable while served: read commands (citizen, explain, decide --no-record, audit verify,
    rulebook show, report) read the snapshot the server publishes once the changes pause."""
    from socialcredit.api.app import create_app
    from socialcredit.api.app import serve as run_server

    path = db or default_path()
    if not path.exists():
        fail(f"{path}: no store here; run `socialcredit init` first (or pass --db)")
    clock = parse_time(as_of)
    where = f"serving {path} on http://{host}:{port}/ (API docs at http://{host}:{port}/docs)" + (
        f", clock fixed at {as_of}" if clock else ""
    )
    if readers == 0:
        served = create_app(path, as_of=clock)  # opens the store: one held elsewhere fails here, before "serving"
        out.print(where)
        run_server(served, host, port)
        return
    from socialcredit.api.workers import serve_workers

    Store(path).close()  # one held elsewhere fails here, with the holder named, before "serving"
    out.print(f"{where}; {readers} readers beside one writer")
    serve_workers(path, host, port, clock, readers)


@app.command()
@guarded
def compact(db: DbOpt = None) -> None:
    """Rewrite the records table in citizen order (contents unchanged): the engine reads each citizen together."""
    import time

    store = open_store(db)
    t = time.perf_counter()
    with working("rewriting the records in citizen order"):
        done = store.compact()
    out.print(
        f"records {'rewritten in citizen order' if done else 'already in citizen order'} "
        f"({time.perf_counter() - t:.1f} s)"
    )


if __name__ == "__main__":
    app()
