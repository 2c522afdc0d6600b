"""`socialcredit report | compare | replay`: thin doors over the report package.

Each command parses its options, calls one core function and prints where the result went (`compare` also
prints who changes, so the terminal answers the question without opening the page). The shared
helpers (errors as exit status 2, the consoles) come from `socialcredit.cli.console`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from socialcredit.cli.console import JsonOpt, emit, guarded, progress_bar, working
from socialcredit.cli.console import out as console

RunArg = Annotated[Path, typer.Argument(help="a run directory (from `socialcredit simulate` or `replay`)")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="HTML file to write; figures go beside it as PNG")]


def report_command(
    run_dir: RunArg,
    out: OutOpt = None,
    interactive: Annotated[
        bool, typer.Option("--interactive", help="charts with hover and zoom (one inline script; nothing fetched)")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Write a self-contained HTML report of a run (and its figures as PNG files)."""
    from socialcredit.report.society import report

    @guarded
    def run() -> None:
        with working(f"drawing the report of {run_dir}"):
            written = report(run_dir, out, interactive)
        if json_out:
            emit({"report": str(written[0]), "figures": [str(p) for p in written[1:]]})
            return
        console.print(f"report: {written[0]} ({len(written) - 1} figures beside it as PNG)")

    run()


def compare_command(
    run_a: Annotated[Path, typer.Argument(help="the run to compare from (A)")],
    run_b: Annotated[Path, typer.Argument(help="the run to compare with (B): same population, other rules")],
    out: OutOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Compare two runs of the same population: who changes grade or list, and which rules drive it."""
    from dataclasses import asdict

    from socialcredit.report.compare import compare

    @guarded
    def run() -> None:
        with working(f"comparing {run_a} with {run_b}"):
            result = compare(run_a, run_b, out)
        if json_out:
            emit(
                {
                    "page": str(result.written[0]),
                    "figures": [str(p) for p in result.written[1:]],
                    "summary": {**asdict(result.summary), "text": str(result.summary)},
                }
            )
            return
        console.print(f"comparison: {result.written[0]} ({len(result.written) - 1} figures beside it as PNG)")
        console.print(f"{result.summary}")

    run()


def replay_command(
    run_dir: RunArg,
    rulebook: Annotated[str, typer.Option("--rulebook", help="CITY@VERSION whose rules every city of the run gets")],
    out: Annotated[
        Path | None, typer.Option("--out", help="directory for the replay (default RUN_DIR/replays/CITY@VERSION)")
    ] = None,
) -> None:
    """Replay a run's records and service attempts under another rulebook: counterfactual standings."""
    from socialcredit.report.replay import replay

    @guarded
    def run() -> None:
        with progress_bar() as bar:
            task = bar.add_task("copying the run", total=4)

            def step(label: str, done: int) -> None:
                bar.update(task, description=label, completed=done)

            result = replay(run_dir, rulebook, out, step)
        console.print(
            f"replayed {run_dir} under {rulebook}: {result.citizens:,} citizens, {result.decisions:,} decisions "
            f"re-decided ({result.changed_decisions:,} answered differently) in {result.seconds:.1f}s → "
            f"{result.out_dir}\ncompare with: socialcredit compare {run_dir} {result.out_dir}"
        )

    run()


def register(app: typer.Typer) -> None:
    """Add the three commands to the main app (called once from socialcredit.cli.app)."""
    app.command("report")(report_command)
    app.command("compare")(compare_command)
    app.command("replay")(replay_command)


__all__ = ["compare_command", "register", "replay_command", "report_command"]
