"""Replay a run under another rulebook: "what if this population had lived under Shenzhen's rules?"

How: the run's store is copied to a new run directory, and every city of the population gets one new
rulebook version whose content is the named city layer (its rules, caps, lists, memory, scale, grades and
disclosure, extending what that layer extends), effective from the run's first month. Nothing in the copy
is edited in place — the cities' own versions stay, and every ledger entry and decision names the version
it used (`shanghai@2` = "Shanghai under shenzhen@1's rules", as the run's `run.json` says). The one engine
path then rescores the same records, and every service attempt of the run is asked again, at the same
simulated time, through the decision path (`decisions.decide_many`), so the replay's decisions are what
the system would have answered.

What a replay holds fixed, by design: the records. Citizens' responses to their standing (repaying,
settling, behaving better while listed) are kept as they happened under the original rules; a replay
answers "same lives, other rules", not "other rules, other lives" (that is a new simulated run with a
policy, which `compare` reads just as well).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from socialcredit import decisions
from socialcredit.clock import stored
from socialcredit.engine import Engine
from socialcredit.report.rundir import CST_OFFSET_HOURS, RunDir
from socialcredit.rulebook import parse_layer
from socialcredit.store import Store
from socialcredit.store.decisions import forget_decisions
from socialcredit.yamlio import LocatedError

Step = Callable[[str, int], None]  # (what is being done, steps done of 4)


@dataclass
class ReplayResult:
    out_dir: Path
    rulebook: str
    citizens: int
    decisions: int
    changed_decisions: int
    seconds: float


def default_out(run_dir: Path, spec: str) -> Path:
    return Path(run_dir) / "replays" / spec


def replay(run_dir: Path, spec: str, out: Path | None = None, progress: Step | None = None) -> ReplayResult:
    """Copy `run_dir` to `out` (default RUN_DIR/replays/SPEC) and rescore it under `spec` (CITY@VERSION)."""
    began = time.perf_counter()
    step = progress or (lambda *_: None)
    with RunDir.open(run_dir) as src:
        first_month, as_of, meta = src.first_month, src.as_of, dict(src.meta)
    out = Path(out) if out is not None else default_out(run_dir, spec)
    if (out / "store.duckdb").exists():
        raise LocatedError(f"{out}: already holds a run (store.duckdb); choose a new --out directory")
    out.mkdir(parents=True, exist_ok=True)
    step("copying the run", 0)
    shutil.copyfile(Path(run_dir) / "store.duckdb", out / "store.duckdb")
    if (Path(run_dir) / "scenario.yaml").exists():  # the Parquet series describe the original run: not copied
        shutil.copyfile(Path(run_dir) / "scenario.yaml", out / "scenario.yaml")
    store = Store(out / "store.duckdb")
    try:
        step("adding the rulebook to every city", 1)
        versions = install(store, spec, first_month, as_of)
        step("rescoring (engine)", 2)
        Engine(store).run(as_of=stored(as_of))
        step("asking every service attempt again", 3)
        asked, changed, outcomes = redecide(store)
        citizens = int(store.con.execute("SELECT count(*) FROM citizens").fetchall()[0][0])
        records = int(store.con.execute("SELECT count(*) FROM records").fetchall()[0][0])
    except BaseException:
        store.close()
        shutil.rmtree(out, ignore_errors=True)  # a half-made replay must not pass for a finished one
        raise
    store.close()
    seconds = time.perf_counter() - began
    (out / "run.json").write_text(
        json.dumps(
            {
                "scenario": meta.get("scenario"),
                "seed": meta.get("seed"),
                "start": str(first_month),
                "months": meta.get("months"),
                "citizens": citizens,
                "records": records,
                "decisions": outcomes,
                "replay_of": str(run_dir),
                "rulebook": spec,
                "versions": versions,
                "changed_decisions": changed,
                "timings": {"total_seconds": round(seconds, 3)},
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    step("done", 4)
    return ReplayResult(out, spec, citizens, asked, changed, seconds)


def install(store: Store, spec: str, first_month: dt.date, as_of: dt.datetime) -> dict[str, str]:
    """Give every city of the population a new version copying layer `spec`; return city → new version key."""
    rulebooks = store.rulebooks()
    city, pin = rulebooks.parse_version(spec)
    found = store.con.execute(
        "SELECT text FROM rulebook_versions WHERE jurisdiction = ? AND version = ?", [city, pin[city]]
    ).fetchall()
    if not found:
        stored = store.con.execute("SELECT jurisdiction, version FROM rulebook_versions ORDER BY 1, 2").fetchall()
        have = [f"{j}@{v}" for j, v in stored]
        raise LocatedError(f"--rulebook {spec}: no {city}@{pin[city]} in the run's store (it has {', '.join(have)})")
    text = found[0][0]
    layer = parse_layer(text, f"{city}@{pin[city]}")
    if layer.level != "city":
        raise LocatedError(f"--rulebook {spec}: {city} is a {layer.level} layer; a replay takes a city's rulebook")
    _check_parent_pins(store, spec, {j: v for j, v in pin.items() if j != city}, first_month, as_of)
    data = yaml.safe_load(text)
    out: dict[str, str] = {}
    cities = [c for (c,) in store.con.execute("SELECT DISTINCT city FROM citizens ORDER BY 1").fetchall()]
    for target in cities:
        own = rulebooks.layers[target]
        version = max(x.version for x in own) + 1
        region = next((x.region_code for x in reversed(own) if x.region_code), None)
        copy = {
            **data,
            "jurisdiction": target,
            "name": f"{own[-1].name} under {spec}",
            "version": version,
            "effective_from": first_month,
            "region_code": region,
        }
        if region is None:
            copy.pop("region_code")
        header = f"# Replay: {target}'s citizens under {spec}'s rules, from {first_month} (socialcredit replay).\n"
        store.add_rulebook(
            header + yaml.safe_dump(copy, sort_keys=False, allow_unicode=True), f"replay:{spec}:{target}@{version}"
        )
        out[target] = f"{target}@{version}"
    return out


def _check_parent_pins(
    store: Store, spec: str, parents: dict[str, int], first_month: dt.date, as_of: dt.datetime
) -> None:
    """Parents stay on their own timelines in a replay; a pin must name the version in force all run long."""
    last_day = (as_of + dt.timedelta(hours=CST_OFFSET_HOURS)).date() - dt.timedelta(days=1)
    for jurisdiction, version in parents.items():
        in_force = {
            v
            for (v,) in store.con.execute(
                """SELECT version FROM rulebook_versions WHERE jurisdiction = $j AND effective_from <= $last
                   AND version >= coalesce((SELECT max(version) FROM rulebook_versions WHERE jurisdiction = $j
                                            AND effective_from <= $first), 0)""",
                {"j": jurisdiction, "first": first_month, "last": last_day},
            ).fetchall()
        }
        if in_force != {version}:
            shown = ", ".join(f"{jurisdiction}@{v}" for v in sorted(in_force)) or "none"
            raise LocatedError(
                f"--rulebook {spec}: a replay keeps parent rulebooks on their own dates; {jurisdiction}@{version} "
                f"is not the only version in force during the run ({shown}); leave the parent out of the pin"
            )


def redecide(store: Store) -> tuple[int, int, dict[str, int]]:
    """Ask every recorded service attempt again under the replay's rules; (asked, changed, outcome counts)."""
    rows = store.con.execute(
        """SELECT d.decision_id, c.citizen_id, d.service, d.asked_at, d.asked_by, d.outcome
           FROM decisions d JOIN citizens c USING (ckey) ORDER BY d.decision_id"""
    ).fetchall()
    forget_decisions(store)
    changed = 0
    counts: dict[str, int] = {}
    start = 0
    while start < len(rows):  # one batch per run of the same asker, so the decisions keep their order
        end = start
        while end < len(rows) and rows[end][4] == rows[start][4]:
            end += 1
        batch = rows[start:end]
        answers = decisions.decide_many(
            store, [(cid, s, stored(at)) for _, cid, s, at, _, _ in batch], asked_by=batch[0][4], record=True
        )
        for old, new in zip(batch, answers, strict=True):
            changed += old[5] != new.outcome
            counts[new.outcome] = counts.get(new.outcome, 0) + 1
        start = end
    return len(rows), changed, dict(sorted(counts.items()))


__all__ = ["ReplayResult", "default_out", "install", "redecide", "replay"]
