"""`make demo`: show a simulated year — standings, decisions with their reasons, one explanation — then serve it.

Usage: python -m socialcredit.cli.demo RUN_DIR [--port 8000] [--no-serve]

RUN_DIR is a finished `socialcredit simulate` run. The demo creates one API key per role (printed once;
only digests are stored), prints what the system did to a few citizens chosen from the run (a Shenzhen
citizen on the billboard, a child reached by a parent's listing, someone on the honour roll), then starts
the service on 127.0.0.1 with its clock fixed at the run's last moment, so pages and decisions show the
simulated world as it stood then.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import sqlglot
from rich.table import Table
from rich.text import Text

from socialcredit import standings
from socialcredit.cli.console import out
from socialcredit.clock import CST, stored
from socialcredit.decisions import decide, standing
from socialcredit.engine.sql import fill
from socialcredit.explanations import explain
from socialcredit.keys import create_key
from socialcredit.store import Store


def run_end(store: Store) -> dt.datetime:
    """The last second of the run: the engine ran as of the first instant after its last month."""
    rows = store.con.execute("SELECT as_of FROM engine_run").fetchall()
    if not rows:
        raise SystemExit("the run has no engine run; is this a finished `socialcredit simulate` directory?")
    return rows[0][0] - dt.timedelta(seconds=1)


def pick(store: Store, where: str, at: dt.datetime) -> str | None:
    """The first citizen (earliest stay) on a list at `at` whose stay and registry entry meet `where` (a condition
    written here, in code, over `e` the stay and `c` the citizen)."""
    rows = store.con.execute(
        fill(ON_LIST, on=standings.stays_at(at), where=sqlglot.condition(where)).sql(standings.DIALECT)
    ).fetchall()
    return rows[0][0] if rows else None


ON_LIST = """SELECT c.citizen_id FROM __on AS e JOIN citizens AS c ON c.ckey = e.ckey
    WHERE $where ORDER BY e.start, c.citizen_id LIMIT 1"""
CHILDREN = """SELECT DISTINCT c.citizen_id, c.birth_date FROM relations AS r JOIN citizens AS c ON c.ckey = r.ckey
    JOIN __on AS e ON e.ckey = r.other WHERE r.kind = 'parent' ORDER BY c.birth_date DESC, c.citizen_id"""


def denied_child(store: Store, at: dt.datetime) -> str | None:
    """A child whom a parent's listing keeps out of a private school (not every city's lists reach children);
    the youngest first (a measure reaches a child only while a minor)."""
    query = fill(CHILDREN, on=standings.stays_at(at, "blacklist")).sql(standings.DIALECT)
    for cid, _ in store.con.execute(query).fetchall():
        if decide(store, cid, "school.private_admission", stored(at), record=False).outcome == "deny":
            return str(cid)
    return None


def population_cities(store: Store) -> list[str]:
    return [c for (c,) in store.con.execute("SELECT DISTINCT city FROM citizens ORDER BY city").fetchall()]


def published_citizen(store: Store, at: dt.datetime) -> str | None:
    """A citizen of a city whose rulebook in force at `at` publishes scores (Beijing's in the demo), assessed
    by then, for the register's example link; None where no city publishes them."""
    day = at.replace(tzinfo=dt.UTC).astimezone(CST).date()
    rbs = store.rulebooks()
    cities = [
        c
        for c in population_cities(store)
        if c in rbs.cities and (rb := rbs.resolve(c, day)) is not None and rb.disclosure.publish_scores
    ]
    rows = (
        store.con.execute(
            """SELECT c.citizen_id FROM citizens c WHERE c.city IN (SELECT unnest(?))
           AND EXISTS (SELECT 1 FROM score_log s WHERE s.ckey = c.ckey AND s.assessed_at <= ?)
           ORDER BY c.citizen_id LIMIT 1""",
            [cities, at],
        ).fetchall()
        if cities
        else []
    )
    return str(rows[0][0]) if rows else None


def keys(store: Store, listed: str | None) -> dict[str, str]:
    made = {
        "admin": create_key(store, "admin", label="demo")[1],
        "auditor": create_key(store, "auditor", label="demo")[1],
        "agency:commercial_banks": create_key(store, "agency", "commercial_banks", label="demo")[1],
        "service:rail": create_key(store, "service", "rail", label="demo")[1],
    }
    if listed:
        made[f"citizen:{listed}"] = create_key(store, "citizen", listed, label="demo")[1]
    return made


def show(store: Store, at: dt.datetime) -> str | None:
    people = {
        "on Shenzhen's billboard": pick(store, "c.city = 'shenzhen' AND e.kind = 'blacklist'", at),
        "court defaulter": pick(store, "e.list_id = 'dishonest_judgment_defaulters'", at),
        "child of a listed parent": denied_child(store, at),
        "on an honour roll": pick(store, "e.kind = 'whitelist'", at),
    }
    t = Table("who", "citizen", "city", "score", "grade", "lists", title=f"standings at {at:%Y-%m-%d} (end of run)")
    for role, cid in people.items():
        if cid is None:
            continue
        st = standing(store, cid, stored(at))
        t.add_row(
            role,
            f"{st.name} {cid}",
            st.city,
            str(st.score),
            st.grade or "—",
            ", ".join(e["list_id"] for e in st.list_entries) or "—",
        )
    out.print(t)
    t = Table("citizen", "service", "outcome", "public reason", title="automated decisions (not recorded)")
    for cid, service in [
        (people["on Shenzhen's billboard"], "rail.high_speed"),
        (people["court defaulter"], "air.ticket"),
        (people["child of a listed parent"], "school.private_admission"),
        (people["on an honour roll"], "hospital.queue"),
    ]:
        if cid is not None:
            d = decide(store, cid, service, stored(at), record=False)
            t.add_row(cid, service, d.outcome, d.public_reason)
    out.print(t)
    listed = people["on Shenzhen's billboard"] or people["court defaulter"]
    if listed:
        x = explain(store, listed, stored(at))
        out.print(
            Text.assemble(
                ("why", "bold"),
                f" {x['name']}: running score {x['score']['value']} = base "
                f"{x['score']['base']} {x['score']['sum_of_entries']:+d} → {x['score']['grade']} "
                f"under {x['rulebook_version']}",
            )
        )
        for e in x["ledger"][:8]:
            what = (e.get("record") or {}).get("behaviour") or e.get("characteristic")
            rules = ", ".join(f"{r['id']} [{(r['source'] or '')[:30]}]" for r in e["rules"])
            out.print(f"  {e['points']:+5d}  {what} ← {rules}")
        for e in x["list_entries"]:
            cause = e["behaviour"] or e["characteristic"]
            out.print(f"  on {e['list_id']} since {e['start'][:10]} ({e['cause']}: {cause})")
    return listed


def main() -> None:
    ap = argparse.ArgumentParser(description="Show a simulated run, then serve it.")
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--no-serve", action="store_true", help="print, create keys, and stop")
    a = ap.parse_args()
    db = a.run_dir / "store.duckdb"
    if not db.exists():
        raise SystemExit(f"{db}: no store; run `socialcredit simulate SCENARIO --out {a.run_dir}` first")
    store = Store(db)
    at = run_end(store)
    listed = show(store, at)
    made = keys(store, listed)
    city = (
        store.con.execute("SELECT c.city FROM citizens c WHERE c.citizen_id = ?", [listed]).fetchall()[0][0]
        if listed
        else "shenzhen"
    )
    others = len(population_cities(store)) - 1
    scored = published_citizen(store, at)
    store.close()
    base = f"http://{a.host}:{a.port}"
    out.print(Text.assemble("\n", ("pages", "bold")))
    register = ("register (a published score)", f"/register?q={scored}") if scored else ("register", "/register")
    for label, path in [
        ("dashboard", "/"),
        register,
        ("billboard", "/blacklist/shenzhen"),
        ("station monitor", "/station/shenzhen"),
        ("citizen (log in with its key)", f"/citizens/{listed}" if listed else "/login"),
        ("admin (log in with the admin key)", "/admin"),
        ("API docs", "/docs"),
    ]:
        out.print(f"  {label:<36} {base}{path}")
    report = a.run_dir / "report.html"
    if report.exists():
        out.print(f"  {'report of the run':<36} {report.resolve()}")
    out.print(Text.assemble("\n", ("demo API keys", "bold"), " (shown once; send as `Authorization: Bearer KEY`)"))
    for who, token in made.items():
        out.print(f"  {who:<28} {token}")
    body = f'{{"citizen_id": "{listed}", "service": "rail.ticket"}}'
    out.print(
        f"\n  e.g. curl -s -X POST {base}/api/v1/decisions -H 'Authorization: Bearer {made['service:rail']}' "
        f"-H 'Content-Type: application/json' -d '{body}'"
    )
    if a.no_serve:
        return
    from socialcredit.api.workers import READERS, serve_workers

    out.print(
        f"\nserving {db} at {base} with the clock at {at:%Y-%m-%d %H:%M} UTC ({city} and {others} other cities; "
        f"{READERS} readers beside one writer, so `socialcredit citizen ID --db {db}` works meanwhile); "
        "Ctrl-C stops"
    )
    serve_workers(db, a.host, a.port, at)


if __name__ == "__main__":
    main()
