"""The command line, the doors a person types at: one package, so no door imports another from outside it.

app         the commands over the core (store, engine, decisions, rulebooks, catalog, keys, audit, serve)
console     what every command shares: consoles, progress, errors as exit 2, opening the store
population  `socialcredit population …`
simulate    `socialcredit simulate`
report      `socialcredit report | compare | replay`
demo        `make demo`: a simulated year, served, with what to look at
reference   docs/cli.md, written from the app itself
"""

from socialcredit.cli.app import app
from socialcredit.cli.console import out

__all__ = ["app", "out"]
