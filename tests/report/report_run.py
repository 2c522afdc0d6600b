"""The small simulated run every report test reads, and the CLI as the tests drive it."""

from __future__ import annotations

from typer.testing import CliRunner

from socialcredit.cli import app

SCENARIO = """\
name: report-test
seed: 11
start: 2025-01-01
months: 3
cities:
  rongcheng: 350
  shanghai: 350
rates:
  scale: 2.0
  multipliers: {court_defaulter_listing: 150, smoking_on_train: 20, guarantee_default: 20}
services:
  rail.ticket: 0.08
  air.ticket: 0.04
  bank.loan: 0.02
  hotel.booking: 0.03
  school.private_admission: {rate: 0.1, for: children}
incentives:
  repay_base: 0.05
  repay_when_sanctioned: 0.2
  settle_guarantee: 0.1
  deterrence: 0.7
"""
# every city gets Shanghai's own rulebook: Shanghai's citizens keep their record points exactly
REPLAY = "shanghai@1"


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output
