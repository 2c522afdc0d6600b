"""The shipped rulebooks: they load, resolve for every city at every time, and say what the seed says.

Also: the city differences the seed describes hold, the big Qingzhen rulebook is big and consistent,
and a rulebook outside the condition language fails with an error naming its file and line.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
import re
from collections import defaultdict
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from socialcredit.catalog import default_catalog
from socialcredit.rulebook import (
    Layer,
    Remove,
    Rule,
    Rulebook,
    RulebookSet,
    dropped,
    load_layer,
    parse_layer,
    shipped_dir,
    shipped_layers,
    validate_files,
)
from socialcredit.yamlio import LocatedError

CITIES = ["beijing", "guangzhou", "qingzhen", "rongcheng", "shanghai", "shenzhen"]
REGION_CODES = {
    "shanghai": "310101",
    "rongcheng": "371082",
    "beijing": "110101",
    "qingzhen": "520181",
    "guangzhou": "440106",
    "shenzhen": "440304",
}
SOURCE = re.compile(r"^(seed|illustrative|reported: .+)$")
GUARANTOR = ("guarantee_default", "guarantor_for_defaulter")
PARENTS = ("visiting_parents", "neglecting_parents")
SHIPPED = sorted(shipped_dir().glob("*.yaml"))


@functools.cache
def _load(path: Path) -> Layer:
    return load_layer(path)  # the big rulebook takes a second to parse; parse each file once


@pytest.fixture(scope="module")
def layers() -> dict[str, Layer]:
    return {layer.key: layer for layer in map(_load, SHIPPED)}


@pytest.fixture(scope="module")
def rulebooks(layers: dict[str, Layer]) -> RulebookSet:
    return RulebookSet(list(layers.values()))


def test_shipped_layers_reads_the_same_files(layers: dict[str, Layer]) -> None:
    assert sorted(layer.key for layer in shipped_layers()) == sorted(layers)


def _subject(r: Rule) -> str:
    return r.behaviour or r.characteristic or ""


def _latest(s: RulebookSet, city: str) -> Rulebook:
    rb = s.resolve(city)
    assert rb is not None
    return rb


# --- loading and resolving ------------------------------------------------------------------------


def test_rulebooks_are_shipped() -> None:
    assert len(SHIPPED) >= 9, [p.name for p in SHIPPED]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_file_loads_and_is_named_after_its_key(path: Path) -> None:
    layer = _load(path)
    assert path.name == f"{layer.key}.yaml"
    assert layer.at.startswith(str(path))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_ids_are_unique_within_a_file(path: Path) -> None:
    layer = _load(path)
    for coll in ("rules", "caps", "lists", "memory"):
        ids = [item.id for item in getattr(layer, coll)]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        assert not dupes, f"{path.name}: duplicate {coll} ids {dupes}"


def test_the_six_seed_cities_are_the_cities(rulebooks: RulebookSet) -> None:
    assert rulebooks.cities == CITIES


@pytest.mark.parametrize("city", CITIES)
def test_timeline_resolves_for_every_city(rulebooks: RulebookSet, city: str) -> None:
    timeline = rulebooks.timeline(city)
    assert timeline, f"{city} never resolves"
    for before, after in itertools.pairwise(timeline):
        assert before.effective_to == after.effective_from
    assert timeline[-1].effective_to is None
    for rb in timeline:
        assert rb.jurisdiction == city
        assert rb.region_code == REGION_CODES[city]
        assert rb.version.startswith(f"{city}@") and rb.version.endswith(("national@1", "national@2"))
        assert rb.scale.min <= rb.scale.base <= rb.scale.max
        assert rb.rules


def test_every_item_has_a_source(rulebooks: RulebookSet, layers: dict[str, Layer]) -> None:
    for layer in layers.values():
        assert SOURCE.match(layer.source), layer.at
    for rb in rulebooks.all_resolved():
        for item in [*rb.rules, *rb.caps, *rb.lists, *rb.memory]:
            assert SOURCE.match(item.source), f"{item.at}: source {item.source!r}"


def test_levels_and_inheritance(rulebooks: RulebookSet, layers: dict[str, Layer]) -> None:
    for layer in layers.values():
        if layer.level == "national":
            assert layer.extends is None
        else:
            assert layer.extends is not None
    for city in CITIES:
        assert rulebooks.chain(city)[0] == "national"
    assert rulebooks.chain("shenzhen") == ["national", "guangdong", "shenzhen"]
    assert rulebooks.chain("guangzhou") == ["national", "guangdong", "guangzhou"]


def test_a_city_that_changes_parent_keeps_its_earlier_versions_on_their_own_parent(
    layers: dict[str, Layer],
) -> None:
    """A replay or a policy copy gives Qingzhen a version extending Guangdong; Qingzhen's own version 1
    (which removes national rules Guangdong already removes) must still resolve on the national chain it
    was written against, before the copy's date and when asked for by version."""
    shenzhen = (shipped_dir() / "shenzhen@1.yaml").read_text(encoding="utf-8")
    copy = re.sub(r"(?m)^jurisdiction: shenzhen$", "jurisdiction: qingzhen", shenzhen)
    copy = re.sub(r"(?m)^version: 1$", "version: 2", copy)
    copy = re.sub(r"(?m)^effective_from: .*$", "effective_from: 2025-01-01", copy)
    rbs = RulebookSet([*layers.values(), parse_layer(copy, "copy.yaml")])
    timeline = [(rb.version, rb.effective_from, rb.effective_to) for rb in rbs.timeline("qingzhen")]
    assert timeline == [
        ("qingzhen@1+national@2", dt.date(2018, 1, 1), dt.date(2025, 1, 1)),
        ("qingzhen@2+guangdong@1+national@2", dt.date(2025, 1, 1), None),
    ]
    assert rbs.chain("qingzhen", dt.date(2024, 12, 31)) == ["national", "qingzhen"]
    assert rbs.chain("qingzhen") == ["national", "guangdong", "qingzhen"]
    assert rbs.ancestors("qingzhen") == ["qingzhen", "guangdong", "national"]
    pinned = rbs.resolve("qingzhen", None, {"qingzhen": 1})
    assert pinned is not None and pinned.version == "qingzhen@1+national@2"
    assert rbs.resolve("qingzhen", dt.date(2025, 6, 1)).version.startswith("qingzhen@2+guangdong@1")  # type: ignore[union-attr]


