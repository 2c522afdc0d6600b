"""The remaining incentives: threshold behaviour, avoiding blacklisted contacts (the graph evolves in the
store and the network rule reads it), and policy comparison (same population and seed, two rulebooks)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from socialcredit.catalog import default_catalog
from socialcredit.cli import app
from socialcredit.engine import Engine
from socialcredit.simulate import generate_population
from socialcredit.simulate.behaviour import BehaviourRates, generate_records
from socialcredit.simulate.contacts import exposure
from socialcredit.simulate.incentives import near_threshold
from socialcredit.simulate.run import RunResult, run_scenario
from socialcredit.simulate.scenario import Scenario, parse_scenario
from socialcredit.store import Store
from socialcredit.yamlio import LocatedError

ROOT = Path(__file__).resolve().parents[2]
# Only the court list runs (the calibrated scenario's rulebook: one segment, so the engine is quick);
# listings far above their base rate give a tiny society many blacklisted citizens, and contacts of
# theirs, within a month; nobody repays, so lists only grow.
AVOID = """\
name: avoid
seed: 11
start: 2025-01-01
months: 3
cities:
  china: 700
rulebooks: [rulebooks/china@1.yaml]
shipped_rulebooks: false
rates:
  only: [court_defaulter_listing]
  multipliers: {{court_defaulter_listing: 400}}
incentives:
  repay_base: 0
  repay_when_sanctioned: 0
  settle_guarantee: 0
  deterrence: 1.0
  avoid_listed_contacts: {avoid}
  rewire: {rewire}
"""


def _scenario(text: str) -> Scenario:
    return parse_scenario(text, str(ROOT / "scenarios" / "test.yaml"))  # rulebook paths are relative to it


@pytest.fixture(scope="module")
def avoid_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    base = tmp_path_factory.mktemp("avoid")
    return {
        "avoid": run_scenario(_scenario(AVOID.format(avoid=1.0, rewire=0.5)), base / "avoid"),
        "stay": run_scenario(_scenario(AVOID.format(avoid=0, rewire=0)), base / "stay"),
    }


def _contacts(con: duckdb.DuckDBPyConnection) -> set[tuple[int, int]]:
    """The contact graph as it stands at the run's end: the ties still in force."""
    query = "SELECT ckey, other FROM relations WHERE kind = 'contact' AND valid_to IS NULL"
    return {(a, b) for a, b in con.execute(query).fetchall()}


def test_avoiding_listed_contacts_reshapes_the_graph_and_logs_every_change(avoid_runs: dict[str, RunResult]) -> None:
    run = avoid_runs["avoid"]
    series = pq.read_table(run.out_dir / "contacts.parquet").to_pylist()
    assert [r["month"] for r in series] == [dt.date(2025, m, 1) for m in (1, 2, 3)]
    assert series[0]["dropped"] == 0  # nobody is listed before the first month
    assert sum(r["dropped"] for r in series) > 0 and sum(r["added"] for r in series) > 0
    assert sum(r["added"] for r in series) < sum(r["dropped"] for r in series)  # rewire 0.5 of the drops
    assert not (run.out_dir / "../stay/contacts.parquet").exists()  # no avoidance, no series
    with duckdb.connect(str(run.out_dir / "store.duckdb"), read_only=True) as con:
        now = _contacts(con)
        changes = con.execute("SELECT month, ckey, other, change FROM contact_changes").fetchall()
    with duckdb.connect(str(avoid_runs["stay"].out_dir / "store.duckdb"), read_only=True) as con:
        before = _contacts(con)  # the same population and seed: the original graph
    assert all((b, a) in now for a, b in now)  # still symmetric
    dropped = {(a, b) for _, a, b, c in changes if c == "drop"}
    added = {(a, b) for _, a, b, c in changes if c == "add"}
    assert all(a < b for a, b in dropped | added)  # each tie logged once
    rebuilt = set(before)
    for month in sorted({m for m, *_ in changes}):  # replayed month by month: drops, then additions
        for m, a, b, change in changes:
            if m == month and change == "drop":
                rebuilt -= {(a, b), (b, a)}
        for m, a, b, change in changes:
            if m == month and change == "add":
                rebuilt |= {(a, b), (b, a)}
    assert rebuilt == now  # the log is the whole story of the graph
    assert len(dropped) == sum(r["dropped"] for r in series) and len(added) == sum(r["added"] for r in series)


