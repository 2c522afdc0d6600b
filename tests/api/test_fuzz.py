"""Schema-driven fuzzing of every API operation (schemathesis): whatever the input, never a server error."""

from __future__ import annotations

import shutil

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from test_api import base  # noqa: F401 (a fixture)

from socialcredit.api.app import create_app

ROLE_BY_PREFIX = [("/api/v1/records", "agency"), ("/api/v1/retractions", "agency"), ("/api/v1/decisions", "service"),
                  ("/api/v1/citizens", "citizen"), ("/api/v1/rulebooks", "admin"), ("/api/v1/cases", "admin"),
                  ("/api/v1/audit", "auditor")]


@pytest.fixture(scope="module")
def fuzz_app(base, tmp_path_factory):  # noqa: F811
    path, tokens = base
    copy = tmp_path_factory.mktemp("fuzz") / "f.duckdb"
    shutil.copyfile(path, copy)
    app = create_app(copy)
    with TestClient(app):  # runs the lifespan: the store closes at the end
        app.state.tokens = tokens
        yield app


def fuzz(op, headers: dict[str, str]) -> None:
    @settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def no_server_error(case):
        response = case.call(headers=headers)
        assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
        kind = response.headers.get("content-type") or [""]
        assert kind[0].startswith("application/json"), (case.path, response.status_code, kind)

    no_server_error()


def test_no_input_causes_a_server_error(fuzz_app):
    """Every operation, eight generated requests each (valid and invalid by the schema), with the role's key."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 19
    for op in operations:
        role = next((r for prefix, r in ROLE_BY_PREFIX if op.path.startswith(prefix)), None)
        fuzz(op, {"Authorization": f"Bearer {fuzz_app.state.tokens[role]}"} if role else {})