# --- the national layers encode the seed ----------------------------------------------------------


@pytest.mark.parametrize("key", ["national@1", "national@2"])
def test_national_layer_scores_every_seed_behaviour(layers: dict[str, Layer], key: str) -> None:
    layer = layers[key]
    catalog = default_catalog()
    seeded = {b.code: b.polarity for b in catalog.behaviours.values() if b.seed}
    assert sum(p == "desirable" for p in seeded.values()) == 7
    assert sum(p == "undesirable" for p in seeded.values()) == 19
    by_behaviour: dict[str, list[int]] = defaultdict(list)
    for r in layer.rules:
        if r.behaviour:
            by_behaviour[r.behaviour].append(r.points)
    for code, polarity in seeded.items():
        assert by_behaviour[code], f"{key}: no rule for seed behaviour {code!r}"
        if polarity == "desirable":
            assert all(p > 0 for p in by_behaviour[code]), code
        else:
            assert all(p < 0 for p in by_behaviour[code]), code
    characteristics = {r.characteristic for r in layer.rules if r.characteristic}
    assert {"criminal_record", "court_defaulter", "blacklisted_contacts"} <= characteristics
    assert layer.scale is not None and (layer.scale.base, layer.scale.min, layer.scale.max) == (1000, 0, 1300)
    assert [(g.grade, g.min) for g in layer.grades or []] == [
        ("AAA", 1050),
        ("AA", 1030),
        ("A", 960),
        ("B", 850),
        ("C", 600),
        ("D", 0),
    ]
    assert "UNVERIFIED" in (layers["national@1"].notes)


def test_network_rule_follows_the_seed(layers: dict[str, Layer]) -> None:
    rules = [r for r in layers["national@1"].rules if r.characteristic == "blacklisted_contacts"]
    assert {r.source for r in rules} == {"seed"}
    assert min(r.points for r in rules) <= -50


