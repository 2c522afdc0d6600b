"""Impact preview: it names the version it previews, and refuses a version the store holds before any work."""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import NATIONAL_YAML, city_yaml
from socialcredit import impact
from socialcredit.yamlio import LocatedError

LATER = city_yaml(2).replace("version: 2", "version: 3").replace("2024-01-01", "2030-01-01")
NOW = dt.datetime(2026, 6, 1)


def test_preview_names_the_version_previewed_not_the_latest_dated(make_store, make_citizens):
    store = make_store(NATIONAL_YAML, city_yaml(), LATER)  # testcity@3 is scheduled for 2030
    make_citizens(store, 2)
    assert impact.preview(store, city_yaml(2), now=NOW)["version"] == "testcity@2"


def test_preview_of_a_stored_version_is_refused_before_any_copy_or_engine_run(make_store, make_citizens, monkeypatch):
    store = make_store(NATIONAL_YAML, city_yaml(), LATER)
    make_citizens(store, 2)

    def no_engine(*a: object, **k: object) -> None:
        raise AssertionError("the engine ran for a version that cannot be added")

    monkeypatch.setattr(impact, "Engine", no_engine)
    with pytest.raises(LocatedError, match="testcity@3 is already in the store"):
        impact.preview(store, LATER, now=NOW)
