"""The audit trail verifies after any sequence of API calls, and fails after any single tampering."""

from __future__ import annotations

import shutil

import duckdb
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_api import CHEN, IDS, ZHANG, auth, base  # noqa: F401 (base is a fixture)
from typer.testing import CliRunner

from socialcredit.api.app import create_app
from socialcredit.audit import verify
from socialcredit.cli import app as cli
from socialcredit.store import Store

CALLS = [
    ("GET", f"/api/v1/citizens/{ZHANG}/standing", None, "citizen"),
    ("GET", f"/api/v1/citizens/{ZHANG}/history", None, "admin"),
    ("POST", "/api/v1/decisions", {"citizen_id": CHEN, "service": "rail.ticket"}, "service"),
    (
        "POST",
        "/api/v1/decisions",
        {"requests": [{"citizen_id": c, "service": "rail.ticket"} for c in IDS.values()]},
        "service",
    ),
    ("GET", "/api/v1/register?q=Li", None, "public"),
    ("GET", "/api/v1/blacklist/shenzhen", None, "public"),
    ("GET", "/api/v1/cases", None, "admin"),
    ("GET", f"/api/v1/citizens/{CHEN}/standing", None, "citizen"),  # refused: not audited as a read
]

TAMPER = [
    "UPDATE audit_log SET detail = detail || ' ' WHERE seq = {k}",
    "UPDATE audit_log SET principal = principal || 'x' WHERE seq = {k}",
    "DELETE FROM audit_log WHERE seq = {k}",
    "UPDATE audit_log SET seq = CASE seq WHEN {k} THEN {k} + 1 ELSE {k} END WHERE seq IN ({k}, {k} + 1)",
    "swap",
    "DELETE FROM audit_log WHERE seq >= {k}",
]


def _swap(con: duckdb.DuckDBPyConnection, k: int) -> None:
    """Reorder two neighbouring entries by rewriting the table in another order."""
    con.execute(f"""CREATE TEMP TABLE t AS SELECT * FROM audit_log ORDER BY CASE seq WHEN {k} THEN {k} + 1.5
                    ELSE seq END""")
    con.execute("DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM t; DROP TABLE t")


REFUSED = len(CALLS) - 1
NEEDS_NEIGHBOUR = ("UPDATE audit_log SET seq", "swap")  # these tamper with entries k and k + 1
# at least two audited calls, so the trail always has an entry and its neighbour to tamper with
AUDITED_CALLS = st.lists(st.sampled_from(range(len(CALLS))), min_size=2, max_size=8).filter(
    lambda calls: sum(i != REFUSED for i in calls) >= 2
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=AUDITED_CALLS, tamper=st.sampled_from(range(len(TAMPER))), data=st.data())
def test_verifies_after_calls_and_fails_after_tampering(base, tmp_path_factory, calls, tamper, data):  # noqa: F811
    path, tokens = base
    copy = tmp_path_factory.mktemp("audit") / "a.duckdb"
    shutil.copyfile(path, copy)
    with TestClient(create_app(copy)) as client:
        client.tokens = tokens  # type: ignore[attr-defined]
        for i in calls:
            method, url, body, role = CALLS[i]
            client.request(method, url, json=body, headers=auth(client, role))
    store = Store(copy)
    v = verify(store)
    assert v.ok, v.problems
    n = v.entries
    assert n >= max(2, len([i for i in calls if i != REFUSED]))
    k = data.draw(st.integers(1, n - 1 if TAMPER[tamper].startswith(NEEDS_NEIGHBOUR) else n), label="k")
    if TAMPER[tamper] == "swap":
        _swap(store.con, k)
    else:
        store.con.execute(TAMPER[tamper].format(k=k))
    bad = verify(store)
    store.close()
    assert not bad.ok and bad.problems


def test_cli_audit_verify_exit_codes(base, tmp_path):  # noqa: F811
    path, tokens = base
    copy = tmp_path / "c.duckdb"
    shutil.copyfile(path, copy)
    with TestClient(create_app(copy)) as client:
        client.get(f"/api/v1/citizens/{ZHANG}/standing", headers={"Authorization": f"Bearer {tokens['citizen']}"})
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify", "--db", str(copy)])
    assert ok.exit_code == 0 and "intact" in ok.output
    con = duckdb.connect(str(copy))
    con.execute("UPDATE audit_log SET citizen_id = NULL WHERE seq = 1")
    con.close()
    bad = runner.invoke(cli, ["audit", "verify", "--db", str(copy)])
    assert bad.exit_code == 1
    assert "entry 1" in bad.output + (bad.stderr if bad.stderr_bytes else "")


@pytest.mark.parametrize(
    "role,subject", [("citizen", "nobody"), ("agency", "nope"), ("service", None), ("wizard", None)]
)
def test_keys_create_refuses_unknown_principals(base, role, subject):  # noqa: F811
    path, _ = base
    args = ["keys", "create", "--role", role, "--db", str(path)] + (["--subject", subject] if subject else [])
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2