def test_desirable_and_undesirable_keep_their_sign_everywhere(rulebooks: RulebookSet) -> None:
    catalog = default_catalog()
    for rb in rulebooks.all_resolved():
        for r in rb.rules:
            assert r.points != 0, f"{r.at}: a rule worth nothing"
            if r.behaviour is None:
                assert r.points < 0, r.at
                continue
            polarity = catalog.behaviours[r.behaviour].polarity
            if polarity == "desirable":
                assert r.points > 0, r.at
            elif polarity == "undesirable":
                assert r.points < 0, r.at


def test_national_lists_and_memory(rulebooks: RulebookSet, layers: dict[str, Layer]) -> None:
    catalog = default_catalog()
    seed_sanctions = {m.code for m in catalog.measures.values() if m.seed and m.kind == "sanction"}
    seed_privileges = {m.code for m in catalog.measures.values() if m.seed and m.kind == "privilege"}
    assert len(seed_privileges) == 10
    for key in ("national@1", "national@2"):
        lists = {x.id: x for x in layers[key].lists}
        black = lists["blacklist"]
        assert black.grades == ["D"]
        assert [t.characteristic for t in black.triggers] == ["court_defaulter"]
        measures = {m.measure: m.for_ for m in black.list_measures()}
        assert set(measures) == seed_sanctions
        assert measures["rail_ban"] == "1y" and measures["air_ban"] == "1y"
        white = lists["whitelist"]
        assert white.kind == "whitelist" and white.grades == ["AAA", "AA"]
        assert {m.measure for m in white.list_measures()} == seed_privileges
        spc = {m.measure for m in lists["dishonest_judgment_defaulters"].list_measures()}
        assert "spc_no_private_school_children" in spc
        assert [(t.behaviour, t.duration) for t in lists["air_passenger_ban"].triggers] == [
            ("disruptive_flight_behaviour", "1y")
        ]
        assert {(t.behaviour, t.duration) for t in lists["rail_passenger_ban"].triggers} == {
            ("smoking_on_train", "180d"),
            ("fare_evasion", "180d"),
        }
        (memory,) = layers[key].memory
        assert (memory.id, memory.after) == ("once_untrustworthy", "blacklist")
        assert memory.never_lists == ["whitelist"]
        assert memory.measures == ["gov_post_ban_permanent"]
    caps = {c.behaviour for c in layers["national@1"].caps if c.max is not None}
    assert {"volunteer_work", "charity_donation"} <= caps
    # every city keeps the memory "once untrustworthy, always restricted"
    for rb in rulebooks.all_resolved():
        assert any(m.id == "once_untrustworthy" for m in rb.memory), rb.version


def test_national_version_2_differs_visibly(rulebooks: RulebookSet, layers: dict[str, Layer]) -> None:
    v1, v2 = layers["national@1"], layers["national@2"]
    assert (v1.effective_from, v2.effective_from) == (dt.date(2014, 6, 14), dt.date(2017, 5, 1))
    assert "Changes from national@1" in v2.notes
    cd1 = {r.id for r in v1.rules if r.characteristic == "court_defaulter"}
    cd2 = {r.id for r in v2.rules if r.characteristic == "court_defaulter"}
    assert cd1 == {"court_defaulter"}
    assert len(cd2) > len(cd1) and "court_defaulter" not in cd2
    before = rulebooks.resolve("shanghai", dt.date(2017, 4, 30))
    after = rulebooks.resolve("shanghai", dt.date(2017, 5, 1))
    assert before is not None and after is not None
    assert before.version == "shanghai@1+national@1" and after.version == "shanghai@1+national@2"


# --- the seed's city differences -----------------------------------------------------------------


def _has(rb: Rulebook, subjects: tuple[str, ...]) -> bool:
    return any(_subject(r) in subjects for r in rb.rules)


