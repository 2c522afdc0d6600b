"""The report tests' run: simulated once per session (a few seconds of engine per month), reported once."""

from __future__ import annotations

from pathlib import Path

import pytest

from .report_run import REPLAY, SCENARIO, invoke


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report")
    (base / "scenario.yaml").write_text(SCENARIO, encoding="utf-8")
    invoke("simulate", str(base / "scenario.yaml"), "--out", str(base / "run"))
    return base / "run"


@pytest.fixture(scope="session")
def report_html(run_dir: Path) -> Path:
    out = run_dir.parent / "out" / "report.html"
    invoke("report", str(run_dir), "--out", str(out))
    return out


@pytest.fixture(scope="session")
def replay_dir(run_dir: Path) -> Path:
    """The run replayed with every city under Shanghai's own rulebook (what `compare` sets beside it)."""
    out = run_dir.parent / "replay"
    invoke("replay", str(run_dir), "--rulebook", REPLAY, "--out", str(out))
    return out
