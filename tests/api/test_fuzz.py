"""Schema-driven fuzzing of every API operation (schemathesis) that reaches the real code paths.

Generated requests alone rarely name a real resident ID, service, agency or list, so almost every one
would be refused at the door. Here each generated request (valid by the schema, or not) is blended with
real values from the sample store and the catalog — all of its fields, some of them, or none — and sent
with the key of a role that may call the operation (a citizen with their own ID). Every answer is
counted (2xx / 4xx / 5xx per operation and role) and checked: never a server error, every error in the
`{"error": ...}` shape, every answer as its OpenAPI schema says, every status documented there.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance
from test_api import RULEBOOK_V3, ZHANG, base  # noqa: F401 (base: a fixture)

from conftest import SLOW_SCALE
from socialcredit.api.app import create_app
from socialcredit.catalog import Attribute, default_catalog
from socialcredit.sample import REGION, citizen_ids

SCALE = SLOW_SCALE
EXAMPLES = 16
"""Generated requests per operation and role: ~400 in all, about 30 s here (the module, 45 s)."""
FEWER = {"POST /api/v1/rulebooks/preview": 0.1}
"""A preview that succeeds runs the engine twice on a copy of the store (seconds each): fewer of them."""

HOW = ("real", "real", "real", "mixed", "generated")
"""How much of a generated request is replaced by real values: all that apply, a random part, or none."""

CATALOG = default_catalog()
IDS = sorted(citizen_ids().values())
PUBLISHING = ["shenzhen"] * 3  # the sample city whose rulebook publishes a billboard and an honour roll
ZHANG_LISTS = ["dishonest_judgment_defaulters", "blacklist"]  # the citizen key's own listings
AGENCY = "commercial_banks"  # the agency key's subject (test_api.base)
PROVIDER = "rail"  # the service key's subject
MUST_SUCCEED = (
    "POST /api/v1/records",
    "POST /api/v1/decisions",
    "GET /api/v1/register",
    "GET /api/v1/citizens/{citizen_id}/standing",
    "GET /api/v1/citizens/{citizen_id}/explanation",
    "GET /api/v1/citizens/{citizen_id}/history",
)


def roles_for(path: str) -> tuple[str, ...]:
    """The roles that may call an operation (SPEC §6); citizens' own routes are fuzzed by the citizen
    (with their own ID) and, where admins may read them too, by an admin (with any ID)."""
    prefixes = [
        ("/api/v1/records", ("agency",)),
        ("/api/v1/retractions", ("agency",)),
        ("/api/v1/decisions", ("service",)),
        ("/api/v1/rulebooks", ("admin",)),
        ("/api/v1/cases", ("admin",)),
        ("/api/v1/audit", ("auditor",)),
    ]
    if path.startswith("/api/v1/citizens"):
        return ("citizen",) if path.endswith(("/objections", "/repairs")) else ("citizen", "admin")
    return next((roles for prefix, roles in prefixes if path.startswith(prefix)), ("public",))


@dataclass(frozen=True)
class Real:
    """Values the sample store really holds, read from it before fuzzing starts."""

    record_ids: list[str]
    list_ids: list[str]
    versions: list[str]
    checkpoint: str


# ---------------------------------------------------------------------------------------------- real values


def _one_of_weighted(real: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nine times in ten the value that succeeds, else one the store knows but refuses here (another
    agency's name, another provider's service): the paths that refuse those are real paths too. Values
    the store does not know at all come from the generated side of the blend."""
    return st.sampled_from((True,) * 9 + (False,)).flatmap(lambda known: real if known else other)  # one_of
    # would not do: it drops repeated strategies, so one_of(real, real, other) is still half and half


citizens = _one_of_weighted(st.sampled_from(IDS), st.sampled_from(["110101199001010011", "nobody", IDS[0][:-1]]))
times = st.datetimes(min_value=dt.datetime(2014, 1, 1), max_value=dt.datetime(2027, 3, 1))
iso = times.map(lambda t: t.isoformat(timespec="minutes"))
reasons = st.text(min_size=1, max_size=40)


def _value(a: Attribute) -> st.SearchStrategy[Any]:
    if a.type == "int":
        return st.integers(int(a.min or 0), int(a.max or 0))
    if a.type == "float":
        return st.floats(a.min or 0, a.max or 0, allow_nan=False)
    if a.type == "bool":
        return st.booleans()
    return st.text(max_size=min(a.max_length, 40))