def test_guarantor_for_a_defaulter_counts_in_some_cities_only(rulebooks: RulebookSet) -> None:
    counts = {"rongcheng", "beijing", "qingzhen"}
    for city in CITIES:
        for rb in rulebooks.timeline(city):
            assert _has(rb, GUARANTOR) == (city in counts), rb.version
    rongcheng = _latest(rulebooks, "rongcheng")
    assert any(r.behaviour == "guarantee_default" and r.points == -20 for r in rongcheng.rules)
    assert not any(r.behaviour == "guarantee_default" for r in _latest(rulebooks, "shanghai").rules)


def test_treatment_of_parents_counts_in_some_cities_only(rulebooks: RulebookSet) -> None:
    counts = {"shanghai", "rongcheng", "qingzhen"}
    for city in CITIES:
        for rb in rulebooks.timeline(city):
            assert _has(rb, PARENTS) == (city in counts), rb.version
    shanghai = _latest(rulebooks, "shanghai")
    neglect = [r for r in shanghai.rules if r.behaviour == "neglecting_parents"]
    assert neglect and all(r.points < 0 and r.source.startswith("reported:") for r in neglect)
    assert not _has(_latest(rulebooks, "shenzhen"), PARENTS)


def test_rongcheng_deduction_table(rulebooks: RulebookSet) -> None:
    rb = _latest(rulebooks, "rongcheng")
    points = {(r.behaviour, r.when): r.points for r in rb.rules}
    assert points[("contract_breach", "coalesce(judged, false) = false")] == -20
    assert points[("contract_breach", "judged = true")] == -50
    assert points[("credit_card_overdue", None)] == -10
    assert points[("illegal_fundraising", None)] == -40
    assert points[("counterfeit_goods", None)] == -30
    assert points[("mlm_fraud", None)] == -30
    assert points[("traffic_violation", None)] == -5
    assert points[("heroic_act", None)] == 30
    # drunk driving takes a citizen at the base score to grade C
    drunk = next(r for r in rb.rules if r.behaviour == "drunk_driving")
    assert rb.grade_of(rb.scale.base + drunk.points) == "C"
    assert rb.disclosure.publish_scores is False  # the Seashell version
    older = rulebooks.resolve("rongcheng", dt.date(2020, 12, 31))
    assert older is not None and older.disclosure.publish_scores is True
    assert older.list_by_id("blacklist").grades == ["D"]
    assert rb.list_by_id("blacklist").grades == []


def test_disclosure_differs_by_city(rulebooks: RulebookSet) -> None:
    latest = {city: _latest(rulebooks, city) for city in CITIES}
    assert any(not rb.disclosure.notify_citizens for rb in latest.values())
    assert latest["qingzhen"].disclosure.notify_citizens is False
    assert latest["shenzhen"].disclosure.billboard and latest["shenzhen"].disclosure.station_monitor
    assert not latest["guangzhou"].disclosure.billboard


def test_shenzhen_weighs_red_lights_heavier(rulebooks: RulebookSet) -> None:
    def red_light(rb: Rulebook) -> int:
        return sum(r.points for r in rb.rules if r.behaviour == "red_light_crossing" and r.when is None)

    assert red_light(_latest(rulebooks, "shenzhen")) < red_light(_latest(rulebooks, "shanghai"))


def test_guangzhou_bars_illegal_renters_from_public_services(rulebooks: RulebookSet) -> None:
    rb = _latest(rulebooks, "guangzhou")
    (bar,) = [x for x in rb.lists if any(t.behaviour == "illegal_rental" for t in x.triggers)]
    assert "social_services_ban" in {m.measure for m in bar.list_measures()}
    assert any(r.behaviour == "littering" and r.points == -1 for r in rb.rules)


# --- the big rulebook ------------------------------------------------------------------------------


def test_qingzhen_has_more_than_a_thousand_rules(rulebooks: RulebookSet, layers: dict[str, Layer]) -> None:
    assert len(layers["qingzhen@1"].rules) > 1000
    assert all(len(rb.rules) > 1000 for rb in rulebooks.timeline("qingzhen"))
    assert all(r.source == "illustrative" for r in layers["qingzhen@1"].rules)


Interval = tuple[float, bool, float, bool]  # lo, lo inclusive, hi, hi inclusive


