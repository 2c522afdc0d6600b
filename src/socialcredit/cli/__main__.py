"""`python -m socialcredit.cli …`, as the `socialcredit` script."""

from socialcredit.cli.app import app

app()
