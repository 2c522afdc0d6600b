"""`make demo`'s last step on a shrunken copy of its scenario: standings, decisions, keys, URLs, no server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from socialcredit.keys import list_keys
from socialcredit.simulate.run import run_scenario
from socialcredit.simulate.scenario import parse_scenario
from socialcredit.store import Store

ROOT = Path(__file__).resolve().parents[2]


def test_demo_prints_what_the_system_did_and_the_keys(tmp_path):
    spec = yaml.safe_load((ROOT / "scenarios" / "demo-year.yaml").read_text(encoding="utf-8"))
    spec["months"] = 3
    spec["cities"] = {city: n // 5 for city, n in spec["cities"].items()}
    spec.setdefault("rates", {})["multipliers"] = {"court_defaulter_listing": 60}
    run_scenario(parse_scenario(yaml.safe_dump(spec), "demo-small.yaml"), tmp_path / "run")
    r = subprocess.run(
        [sys.executable, "-m", "socialcredit.cli.demo", str(tmp_path / "run"), "--no-serve"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert r.returncode == 0, r.stderr
    for part in (
        "standings at",
        "automated decisions",
        "/blacklist/shenzhen",
        "/station/shenzhen",
        "/admin",
        "demo API keys",
        "sc_service_",
    ):
        assert part in r.stdout, part
    store = Store(tmp_path / "run" / "store.duckdb")
    roles = {k["role"] for k in list_keys(store)}
    store.close()
    assert roles >= {"admin", "auditor", "agency", "service"}