def _bound(node: exp.Expression) -> tuple[str, str, float] | None:
    ops = {exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}
    flip = {">": "<", ">=": "<=", "<": ">", "<=": ">="}
    op = ops.get(type(node))
    if op is None:
        return None

    def attr(side: exp.Expression) -> str | None:
        if isinstance(side, exp.Coalesce):
            side = side.this
        return side.name if isinstance(side, exp.Column) else None

    def value(side: exp.Expression) -> float | None:
        if isinstance(side, exp.Neg):
            inner = value(side.this)
            return None if inner is None else -inner
        return float(side.this) if isinstance(side, exp.Literal) and side.is_number else None

    left, right = node.this, node.expression
    if (a := attr(left)) and (v := value(right)) is not None:
        return a, op, v
    if (a := attr(right)) and (v := value(left)) is not None:
        return a, flip[op], v
    return None


def _box(when: str | None) -> tuple[tuple[str, ...], dict[str, Interval]]:
    """Split a condition into its numeric bounds (one interval per attribute) and everything else."""
    if when is None:
        return (), {}
    tree = sqlglot.parse_one(when, read="duckdb")
    parts = list(tree.flatten()) if isinstance(tree, exp.And) else [tree]
    rest: list[str] = []
    box: dict[str, Interval] = {}
    for part in parts:
        got = _bound(part)
        if got is None:
            rest.append(part.sql())
            continue
        name, op, v = got
        lo, lo_inc, hi, hi_inc = box.get(name, (-math.inf, False, math.inf, False))
        if op in (">", ">="):
            lo, lo_inc = v, op == ">="
        else:
            hi, hi_inc = v, op == "<="
        box[name] = (lo, lo_inc, hi, hi_inc)
    return tuple(sorted(rest)), box


def _overlap(a: Interval, b: Interval) -> bool:
    lo, lo_inc = max((a[0], a[1]), (b[0], b[1]), key=lambda x: (x[0], not x[1]))
    hi, hi_inc = min((a[2], a[3]), (b[2], b[3]), key=lambda x: (x[0], x[1]))
    return lo < hi or (lo == hi and lo_inc and hi_inc)


def test_ladders_are_disjoint_and_monotone(rulebooks: RulebookSet) -> None:
    """Rules on the same subject, differing only in bounds on the same attributes, form a ladder:
    no value may fall in two of its steps, and points must move one way along each attribute."""
    checked = 0
    for rb in rulebooks.all_resolved():
        ladders: dict[tuple[object, ...], list[tuple[Rule, dict[str, Interval]]]] = defaultdict(list)
        for r in rb.rules:
            rest, box = _box(r.when)
            if box:
                ladders[(_subject(r), rest, tuple(sorted(box)))].append((r, box))
        for (_, _, attrs), steps in ladders.items():
            for i, (r1, b1) in enumerate(steps):
                for r2, b2 in steps[i + 1 :]:
                    assert not all(_overlap(b1[a], b2[a]) for a in attrs), f"{r1.at} overlaps {r2.at}"
            for a in attrs:
                lines: dict[tuple[Interval, ...], list[tuple[float, int]]] = defaultdict(list)
                for r, box in steps:
                    lines[tuple(box[o] for o in attrs if o != a)].append((box[a][0], r.points))
                for line in lines.values():
                    pts = [p for _, p in sorted(line)]
                    ups = pts == sorted(pts)
                    downs = pts == sorted(pts, reverse=True)
                    assert ups or downs, f"{rb.version}: {steps[0][0].at}: points not monotone along {a}"
                    checked += 1
    assert checked > 50


# --- errors name the file and line -----------------------------------------------------------------

HEADER = """\
jurisdiction: x
name: X
level: city
version: 1
effective_from: 2020-01-01
source: illustrative
scale: {base: 1000, min: 0, max: 1300}
grades:
  - {grade: A, min: 0}
rules:
  - id: fine
    behaviour: late_bill_payment
    when: "days_late >= 30"
    points: -5
    source: illustrative
"""