@st.composite
def records(draw: st.DrawFn, real: Real) -> dict[str, Any]:
    own = CATALOG.agencies[AGENCY].behaviours
    behaviour = draw(_one_of_weighted(st.sampled_from(own), st.sampled_from(sorted(CATALOG.behaviours))))
    attributes = {a.name: draw(_value(a)) for a in CATALOG.attributes_of(behaviour) if draw(st.booleans())}
    return {
        "record_id": draw(
            _one_of_weighted(st.uuids().map(lambda u: f"fuzz-{u.hex[:12]}"), st.sampled_from(real.record_ids))
        ),
        "citizen_id": draw(citizens),
        "behaviour": behaviour,
        "occurred_at": draw(iso),
        "reported_by": draw(
            _one_of_weighted(st.sampled_from([None, AGENCY]), st.sampled_from(sorted(CATALOG.agencies)))
        ),
        "attributes": attributes,
    }


@st.composite
def decision_requests(draw: st.DrawFn) -> dict[str, Any]:
    own = sorted(s for s in CATALOG.services if s.split(".")[0] == PROVIDER)
    out = {
        "citizen_id": draw(citizens),
        "service": draw(_one_of_weighted(st.sampled_from(own), st.sampled_from(sorted(CATALOG.services)))),
    }
    if draw(st.booleans()):
        out["at"] = draw(iso)
    return out


def _rulebook_texts(versions: range, dates: list[str]) -> st.SearchStrategy[bytes]:
    """A real new Rongcheng version (as test_api schedules) on one of `dates`: some new, some sharing a
    number or a date with one already stored."""
    return st.builds(
        lambda d, v: RULEBOOK_V3.replace("2026-10-01", d).replace("version: 3", f"version: {v}"),
        st.sampled_from(dates),
        st.sampled_from(versions),
    ).map(str.encode)


