"""What every command of the command line shares: the consoles, progress, errors as exit status 2, times as
options, opening the store (or the snapshot of a served one) and closing it when the command returns.

A module of its own so that the sub-apps (`population`, `simulate`, `report`) import it rather than the
main app, which imports them: no import circle.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from socialcredit import text
from socialcredit.clock import stored, to_utc
from socialcredit.store import BatchRejected, Store, StoreLocked, default_path
from socialcredit.yamlio import LocatedError


def console(stderr: bool = False) -> Console:
    """A console that prints text as it is: names, paths and error messages come from data and users, so
    `[x]` in them is never read as Rich markup nor `:x:` as an emoji code (styles are given as `Text`), and a
    line is never wrapped by Rich, so a path or an identifier reaches a pipe or a narrow terminal whole.
    Tables still lay themselves out to the terminal's width (or $COLUMNS)."""
    return Console(stderr=stderr, markup=False, emoji=False, highlight=False, soft_wrap=True)


out = console()
err = console(stderr=True)


@contextlib.contextmanager
def working(what: str) -> Iterator[None]:
    """A transient spinner on stderr while a command works (the engine may run first, a report draws its
    figures): a command that can take seconds never sits silent. Nothing of it reaches stdout or a pipe."""
    with progress_bar() as bar:
        bar.add_task(what, total=None)
        yield


def progress_bar(*columns: ProgressColumn) -> Progress:
    """A transient bar on stderr; its descriptions (stage, city and partition names) are shown as they are."""
    return Progress(
        TextColumn("{task.description}", markup=False), BarColumn(), *columns, TimeElapsedColumn(),
        console=err, transient=True,
    )  # fmt: skip


DbOpt = Annotated[
    Path | None, typer.Option("--db", help="DuckDB file (default: $SOCIALCREDIT_DB or ./socialcredit.duckdb)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
TimeOpt = Annotated[
    str | None,
    typer.Option(
        help="a time, ISO 8601; without an offset it is China Standard Time; from 1950-01-01 to 31 days past the "
        "store's last run or today (a `score` run: ten years)"
    ),
]


def fail(message: str) -> NoReturn:
    err.print(Text.assemble(("error:", "red"), " ", message))
    raise typer.Exit(2)


def parse_time(text: str | None, option: str = "--as-of") -> dt.datetime | None:
    if text is None:
        return None
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(f"{text!r} is not a time (use ISO 8601, e.g. 2020-01-31 or 2020-01-31T12:00+08:00)")
        raise
    # without an offset: CST, by the library's own rule (socialcredit.clock.to_utc), so the CLI and the library
    # answer the same time; the bounds are the core's too (year 1 is refused, not an OverflowError)
    return stored(to_utc(t, option))


_opened: list[Store] = []  # the stores the running command opened; `guarded` closes them when it returns
_depth = [0]  # guarded commands running (one calling another closes nothing until the outer one returns)


def open_store(db: Path | None, must_exist: bool = True, read: bool = False) -> Store:
    """The store, read-write; for a `read` command, the snapshot `socialcredit serve` published of it if the
    server holds it (read-only: a question the snapshot cannot answer says so)."""
    path = db or default_path()
    if must_exist and not path.exists():
        fail(f"{path}: no store here; run `socialcredit init` first (or pass --db)")
    try:
        store = Store(path)
    except StoreLocked as held:
        if not read:
            raise
        from socialcredit.snapshot import open_snapshot

        store, snap = open_snapshot(path, held)
        err.print(
            f"note: {path} is served (PID {held.pid}); reading its snapshot {snap.generation}, published "
            f"{snap.published_at:%Y-%m-%d %H:%M:%S} UTC"
        )
    _opened.append(store)
    if must_exist:
        store.require_init()
    return store


def emit(data: Any) -> None:
    out.print_json(json.dumps(data, ensure_ascii=False, default=str))


_SERVED = "\nIf it is `socialcredit serve`, the server owns the store: "
_WRITE_THROUGH = {  # how a write command's change reaches a served store (read commands read its snapshot)
    "ingest": _SERVED + "send the records through it: POST /api/v1/records with an agency key (see /docs).",
    "decide": _SERVED + "ask it (POST /api/v1/decisions with a service key), or add --no-record to ask the "
    "snapshot without recording the decision.",
    "rulebook_load": _SERVED + "send the version through it: POST /api/v1/rulebooks with an admin key.",
    "score": _SERVED + "it reruns the engine itself after each change it commits.",
    **{
        name: _SERVED + "stop it first (this change has no HTTP route)."
        for name in ("init", "citizens", "sample", "compact", "keys_create", "keys_revoke")
    },
}


def guarded(fn):
    """Bad input, or a store another process holds, exits 2 with a message that names the file, line or field.

    When the command returns, the stores it opened are closed: DuckDB lets one process hold a file, and a
    command run in-process (a test, a notebook calling the app) must not keep holding it afterwards — nor
    must the library's per-store caches (the decisions' index keeps its store alive) keep it open."""

    @functools.wraps(fn)
    def wrapper(*a: Any, **k: Any) -> Any:
        _depth[0] += 1
        try:
            for name, value in k.items():  # an undecodable byte in an argument arrives as a lone surrogate
                if isinstance(value, str) and (why := text.problem(value)) is not None:
                    fail(f"{name.replace('_', '-')}: {why}")
            try:
                return fn(*a, **k)
            except BatchRejected as e:
                fail(str(e))
            except LocatedError as e:
                fail(str(e))
            except StoreLocked as e:
                fail(str(e) + _WRITE_THROUGH.get(fn.__name__, ""))
        finally:
            _depth[0] -= 1
            if _depth[0] == 0:
                while _opened:
                    _opened.pop().close()

    return wrapper