def _bad_rulebook(subject: str, when: str) -> tuple[str, int]:
    rule = f"  - id: bad\n    {subject}\n    when: {when!r}\n    points: -5\n    source: illustrative\n"
    text = HEADER + rule
    line = text.splitlines().index("  - id: bad") + 1
    return text, line


@pytest.mark.parametrize(
    ("subject", "when", "message"),
    [
        ("behaviour: late_bill_payment", "hours > 3", "unknown attribute 'hours'"),
        ("characteristic: court_defaulter", "share > 0.5", "unknown attribute 'share'"),
        ("behaviour: unpaid_debt", "amount in (select amount from records)", "IN may only list literal"),
        ("behaviour: unpaid_debt", "amount > (select max(amount) from records)", "not allowed"),
        ("behaviour: unpaid_debt", "exists (select 1 from records)", "not allowed"),
    ],
)
def test_bad_condition_fails_naming_file_and_line(subject: str, when: str, message: str) -> None:
    text, line = _bad_rulebook(subject, when)
    layer = parse_layer(text, "x.yaml")  # the file itself is well-formed; the check is against the catalog
    with pytest.raises(LocatedError) as err:
        RulebookSet([layer]).resolve("x", dt.date(2020, 6, 1))
    assert f"x.yaml:{line}:" in str(err.value)
    assert message in str(err.value)
    assert "fine" not in str(err.value)


def test_unknown_behaviour_and_measure_fail_naming_file_and_line() -> None:
    text = HEADER + (
        "lists:\n"
        "  - id: bad_list\n"
        "    kind: blacklist\n"
        "    label: Bad\n"
        "    measures: [no_such_measure]\n"
        "    source: illustrative\n"
    )
    line = text.splitlines().index("  - id: bad_list") + 1
    with pytest.raises(LocatedError, match=rf"x\.yaml:{line}:.*no_such_measure"):
        RulebookSet([parse_layer(text, "x.yaml")]).resolve("x", dt.date(2020, 6, 1))


def test_malformed_field_fails_naming_file_and_line() -> None:
    text = HEADER.replace("    points: -5\n", "    points: many\n", 1)
    line = text.splitlines().index("    points: many") + 1
    with pytest.raises(LocatedError, match=rf"x\.yaml:{line}: rules\.0\.points"):
        parse_layer(text, "x.yaml")


def test_removing_an_item_nothing_inherits_fails() -> None:
    parent = parse_layer(HEADER.replace("level: city", "level: national"), "parent.yaml")
    child = parse_layer(
        "jurisdiction: y\nname: Y\nlevel: city\nextends: x\nversion: 1\neffective_from: 2020-01-01\n"
        "source: illustrative\nremove:\n  rules: [no_such_rule]\n",
        "child.yaml",
    )
    with pytest.raises(LocatedError, match=r"child\.yaml:9: remove\.rules: .*no_such_rule"):
        RulebookSet([parent, child]).resolve("y", dt.date(2020, 6, 1))


def test_diff_reports_what_rules_say_not_where_they_are_written():
    from socialcredit.rulebook import RulebookSet, shipped_layers
    from socialcredit.rulebook_diff import diff

    rbs = RulebookSet(shipped_layers())
    r1 = rbs.resolve("rongcheng", None, {"rongcheng": 1})
    r2 = rbs.resolve("rongcheng", None, {"rongcheng": 2})
    d = diff(r1, r2)
    assert d["rules"] == []  # version 2 repeats version 1's rules (on other lines)
    assert [i for i, _, _ in d["lists"]] == ["blacklist"] and "disclosure" in d["other"]
    other = diff(r1, rbs.resolve("shanghai", None, {}))
    assert any(kind == "added" for kind, *_ in other["rules"])


# ------------------------------------------------------------------ every problem at once, each located


def line_of(text: str, fragment: str) -> int:
    return next(i for i, x in enumerate(text.splitlines(), start=1) if fragment in x)


