"""Fixtures for the page tests: the society is simulated once per session and copied per module."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from conftest import free_port
from socialcredit.api.app import create_app

from .pages_society import Society, build


@pytest.fixture(scope="session")
def society(tmp_path_factory: pytest.TempPathFactory) -> Society:
    return build(tmp_path_factory.mktemp("society"))


@pytest.fixture(scope="module")
def store_copy(society: Society, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's own copy of the society's store: tests that write (objections, reviews) stay apart."""
    copy = tmp_path_factory.mktemp("pages") / "store.duckdb"
    shutil.copyfile(society.store, copy)
    return copy


@contextlib.contextmanager
def serving(store: Path, as_of: dt.datetime | None = None) -> Iterator[str]:
    """uvicorn over `store` on 127.0.0.1 and a free port, in a thread, until the block ends; `as_of` fixes
    the service's clock as `serve --as-of` does."""
    port = free_port()
    config = uvicorn.Config(create_app(store, as_of=as_of), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=15)
    assert not thread.is_alive()


@pytest.fixture(scope="module")
def server(store_copy: Path) -> Iterator[str]:
    """The pages served over this module's store copy, with the real clock."""
    with serving(store_copy) as base:
        yield base
