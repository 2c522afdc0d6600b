"""The demo's register shows published scores, as the seed describes the system ("the social credit scores
of Chinese citizens are made public"): once every row of `make demo`'s register said "does not publish
scores", since none of its cities' rulebooks in force in 2025 published them. Beijing's (beijing@2) does."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import yaml
from fastapi.testclient import TestClient

from socialcredit.api.app import create_app
from socialcredit.cli.demo import published_citizen, run_end
from socialcredit.rulebook import RulebookSet, shipped_layers
from socialcredit.simulate.run import run_scenario
from socialcredit.simulate.scenario import parse_scenario
from socialcredit.store import Store

DEMO = Path(__file__).resolve().parents[2] / "scenarios" / "demo-year.yaml"


def test_the_demo_has_a_city_whose_rulebook_publishes_scores() -> None:
    spec = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    rbs = RulebookSet(shipped_layers())
    start: dt.date = spec["start"]
    end = start.replace(
        year=start.year + (start.month - 1 + spec["months"]) // 12, month=(start.month - 1 + spec["months"]) % 12 + 1
    ) - dt.timedelta(days=1)
    publishing = {
        city
        for city in spec["cities"]
        for day in (start, end)
        if (rb := rbs.resolve(city, day)) is not None and rb.disclosure.publish_scores
    }
    assert publishing == {"beijing"}
    beijing = rbs.resolve("beijing", end)
    assert beijing is not None and all(r.source for r in beijing.rules)


def test_the_demo_register_shows_published_scores(tmp_path: Path) -> None:
    """`make demo`'s scenario, two months and a fortieth of its people, served as the demo serves it."""
    spec = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    spec["months"] = 2
    spec["cities"] = {city: max(n // 40, 5) for city, n in spec["cities"].items()}
    run_scenario(parse_scenario(yaml.safe_dump(spec), str(tmp_path / "demo-small.yaml")), tmp_path / "run")
    store = Store(tmp_path / "run" / "store.duckdb")
    at = run_end(store)
    scored = published_citizen(store, at)
    others = [
        cid
        for (cid,) in store.con.execute(
            "SELECT min(citizen_id) FROM citizens WHERE city <> 'beijing' GROUP BY city ORDER BY 1"
        ).fetchall()
    ]
    store.close()
    assert scored is not None and scored.startswith("110"), "a Beijing citizen, assessed by the end of the run"
    with TestClient(create_app(tmp_path / "run" / "store.duckdb", as_of=at)) as c:
        page = c.get("/register", params={"q": scored}).text
        assert re.search(r'class="num score">\d+<', page) and "does not publish scores" not in page
        assert "publishes scores" in c.get("/").text
        for cid in others:  # the other cities keep their scores to themselves
            assert "does not publish scores" in c.get("/register", params={"q": cid}).text
