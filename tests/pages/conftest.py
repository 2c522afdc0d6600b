"""Fixtures for the page tests: the society is simulated once per session and copied per module."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