def test_every_problem_of_a_file_is_told_at_once_each_with_its_line() -> None:
    """An impossible date, a word for a number, a bad duration, a duplicate key and an id used twice: five
    problems, one message, in line order (once the first one alone, or a traceback for the date)."""
    text = (
        HEADER.replace("effective_from: 2020-01-01", "effective_from: 2024-13-01").replace(
            "    points: -5\n", "    points: many\n", 1
        )
        + "  - id: fine\n    behaviour: littering\n    points: -1\n    valid_for: 2w\n    source: illustrative\n"
        + "  - id: other\n    behaviour: littering\n    points: -1\n    points: -2\n    source: illustrative\n"
    )
    with pytest.raises(LocatedError) as err:
        parse_layer(text, "x.yaml")
    lines = str(err.value).splitlines()
    assert lines == [
        f"x.yaml:{line_of(text, '2024-13-01')}: '2024-13-01' is not a valid value: month must be in 1..12",
        f"x.yaml:{line_of(text, 'points: many')}: rules.0.points: Input should be a valid integer, unable to parse "
        "string as an integer",
        f"x.yaml:{line_of(text, 'valid_for: 2w')}: rules.1.valid_for: String should match pattern '^[1-9][0-9]*[dmy]$'",
        f"x.yaml:{line_of(text, 'points: -2')}: duplicate key 'points' (the first one is read)",
    ]
    fixed = text.replace("2024-13-01", "2024-12-01").replace("points: many", "points: -5").replace("2w", "2y")
    with pytest.raises(LocatedError) as err:
        parse_layer(fixed, "x.yaml")
    assert str(err.value).splitlines() == [
        f"x.yaml:{[i for i, x in enumerate(fixed.splitlines(), 1) if x == '  - id: fine'][1]}: rules: id 'fine' is "
        "used twice in this file",
        f"x.yaml:{line_of(fixed, 'points: -2')}: duplicate key 'points' (the first one is read)",
    ]


def test_every_problem_against_the_catalog_and_parents_is_told_at_once(tmp_path: Path) -> None:
    """Across rules, caps, lists, removals and grades, and across files: all of them, each at its line."""
    national = tmp_path / "nat@1.yaml"
    national.write_text(
        HEADER.replace("jurisdiction: x", "jurisdiction: nat")
        .replace("level: city", "level: national")
        .replace("  - {grade: A, min: 0}\n", "  - {grade: B, min: 0}\n  - {grade: A, min: 10}\n"),
        encoding="utf-8",
    )
    city = tmp_path / "town@1.yaml"
    text = (
        "jurisdiction: town\nname: Town\nlevel: city\nextends: nat\nversion: 1\neffective_from: 2020-02-01\n"
        "source: illustrative\nrules:\n"
        "  - id: t.one\n    behaviour: no_such_thing\n    points: -1\n    source: illustrative\n"
        "  - id: t.two\n    characteristic: littering\n    points: -1\n    source: illustrative\n"
        "caps:\n  - id: t.cap\n    behaviour: guarantor_for_defaulter\n    max: 5\n    source: illustrative\n"
        "lists:\n  - id: t_list\n    kind: blacklist\n    label: T\n    measures: [no_such_measure]\n"
        "    source: illustrative\n"
        "remove:\n  rules: [fine, not_inherited]\n"
    )
    city.write_text(text, encoding="utf-8")
    with pytest.raises(LocatedError) as err:
        validate_files([national, city], base=[])
    lines = str(err.value).splitlines()
    assert (
        lines[0] == f"{national}:{line_of(national.read_text(), 'grade: B')}: grades must be listed highest "
        "first, each once (town@1+nat@1)"
    )
    assert (
        lines[1] == f"{national}:{line_of(national.read_text(), 'grade: B')}: the lowest grade must start at "
        "or below scale.min (0) (town@1+nat@1)"
    )
    at = {f: f"{city}:{line_of(text, f)}: " for f in ("t.one", "t.two", "t.cap", "t_list", "not_inherited")}
    assert lines[2:] == [
        at["t.one"] + "unknown behaviour 'no_such_thing'",
        at["t.two"] + "unknown characteristic 'littering': it is a behaviour (an event an agency reports); write "
        "`behaviour: littering`",
        at["t.cap"] + "cap names unknown behaviour 'guarantor_for_defaulter': it is a characteristic (a state the "
        "citizen is in: guarantor for a defaulter), set by behaviour 'guarantee_default', cleared by "
        "'guarantee_settled'; write `characteristic: guarantor_for_defaulter` to score the state, or "
        "`behaviour: guarantee_default` to score the event that sets it",
        at["t_list"] + "list 't_list' names unknown measure 'no_such_measure'",
        at["not_inherited"] + "remove.rules: nothing inherited has id 'not_inherited'",
    ]


