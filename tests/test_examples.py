"""The analyst's example (examples/analyst.py) runs as written: open a run, query the readable views, plot a
figure, compare two policies, ask about one citizen at the store's clock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_analyst_example_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MPLBACKEND": "Agg", "COLUMNS": "80"}
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "analyst.py"), str(tmp_path), "40"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("opened ") and "read-only" in lines[0] and "2025-03-31 16:00:00 UTC" in lines[0]
    assert any(ln.startswith("list stays: ") for ln in lines)
    assert (tmp_path / "blacklisted.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    asked = [ln for ln in lines if " as of 2025-03-31 16:00:00 UTC (store): " in ln]  # the store's clock
    assert asked and "air.ticket → " in asked[0]
    assert any(ln.startswith("compared: ") and "decisions answered differently" in ln for ln in lines)
    assert (tmp_path / "compare.html").exists()