def test_with_certain_avoidance_no_tie_to_a_listed_citizen_survives_the_month(avoid_runs: dict[str, RunResult]) -> None:
    run, stay = avoid_runs["avoid"], avoid_runs["stay"]
    march = dt.datetime(2025, 2, 28, 16)  # 1 March CST, naive UTC: the last month's start
    for r in (run, stay):
        with Store(r.out_dir / "store.duckdb") as store:
            listed = np.array(
                [
                    k
                    for (k,) in store.con.execute(
                        """SELECT DISTINCT ckey FROM list_entries WHERE kind = 'blacklist' AND start <= ?
                           AND ("end" IS NULL OR "end" > ?)""",
                        [march, march],
                    ).fetchall()
                ]
            )
            _, exposed, share = exposure(store, listed)
            if r is run:
                # listed citizens may still know each other, but nobody unlisted keeps a listed contact
                unlisted_exposed = store.con.execute(
                    "SELECT count(*) FROM relations WHERE kind = 'contact' AND valid_to IS NULL "
                    "AND other IN (SELECT unnest(?)) "
                    "AND ckey NOT IN (SELECT unnest(?))",
                    [listed.tolist(), listed.tolist()],
                ).fetchall()[0][0]
                assert unlisted_exposed == 0
                avoid_share = share
            else:
                assert exposed > 0
                assert share > avoid_share


# --------------------------------------------------------------------------- threshold behaviour


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A small city after three months of heavy behaviour: scores spread over several grades."""
    store = Store(Path(tmp_path_factory.mktemp("threshold")) / "t.duckdb")
    store.init()
    pop = generate_population({"rongcheng": 1500}, seed=4, start=dt.date(2025, 1, 1))
    store.add_population(pop.citizens, pop.relations)
    for month in (1, 2, 3):
        rates = BehaviourRates(scale=8.0)
        batch = generate_records(store, dt.date(2025, month, 1), rates, np.random.default_rng(month))
        store.ingest(batch, name=f"m{month}")
    Engine(store).run(as_of=dt.datetime(2025, 3, 31, 16, tzinfo=dt.UTC))
    return store


def test_near_threshold_is_just_above_a_grade_bound(scored: Store) -> None:
    at = dt.datetime(2025, 3, 31, 16)  # 1 April CST
    rb = scored.rulebooks().resolve("rongcheng", dt.date(2025, 4, 1))
    assert rb is not None
    bounds = sorted(g.min for g in rb.grades)
    last = dict(
        scored.con.execute(
            """SELECT c.citizen_id, arg_max(s.score, s.assessed_at) FROM citizens c JOIN score_log s USING (ckey)
               WHERE s.assessed_at <= ? GROUP BY c.citizen_id""",
            [at],
        ).fetchall()
    )
    ids = [r[0] for r in scored.con.execute("SELECT citizen_id FROM citizens").fetchall()]

    def expected(band: int) -> set[str]:
        out = set()
        for cid in ids:
            score = last.get(cid, rb.scale.base)
            bound = max(b for b in bounds if b <= score)
            if bound > bounds[0] and score - bound < band:
                out.add(cid)
        return out

    near = set(near_threshold(scored, at, 15).to_pylist())
    assert near == expected(15)
    assert 0 < len(near) < len(ids)
    assert set(near_threshold(scored, at, 40).to_pylist()) >= near
    assert near_threshold(scored, at, 0).to_pylist() == []


def test_cautious_citizens_behave_better(scored: Store) -> None:
    at = dt.datetime(2025, 3, 31, 16)
    near = near_threshold(scored, at, 40)
    undesirable = {c for c, b in default_catalog().behaviours.items() if b.polarity == "undesirable"}
    rates = BehaviourRates(scale=8.0)

    def bad_of_near(table: object) -> int:
        on = set(near.to_pylist())
        rows = zip(table["citizen_id"].to_pylist(), table["behaviour"].to_pylist(), strict=True)  # type: ignore[index]
        return sum(c in on and b in undesirable for c, b in rows)

    plain = generate_records(scored, dt.date(2025, 4, 1), rates, np.random.default_rng(9))
    careful = generate_records(scored, dt.date(2025, 4, 1), rates, np.random.default_rng(9), cautious=near, caution=0.3)
    assert bad_of_near(plain) > 100
    assert bad_of_near(careful) < 0.45 * bad_of_near(plain)  # expected 0.3×


def test_threshold_parameters_are_validated() -> None:
    text = AVOID.format(avoid=0, rewire=0) + "  threshold_band: 20\n  threshold_caution: 1.5\n"
    with pytest.raises(LocatedError, match=r"bad\.yaml:\d+: incentives\.threshold_caution"):
        parse_scenario(text, "bad.yaml")


# --------------------------------------------------------------------------- policy comparison

# Guarantee defaults count in Rongcheng, not in Shanghai (research §2; the rulebooks' notes): run the
# same Rongcheng society under its own rules and under Shanghai's.
POLICY = """\
name: policy
seed: 21
start: 2025-01-01
months: 1
cities:
  rongcheng: 600
