"""`make demo`: score the bundled sample and show standings, list entries and decisions with reasons."""

from __future__ import annotations

import datetime as dt

from rich.console import Console
from rich.table import Table

from socialcredit.decisions import decide, explain, standing
from socialcredit.engine import Engine
from socialcredit.sample import PEOPLE, citizen_ids
from socialcredit.store import Store

AT = dt.datetime(2026, 9, 1, 4, 0)  # noon CST on 1 September 2026: every sample record has happened
ASKS = [
    ("zhang_wei", "air.ticket"),
    ("zhang_xiaoming", "school.private_admission"),
    ("liu_yang", "bank.loan"),
    ("hu_yan", "rail.ticket"),
    ("zhao_lei", "air.ticket"),
    ("chen_jing", "hospital.queue"),
    ("wang_fang", "heating.billing"),
    ("ma_chao", "social.services"),
    ("guo_qiang", "publish.billboard"),
    ("lin_mei", "bank.loan"),
]


def main() -> None:
    out = Console()
    store = Store()
    summary = Engine(store).run(as_of=AT)
    out.print(
        f"[bold]socialcredit demo[/bold]: {summary.records} records → {summary.ledger_entries} ledger entries,"
        f" {summary.list_entries} list entries, {summary.assessments} monthly assessments "
        f"({summary.seconds:.1f}s)\n"
    )
    ids = citizen_ids()
    t = Table("citizen", "city", "score", "grade", "lists", "measures", title="standings on 2026-09-01 (CST)")
    for key, name, latin, *_ in PEOPLE:
        st = standing(store, ids[key], AT)
        t.add_row(
            f"{name} {latin}",
            st.city,
            str(st.score),
            st.grade or "—",
            ", ".join(e["list_id"] for e in st.list_entries) or "—",
            ", ".join(sorted({m.measure for m in st.measures})) or "—",
        )
    out.print(t)
    t = Table("citizen", "service", "outcome", "public reason", "why", title="automated decisions")
    for key, service in ASKS:
        d = decide(store, ids[key], service, AT, asked_by="demo")
        t.add_row(key, service, d.outcome, d.public_reason, "\n".join(r["via"] for r in d.reasons) or "—")
    out.print(t)
    x = explain(store, ids["zhang_wei"], AT)
    out.print(
        f"\n[bold]explain {x['name']}[/bold]: score {x['score']['value']} = base {x['score']['base']} "
        f"{x['score']['sum_of_entries']:+d} → grade {x['score']['grade']} under {x['rulebook_version']}"
    )
    for e in x["ledger"]:
        src = e.get("record") or {"behaviour": e.get("characteristic"), "record_id": "", "agency": e["source"]}
        rules = ", ".join(f"{r['id']} {r['points']:+d} [{r['source'][:40]}]" for r in e["rules"])
        out.print(f"  {e['points']:+5d}  {src['behaviour']} {src['record_id']} ({src['agency']}) ← {rules}")
    for e in x["list_entries"]:
        out.print(f"  on {e['list_id']} since {e['start'][:10]} because {e['cause']} {e['characteristic'] or ''}")
    out.print(
        "\nTry: socialcredit --help · socialcredit explain ID --db demo.duckdb · "
        "socialcredit rulebook diff shanghai@1 rongcheng@1"
    )
    store.close()


if __name__ == "__main__":
    main()
