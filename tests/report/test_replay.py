"""Replaying a run under a rulebook from another inheritance chain.

Why: a replay gives every city a new version copying the named city's layer, with that layer's parent. Qingzhen's
own layer extends the national one and removes national rules that Guangdong removes as well; when the copy of a
Guangdong city (Shenzhen, Guangzhou) made Qingzhen extend Guangdong, Qingzhen's earlier version was stacked on
Guangdong too and the replay failed ("remove.rules: nothing inherited has id 'visiting_parents'"), on the
`make demo` run. Each version keeps the parent it names: before the replay's first month Qingzhen is
qingzhen@1 on national, from it the copy on Guangdong.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from socialcredit.cli import app
from socialcredit.store import Store

SCENARIO = """\
name: replay-chains
seed: 3
start: 2025-01-01
months: 1
cities:
  qingzhen: 40
  rongcheng: 40
services:
  rail.ticket: 0.05
"""


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + result.stderr + repr(result.exception)
    return result.output


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("replay")
    (base / "scenario.yaml").write_text(SCENARIO, encoding="utf-8")
    invoke("simulate", str(base / "scenario.yaml"), "--out", str(base / "run"))
    return base / "run"


@pytest.mark.parametrize("spec", ["shenzhen@1", "guangzhou@1"])
def test_a_guangdong_city_replays_onto_qingzhen(run_dir: Path, spec: str) -> None:
    out = run_dir.parent / spec
    invoke("replay", str(run_dir), "--rulebook", spec, "--out", str(out))
    versions = json.loads((out / "run.json").read_text(encoding="utf-8"))["versions"]
    assert versions == {"qingzhen": "qingzhen@2", "rongcheng": "rongcheng@3"}
    with duckdb.connect(str(out / "store.duckdb"), read_only=True) as con:
        used = {v for (v,) in con.execute("SELECT DISTINCT version FROM score_log").fetchall()}
    assert used == {"qingzhen@2+guangdong@1+national@2", "rongcheng@3+guangdong@1+national@2"}
    with Store(out / "store.duckdb") as store:
        timeline = [rb.version for rb in store.rulebooks().timeline("qingzhen")]
        rongcheng = [rb.version for rb in store.rulebooks().timeline("rongcheng")]
    assert timeline == ["qingzhen@1+national@2", "qingzhen@2+guangdong@1+national@2"]
    # Rongcheng's own versions were never Guangdong's: before the replay they stay on the national layer
    assert rongcheng[:-1] and all("guangdong" not in v for v in rongcheng[:-1]), rongcheng