def test_a_characteristic_written_as_a_behaviour_says_what_it_is_and_what_sets_it() -> None:
    text, line = _bad_rulebook("behaviour: guarantor_for_defaulter", "amount > 0")
    with pytest.raises(LocatedError) as err:
        RulebookSet([parse_layer(text, "x.yaml")]).resolve("x", dt.date(2020, 6, 1))
    assert str(err.value) == (
        f"x.yaml:{line}: unknown behaviour 'guarantor_for_defaulter': it is a characteristic (a state the citizen "
        "is in: guarantor for a defaulter), set by behaviour 'guarantee_default', cleared by 'guarantee_settled'; "
        "write `characteristic: guarantor_for_defaulter` to score the state, or `behaviour: guarantee_default` to "
        "score the event that sets it"
    )
    text, line = _bad_rulebook("behaviour: late_bil_payment", "days_late > 0")
    with pytest.raises(LocatedError, match=r"unknown behaviour 'late_bil_payment' \(did you mean 'late_bill_payment'"):
        RulebookSet([parse_layer(text, "x.yaml")]).resolve("x", dt.date(2020, 6, 1))


# ------------------------------------------------------------------ a version file is a complete rulebook


def test_a_new_version_that_drops_what_the_previous_had_is_warned_about_by_name() -> None:
    """Shanghai's filial-piety rule was lost by an author who wrote only the changes into shanghai@2."""
    shanghai = load_layer(shipped_dir() / "shanghai@1.yaml")
    delta = parse_layer(
        "jurisdiction: shanghai\nname: Shanghai\nlevel: city\nextends: national\nversion: 2\n"
        "effective_from: 2027-01-01\nsource: illustrative\nrules:\n"
        "  - id: sh.new\n    behaviour: littering\n    points: -1\n    source: illustrative\n",
        "shanghai@2.yaml",
    )
    warnings = dropped(delta, shanghai)
    had = [r.id for r in shanghai.rules]
    assert "sh.neglecting_parents" in had
    assert warnings[0] == (
        f"shanghai@2.yaml:1: shanghai@2 drops {len(had)} of the rules shanghai@1 had: "
        f"{', '.join(had)} (a version file is a complete rulebook, not a list of changes: "
        "repeat them to keep them)"
    )
    assert any(
        w.startswith("shanghai@2.yaml:1: shanghai@2 drops 1 of the caps shanghai@1 had: sh.visiting_parents.per_year")
        for w in warnings
    )
    assert any("drops the disclosure shanghai@1 set, so its parents' apply" in w for w in warnings)
    assert dropped(shanghai, shanghai) == [], "a complete copy drops nothing"
    beijing = load_layer(shipped_dir() / "beijing@1.yaml")
    again = beijing.model_copy(update={"version": 2, "remove": Remove()})
    assert any(
        "no longer removes the inherited rules beijing@1 removed, so they apply again: visiting_parents" in w
        for w in dropped(again, beijing)
    )


def test_where_authors_look_says_a_version_file_is_a_complete_rulebook() -> None:
    """An author who wrote only the changes lost Shanghai's filial-piety rule: the README and the rulebook
    reference say a version is whole, and that `rulebook validate` warns about what it drops."""
    root = Path(__file__).resolve().parents[1]
    for page in (root / "README.md", root / "docs" / "rulebooks.md"):
        text = " ".join(page.read_text(encoding="utf-8").split())
        assert "A version file is a complete rulebook of its jurisdiction, not a list of changes" in text, page
        assert "`rulebook validate` warns" in text or "rulebook validate FILE…` checks" in text, page