def real_parts(method: str, path: str, real: Real) -> st.SearchStrategy[dict[str, Any]]:
    """Real path parameters, query and body for one operation: what a caller that knows the store sends."""
    op = f"{method} {path.removeprefix('/api/v1')}"
    parts: dict[str, st.SearchStrategy[Any]] = {}
    cities = _one_of_weighted(st.sampled_from([*sorted(REGION), *PUBLISHING]), st.just("atlantis"))
    for name, values in (("citizen_id", citizens), ("city", cities), ("case_id", st.integers(1, 6))):
        if f"{{{name}}}" in path:
            parts["path_parameters"] = st.fixed_dictionaries({name: values})
    as_of = st.fixed_dictionaries({}, optional={"as_of": iso})
    names = _one_of_weighted(
        st.sampled_from(["Zhang", "Zhang Wei", "张伟", "li", "Chen Jing", "陈静", *IDS]),
        st.text(min_size=2, max_size=10),
    )
    queries: dict[str, st.SearchStrategy[dict[str, Any]]] = {
        "GET /register": st.fixed_dictionaries({"q": names}, optional={"as_of": iso}),
        "GET /blacklist/{city}": as_of,
        "GET /whitelist/{city}": as_of,
        "GET /citizens/{citizen_id}/standing": as_of,
        "GET /citizens/{citizen_id}/explanation": as_of,
        "GET /rulebooks/diff": st.fixed_dictionaries(
            {"a": st.sampled_from(real.versions), "b": st.sampled_from(real.versions)}
        ),
        "POST /rulebooks": st.fixed_dictionaries({}, optional={"backdate": st.booleans()}),
        "GET /cases": st.fixed_dictionaries({}, optional={"status": st.sampled_from(["open", "upheld", "rejected"])}),
        "GET /audit": st.fixed_dictionaries(
            {}, optional={"after": st.integers(0, 300), "limit": st.integers(1, 1000), "citizen_id": citizens}
        ),
        "GET /audit/verify": st.fixed_dictionaries(
            {}, optional={"against": _one_of_weighted(st.just(real.checkpoint), st.text(max_size=20))}
        ),
    }
    if op in queries:
        parts["query"] = queries[op]
    bodies: dict[str, st.SearchStrategy[Any]] = {
        "POST /records": st.fixed_dictionaries({"records": st.lists(records(real), min_size=1, max_size=3)}),
        "POST /retractions": st.fixed_dictionaries(
            {
                "record_ids": st.lists(
                    _one_of_weighted(st.sampled_from(real.record_ids), st.text(max_size=10)), min_size=1, max_size=3
                ),
                "reason": reasons,
            }
        ),
        "POST /decisions": st.one_of(
            decision_requests(),
            st.fixed_dictionaries({"requests": st.lists(decision_requests(), min_size=1, max_size=5)}),
        ),
        "POST /citizens/{citizen_id}/objections": st.fixed_dictionaries(
            {
                "agency": _one_of_weighted(
                    st.sampled_from([AGENCY, "local_peoples_court"]), st.sampled_from(sorted(CATALOG.agencies))
                ),
                "record_id": _one_of_weighted(
                    st.sampled_from(["sample-001", "sample-002"]), st.sampled_from(real.record_ids)
                ),
                "reason": reasons,
            }
        ),
        "POST /citizens/{citizen_id}/repairs": st.fixed_dictionaries(
            {
                "list_id": _one_of_weighted(st.sampled_from(ZHANG_LISTS), st.sampled_from(real.list_ids)),
                "reason": reasons,
            }
        ),
        "POST /cases/{case_id}/review": st.fixed_dictionaries({"uphold": st.booleans()}, optional={"note": reasons}),
        # previews: numbers and dates apart from those scheduled just before, none far ahead (a preview runs
        # the engine up to its first day, allowed up to ten years ahead: seconds per month on the copy)
        "POST /rulebooks/preview": _rulebook_texts(range(10, 20), [f"2026-{m:02}-15" for m in range(1, 10)]),
        "POST /rulebooks": _rulebook_texts(range(3, 10), ["2026-10-01", *(f"2027-{m:02}-01" for m in range(1, 10))]),
    }
    if op in bodies:
        parts["body"] = bodies[op]
    return st.fixed_dictionaries(parts)


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class Run:
    """What the fuzzing observed, for the tests below to judge."""

    counts: dict[tuple[str, str], Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    statuses: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    server_errors: list[str] = field(default_factory=list)
    bad_errors: list[str] = field(default_factory=list)
    off_schema: list[str] = field(default_factory=list)

    def table(self) -> str:
        """Counts by status class per operation and role, and the statuses seen (for the README)."""

        def row(name: str, role: str, c: Counter[int]) -> str:
            by = Counter({f"{k}xx": sum(n for s, n in c.items() if s // 100 == k) for k in (2, 4, 5)})
            return f"| {name} | {role} | {by['2xx']} | {by['4xx']} | {by['5xx']} | {' '.join(map(str, sorted(c)))} |"

        lines = ["| operation | role | 2xx | 4xx | 5xx | statuses |", "|---|---|---:|---:|---:|---|"]
        lines += [row(op, role, c) for (op, role), c in sorted(self.counts.items())]
        lines.append(row("all", "", sum(self.counts.values(), Counter())))
        return "\n".join(lines)


def _blend(case: Any, real: dict[str, Any], how: str, coin: Callable[[], bool]) -> None:
    """Put real values into a generated case: all of them, a random part of them, or none."""
    if how == "generated":
        return
    take = (lambda: True) if how == "real" else coin
    for part in ("path_parameters", "query"):
        values = {k: v for k, v in real.get(part, {}).items() if take()}
        if values:
            setattr(case, part, {**(getattr(case, part) or {}), **values})
    if "body" in real:
        body = real["body"]
        if how == "mixed" and isinstance(body, dict) and isinstance(case.body, dict):
            body = {k: (v if coin() else case.body.get(k, v)) for k, v in body.items()}
        if how == "real" or coin():
            case.body = body


def _record(run: Run, label: str, role: str, case: Any, response: Any) -> None:
    status = response.status_code
    run.statuses[label].add(status)
    run.counts[(label, role)][status] += 1
    where = f"{label} as {role}: {status} for {case.path_parameters} {case.query} {str(case.body)[:200]!r}"
    if status >= 500:
        run.server_errors.append(f"{where} → {response.text[:300]}")
        return
    kind = response.headers.get("content-type") or [""]
    kind = kind[0] if isinstance(kind, list) else kind
    if not kind.startswith("application/json"):
        run.bad_errors.append(f"{where} → not JSON: {kind}")
        return
    body = response.json()
    if status >= 400 and not (isinstance(body, dict) and isinstance(body.get("error"), str) and "detail" not in body):
        run.bad_errors.append(f"{where} → {kind} {response.text[:300]}")
    try:
        case.validate_response(response, checks=[response_schema_conformance])
    except FailureGroup as e:  # recorded with its report, for the test below
        run.off_schema.append(f"{where}: {str(e)[:600]}")


def _send_many(
    run: Run,
    label: str,
    role: str,
    headers: dict[str, str],
    generated: st.SearchStrategy[Any],
    realistic: st.SearchStrategy[dict[str, Any]],
    examples: int,
    derandomize: bool,
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=generated, parts=realistic, how=st.sampled_from(HOW), data=st.data())
    def send(case: Any, parts: dict[str, Any], how: str, data: st.DataObject) -> None:
        _blend(case, parts, how, lambda: data.draw(st.booleans()))
        if role == "citizen":  # a citizen asks about themselves (asking about others: test_api's matrix)
            case.path_parameters = {**(case.path_parameters or {}), "citizen_id": ZHANG}
        # no read timeout: an impact preview runs the engine twice (seconds on a loaded CI machine), and
        # this test is about what the answers are, not how fast they come
        _record(run, label, role, case, case.call(headers=headers, timeout=None))

    send()


def fuzz(app: FastAPI, real: Real, examples: int, derandomize: bool) -> Run:
    """Every operation × each role that may call it, `examples` generated requests each."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    run = Run()
    for result in schema.get_all_operations():
        op = result.ok()
        label = f"{op.method.upper()} {op.path}"
        generated = st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))
        for role in roles_for(op.path):
            headers = {} if role == "public" else {"Authorization": f"Bearer {app.state.tokens[role]}"}
            realistic = real_parts(op.method.upper(), op.path, real)
            n = max(1, round(examples * FEWER.get(label, 1)))
            _send_many(run, label, role, headers, generated, realistic, n, derandomize)
    return run


@pytest.fixture(scope="module")
def fuzz_app(base, tmp_path_factory) -> Iterator[FastAPI]:  # noqa: F811
    """The app over a copy of the scored sample, with a key per role and the real values read from it."""
    path, tokens = base
    copy = tmp_path_factory.mktemp("fuzz") / "f.duckdb"
    shutil.copyfile(path, copy)
    app = create_app(copy)
    with TestClient(app) as client:  # runs the lifespan: the store closes at the end
        app.state.tokens = tokens
        svc = app.state.service
        con = svc.store.con
        now = svc.now()
        lists = {
            x.id for city in svc.store.rulebooks().cities if (rb := svc.decider.rulebook(city, now)) for x in rb.lists
        }
        versions = [
            f"{j}@{v}" for j, v in con.execute("SELECT jurisdiction, version FROM rulebook_versions").fetchall()
        ]
        head = client.get("/api/v1/audit/head", headers={"Authorization": f"Bearer {tokens['auditor']}"})
        app.state.real = Real(
            record_ids=sorted(r for (r,) in con.execute("SELECT record_id FROM records").fetchall()),
            list_ids=sorted(lists),
            versions=sorted(versions),
            checkpoint=head.json()["checkpoint"],
        )
        yield app


@pytest.fixture(scope="module")
def fuzzed(fuzz_app: FastAPI) -> Run:
    run = fuzz(fuzz_app, fuzz_app.state.real, EXAMPLES, derandomize=True)
    print(f"\nfuzzed requests by operation and role ({EXAMPLES} each):\n{run.table()}")
    return run


def _judge(run: Run, doc: dict[str, Any]) -> None:
    """No server error, every refusal in the error shape, every answer and status as the OpenAPI says."""
    assert not run.server_errors, "\n".join(run.server_errors[:20])
    assert not run.bad_errors, "\n".join(run.bad_errors[:20])
    assert not run.off_schema, "\n".join(run.off_schema[:10])
    assert not _undocumented(doc, run), _undocumented(doc, run)


@pytest.mark.slow
def test_a_random_run_withstands_too(fuzz_app: FastAPI, fuzzed: Run) -> None:
    """Half as many requests again, not derandomized: each run explores inputs the fixed run never sends
    (kept small so the module stays within a minute or so here; SOCIALCREDIT_SLOW_SCALE scales it)."""
    n = max(2, round(EXAMPLES * SCALE / 2))
    run = fuzz(fuzz_app, fuzz_app.state.real, n, derandomize=False)
    print(f"\na random run, {n} requests by operation and role:\n{run.table()}")
    _judge(run, fuzz_app.openapi())


def test_no_input_causes_a_server_error(fuzzed: Run) -> None:
    assert not fuzzed.server_errors, "\n".join(fuzzed.server_errors[:20])


def test_generated_requests_reach_the_real_paths(fuzzed: Run) -> None:
    """Each core path answers at least one generated request with a success, not only with refusals."""
    ok = {op for (op, _), c in fuzzed.counts.items() if any(200 <= s < 300 for s in c)}
    assert set(MUST_SUCCEED) <= ok, fuzzed.table()


def test_every_answer_is_json_and_every_refusal_in_the_error_shape(fuzzed: Run) -> None:
    """Every answer is JSON; every 4xx is `{"error": message, ...}`: the framework's `detail` never leaks."""
    assert not fuzzed.bad_errors, "\n".join(fuzzed.bad_errors[:20])


def test_every_answer_is_as_its_schema_says(fuzzed: Run) -> None:
    """Successes and refusals alike match the OpenAPI schema of their status (schemathesis's check)."""
    assert not fuzzed.off_schema, "\n".join(fuzzed.off_schema[:10])


def _typed(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    """A schema that says what is in the answer: a model with properties, or a choice of such models."""
    if "$ref" in schema:
        return _typed(components[schema["$ref"].rsplit("/", 1)[1]], components)
    if "anyOf" in schema or "oneOf" in schema:
        return all(_typed(s, components) for s in schema.get("anyOf", schema.get("oneOf")))
    return bool(schema.get("properties"))


def _undocumented(doc: dict[str, Any], run: Run) -> list[str]:
    """Each operation's statuses the run observed that its OpenAPI entry does not list."""
    found = []
    for label, statuses in sorted(run.statuses.items()):
        method, path = label.split(" ", 1)
        listed = set(doc["paths"][path][method.lower()]["responses"])
        if missing := sorted({str(s) for s in statuses} - listed):
            found.append(f"{label}: {missing}")
    return found


def test_openapi_types_every_answer_and_documents_every_status(fuzz_app: FastAPI, fuzzed: Run) -> None:
    """Every operation's success is a typed model (not a bare object), its errors the shared `Error`, and
    every status the fuzzing saw it answer is among those it documents."""
    doc = fuzz_app.openapi()
    components = doc["components"]["schemas"]
    untyped = []
    for path, ops in doc["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        for method, spec in ops.items():
            responses = spec["responses"]
            success = [s for s in responses if s.startswith("2")]
            if not success or not all(
                _typed(responses[s]["content"]["application/json"]["schema"], components) for s in success
            ):
                untyped.append(f"{method.upper()} {path}")
            for s in responses:
                if s.startswith(("4", "5")):
                    assert responses[s]["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"
                    }, (method, path, s)
    assert not untyped, untyped
    assert not _undocumented(doc, fuzzed), _undocumented(doc, fuzzed)


def test_the_framework_refusals_are_in_the_error_shape(fuzz_app: FastAPI) -> None:
    """400 (an unparsable body), 404 (no route) and 405 (a wrong method) come from FastAPI and Starlette
    themselves; the app maps them to `{"error": ...}` too."""
    client = TestClient(fuzz_app)
    own = {"Authorization": f"Bearer {fuzz_app.state.tokens['citizen']}"}
    answers = {
        405: client.delete("/api/v1/register"),
        404: client.get("/api/v1/nowhere"),
        400: client.post(
            f"/api/v1/citizens/{ZHANG}/objections",
            content=b'{"reason": "\xff"}',
            headers={**own, "Content-Type": "application/json"},
        ),
    }
    for status, r in answers.items():
        body = r.json()
        assert r.status_code == status, (status, r.status_code, body)
        assert isinstance(body.get("error"), str) and "detail" not in body, (status, r.status_code, body)
