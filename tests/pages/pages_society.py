"""One small simulated society for the page tests (the fixtures in conftest build it once per session).

Why a simulated run and not hand-made rows: the pages show what the engine derived (grades, list stays,
decisions), so the test data comes through the one scoring path. The run ends at the start of next month,
so "now" falls inside its last simulated month and no page has to rerun the engine to catch up.

Shenzhen publishes billboards and station monitors. Rongcheng runs under rongcheng@1's rules (a
policy copy), which publish scores. A test layer `shenzhen@2` repeats shenzhen@1 with the jaywalker
screen list marked `public: false`, so a non-public list has members that no public page may show.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import yaml

from socialcredit.compiler import CST
from socialcredit.keys import create_key
from socialcredit.rulebook import shipped_dir
from socialcredit.simulate.run import run_scenario
from socialcredit.simulate.scenario import parse_scenario
from socialcredit.store import Store

HIDDEN_LIST = "sz_jaywalker_screen"


# only the layers the two cities stand on: every engine run resolves and compiles every city's rulebooks
LAYERS = ("national@1", "national@2", "guangdong@1", "shenzhen@1", "rongcheng@1", "rongcheng@2")


def scenario_text(start: dt.date) -> str:
    layers = ", ".join(str(shipped_dir() / f"{key}.yaml") for key in LAYERS)
    # court listings and camera-recorded red-light crossings far above their base rates, so a few hundred
    # citizens give a full billboard and a non-public list with members within two months
    return f"""\
name: pages
seed: 5
start: {start.isoformat()}
months: 2
cities:
  shenzhen: 220
  rongcheng: 180
policy:
  rongcheng: rongcheng@1
shipped_rulebooks: false
rulebooks: [{layers}, shenzhen@2.yaml]
rates:
  multipliers: {{court_defaulter_listing: 150, red_light_crossing: 8}}
services:
  rail.ticket: 0.05
  air.ticket: 0.05
"""


def hidden_layer() -> str:
    layer = yaml.safe_load((shipped_dir() / "shenzhen@1.yaml").read_text(encoding="utf-8"))
    layer.update(version=2, effective_from=dt.date(2020, 1, 1), notes="Test layer: the jaywalker screen is not public.")
    for x in layer["lists"]:
        if x["id"] == HIDDEN_LIST:
            x["public"] = False
    return yaml.safe_dump(layer, sort_keys=False, allow_unicode=True)


@dataclass(frozen=True)
class Society:
    store: Path
    tokens: dict[str, str]
    shamed: str  # the Shenzhen citizen on a public blacklist with the most records
    other: str  # another Shenzhen citizen
    hidden_only: list[str]  # Shenzhen citizens whose only stays today are on the non-public list
    rongcheng: str  # a Rongcheng citizen (scores published)


def build(base: Path) -> Society:
    """Simulate the society into `base` and make one key per role the tests use."""
    (base / "shenzhen@2.yaml").write_text(hidden_layer(), encoding="utf-8")
    today = dt.datetime.now(CST).date()
    start = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)  # last month: the run ends next month
    scenario = parse_scenario(scenario_text(start), str(base / "pages.yaml"))
    run_scenario(scenario, base / "run")
    path = base / "run" / "store.duckdb"
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with duckdb.connect(str(path), read_only=True) as con:
        current = """(SELECT ckey, list_id FROM list_entries WHERE start <= $now AND ("end" IS NULL OR "end" > $now))"""
        shamed = con.execute(
            f"""SELECT c.citizen_id FROM {current} e JOIN citizens c USING (ckey)
                WHERE c.city = 'shenzhen' AND e.list_id = 'dishonest_judgment_defaulters'
                ORDER BY (SELECT count(*) FROM records r WHERE r.ckey = c.ckey) DESC, c.citizen_id LIMIT 1""",
            {"now": now},
        ).fetchall()[0][0]
        other = con.execute(
            "SELECT citizen_id FROM citizens WHERE city = 'shenzhen' AND citizen_id <> ? ORDER BY citizen_id LIMIT 1",
            [shamed],
        ).fetchall()[0][0]
        hidden_only = [
            r[0]
            for r in con.execute(
                f"""SELECT c.citizen_id FROM {current} e JOIN citizens c USING (ckey) WHERE c.city = 'shenzhen'
                GROUP BY c.citizen_id HAVING bool_and(e.list_id = '{HIDDEN_LIST}') ORDER BY 1""",
                {"now": now},
            ).fetchall()
        ]
        rongcheng = con.execute(
            "SELECT citizen_id FROM citizens WHERE city = 'rongcheng' ORDER BY citizen_id LIMIT 1"
        ).fetchall()[0][0]
    store = Store(path)
    tokens = {
        "admin": create_key(store, "admin")[1],
        "citizen": create_key(store, "citizen", shamed)[1],
        "other": create_key(store, "citizen", other)[1],
        "service": create_key(store, "service", "rail")[1],
    }
    store.close()
    return Society(path, tokens, shamed, other, hidden_only, rongcheng)