rates:
  multipliers: {guarantee_default: 300}
"""


@pytest.fixture(scope="module")
def policy_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The scenario as written, and the same scenario with `--rulebook rongcheng=shanghai@1`."""
    base = tmp_path_factory.mktemp("policy")
    run_scenario(parse_scenario(POLICY, "p.yaml"), base / "own")
    result = CliRunner().invoke(
        app, ["simulate", str(_write(base / "p.yaml", POLICY)), "--out", str(base / "sh"), "--rulebook",
              "rongcheng=shanghai@1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return {"own": base / "own", "sh": base / "sh"}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _table(run: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(run / "store.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_two_policies_same_population_same_records(policy_runs: dict[str, Path]) -> None:
    own, sh = policy_runs["own"], policy_runs["sh"]
    citizens = "SELECT ckey, citizen_id, name, birth_date, city FROM citizens ORDER BY ckey"
    assert _table(own, citizens) == _table(sh, citizens)
    assert _table(own, "SELECT * FROM relations ORDER BY ALL") == _table(sh, "SELECT * FROM relations ORDER BY ALL")
    records = "SELECT record_id, ckey, bkey, occurred_at, amount FROM records ORDER BY rkey"
    assert _table(own, records) == _table(sh, records)  # no incentives: policy cannot feed back into behaviour


def test_policy_changes_the_rules_applied(policy_runs: dict[str, Path]) -> None:
    own, sh = policy_runs["own"], policy_runs["sh"]
    version = "SELECT DISTINCT version FROM score_log ORDER BY 1"
    assert [v for (v,) in _table(own, version)] == ["rongcheng@2+national@2"]  # Rongcheng's own rules in 2025
    assert [v for (v,) in _table(sh, version)] == ["rongcheng@3+national@2"]  # the copy: a new Rongcheng version
    origin = "SELECT origin, effective_from FROM rulebook_versions WHERE jurisdiction = 'rongcheng' AND version = 3"
    assert _table(sh, origin) == [("policy:rongcheng=shanghai@1", dt.date(2025, 1, 1))]
    guarantees = """SELECT count(*) FROM ledger l JOIN records r USING (rkey) JOIN behaviours b ON b.bkey = r.bkey
                    WHERE b.code = 'guarantee_default'"""
    assert _table(own, guarantees)[0][0] > 0  # Rongcheng counts acting as guarantor for a defaulter
    assert _table(sh, guarantees)[0][0] == 0  # Shanghai's rules do not
    total = "SELECT sum(s) FROM (SELECT arg_max(score, assessed_at) AS s FROM score_log GROUP BY ckey)"
    assert _table(own, total)[0][0] < _table(sh, total)[0][0]  # the same records cost less under Shanghai's rules


def test_bad_policies_fail_with_their_location(tmp_path: Path) -> None:
    with pytest.raises(LocatedError, match=r"bad\.yaml:9: policy: rongcheng: expected JURISDICTION@VERSION"):
        parse_scenario(POLICY + "policy: {rongcheng: shanghai}\n", "bad.yaml")
    with pytest.raises(LocatedError, match=r"bad\.yaml:9: policy\.beijing: not one of the scenario's cities"):
        parse_scenario(POLICY + "policy: {beijing: shanghai@1}\n", "bad.yaml")
    with pytest.raises(LocatedError, match="no rulebook atlantis@1 in the store"):
        run_scenario(parse_scenario(POLICY + "policy: {rongcheng: atlantis@1}\n", "p.yaml"), tmp_path / "r")
