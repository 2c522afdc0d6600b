"""`rulebook.diff`: every kind of change an author can make shows, field by field, and nothing else does.

Each case edits the small national rulebook of conftest in one place and expects exactly that one
difference; the reverse diff must mirror it, and the same text (or the same text written differently)
must diff empty.
"""

from __future__ import annotations

from typing import Any

import pytest

from conftest import NATIONAL_YAML, city_yaml
from socialcredit.rulebook import Rulebook, RulebookSet, parse_layer
from socialcredit.rulebook_diff import diff
from socialcredit.text import plain

VOLUNTEER = (
    "  - id: volunteer\n    behaviour: volunteer_work\n    points: 5\n    valid_for: 2y\n    source: illustrative\n"
)
CONTACTS = (
    '  - id: contacts\n    characteristic: blacklisted_contacts\n    when: "share >= 0.5"\n    points: -7\n'
    "    source: illustrative\n"
)
NEW_RULE = "  - id: late.mild\n"
ADDED = (
    "  - id: smoking\n    behaviour: smoking_on_train\n    points: -3\n    valid_for: 1y\n"
    "    source: illustrative\n" + NEW_RULE
)


def resolve(national: str = NATIONAL_YAML, notify: bool = True) -> Rulebook:
    layers = [parse_layer(national, "national@1.yaml"), parse_layer(city_yaml(notify=notify), "testcity@1.yaml")]
    rb = RulebookSet(layers).resolve("testcity", None, {})
    assert rb is not None
    return rb


def edited(old: str, new: str) -> str:
    assert NATIONAL_YAML.count(old) == 1, old
    return NATIONAL_YAML.replace(old, new)


# (what an author did, (old text, new text) in the national rulebook, the one change expected:
#  section, id, change, field, before, after)
CASES: list[tuple[str, tuple[str, str], tuple[Any, ...]]] = [
    (
        "grade band raised",
        ("{grade: A, min: 120}", "{grade: A, min: 125}"),
        ("grades", "A", "changed", "min", 120, 125),
    ),
    ("scale base", ("base: 100", "base: 110"), ("scale", None, "changed", "base", 100, 110)),
    ("scale max", ("max: 200}", "max: 250}"), ("scale", None, "changed", "max", 200, 250)),
    ("cap cut", ("    max: 10\n", "    max: 6\n"), ("caps", "volunteer.cap", "changed", "max", 10, 6)),
    (
        "cap period",
        ("    per: year\n", "    per: month\n"),
        ("caps", "volunteer.cap", "changed", "per", "year", "month"),
    ),
    (
        "memory",
        ("never_lists: [whitelist]", "never_lists: []"),
        ("memory", "once", "changed", "never_lists", ["whitelist"], []),
    ),
    ("list grades", ("grades: [D]", "grades: [C, D]"), ("lists", "blacklist", "changed", "grades", ["D"], ["C", "D"])),
    (
        "list trigger",
        ("duration: 180d", "duration: 90d"),
        (
            "lists",
            "rail_list",
            "changed",
            "triggers",
            [{"behaviour": "smoking_on_train", "duration": "180d"}],
            [{"behaviour": "smoking_on_train", "duration": "90d"}],
        ),
    ),
    ("list min_stay", ("min_stay: 3m", "min_stay: 6m"), ("lists", "blacklist", "changed", "min_stay", "3m", "6m")),
    (
        "list measures",
        ("measures: [rail_ban]", "measures: [rail_ban, {measure: air_ban, for: 1y}]"),
        ("lists", "rail_list", "changed", "measures", ["rail_ban"], ["rail_ban", {"measure": "air_ban", "for": "1y"}]),
    ),
    (
        "list public",
        ("label: Rail ban\n", "label: Rail ban\n    public: false\n"),
        ("lists", "rail_list", "changed", "public", True, False),
    ),
    (
        "list label",
        ("label: Honour roll", "label: Roll of honour"),
        ("lists", "whitelist", "changed", "label", "Honour roll", "Roll of honour"),
    ),
    (
        "rule label",
        (VOLUNTEER, VOLUNTEER.replace("    source:", "    label: Volunteering\n    source:")),
        ("rules", "volunteer", "changed", "label", "", "Volunteering"),
    ),
    (
        "rule source",
        (VOLUNTEER, VOLUNTEER.replace("source: illustrative", "source: 'reported: a city paper'")),
        ("rules", "volunteer", "changed", "source", "illustrative", "reported: a city paper"),
    ),
    (
        "rule removed",
        (CONTACTS, ""),
        (
            "rules",
            "contacts",
            "removed",
            None,
            {
                "behaviour": None,
                "characteristic": "blacklisted_contacts",
                "when": "share >= 0.5",
                "points": -7,
                "valid_for": None,
                "label": "",
                "source": "illustrative",
            },
            None,
        ),
    ),
    ("rule points", ("points: -7", "points: -9"), ("rules", "contacts", "changed", "points", -7, -9)),
    (
        "rule condition",
        ('"share >= 0.5"', '"share >= 0.4"'),
        ("rules", "contacts", "changed", "when", "share >= 0.5", "share >= 0.4"),
    ),
    (
        "rule added",
        (NEW_RULE, ADDED),
        (
            "rules",
            "smoking",
            "added",
            None,
            None,
            {
                "behaviour": "smoking_on_train",
                "characteristic": None,
                "when": None,
                "points": -3,
                "valid_for": "1y",
                "label": "",
                "source": "illustrative",
            },
        ),
    ),
]


def row(section: str, id_: str | None, change: str, field: str | None, before: Any, after: Any) -> dict[str, Any]:
    return {"section": section, "id": id_, "change": change, "field": field, "before": before, "after": after}


@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_change_is_the_one_difference(edit: tuple[str, str], expected: tuple[Any, ...]) -> None:
    assert diff(resolve(), resolve(edited(*edit)))["changes"] == [row(*expected)]


def test_notification_and_disclosure() -> None:
    assert diff(resolve(), resolve(notify=False))["changes"] == [
        row("disclosure", None, "changed", "notify_citizens", True, False)
    ]


def everything_at_once() -> str:
    """Every case's edit that still applies after the ones before it: rules added, removed and changed at once."""
    text = NATIONAL_YAML
    for _, (old, new), _ in CASES:
        if text.count(old) == 1:
            text = text.replace(old, new)
    return text


@pytest.mark.parametrize(
    "text", [edited(*c[1]) for c in CASES] + [everything_at_once()], ids=[c[0] for c in CASES] + ["all at once"]
)
def test_the_reverse_diff_mirrors(text: str) -> None:
    forth, back = diff(resolve(), resolve(text)), diff(resolve(text), resolve())
    assert forth["changes"]
    swap = {"added": "removed", "removed": "added", "changed": "changed"}

    def key(c: dict[str, Any]) -> tuple[str, str, str, str]:
        return c["section"], str(c["id"]), c["change"], str(c["field"])

    mirrored = [
        {**c, "change": swap[c["change"]], "before": c["after"], "after": c["before"]} for c in forth["changes"]
    ]
    assert sorted(back["changes"], key=key) == sorted(mirrored, key=key)
    assert sorted((r[0], r[1]) for r in back["rules"]) == sorted((swap[r[0]], r[1]) for r in forth["rules"])
    assert {k: v[::-1] for k, v in back["other"].items()} == forth["other"]


def test_all_at_once_adds_removes_and_changes() -> None:
    changes = diff(resolve(), resolve(everything_at_once()))["changes"]
    assert {c["change"] for c in changes} == {"added", "removed", "changed"}
    assert {c["section"] for c in changes} == {"scale", "grades", "rules", "caps", "lists", "memory"}


def test_an_unchanged_rulebook_diffs_empty() -> None:
    same = NATIONAL_YAML.replace("measures: [air_ban]", "measures: [{measure: air_ban}]")  # another form, same rule
    d = diff(resolve(), resolve(same))
    assert (d["changes"], d["rules"], d["lists"], d["other"]) == ([], [], [], {})


def test_the_example_of_the_issue_shows_both_changes() -> None:
    """Raising a grade band and cutting a cap used to print nothing but an empty rules table."""
    text = edited("{grade: A, min: 120}", "{grade: A, min: 125}").replace("    max: 10\n", "    max: 6\n")
    got = [
        (c["section"], c["id"], c["field"], plain(c["before"]), plain(c["after"]))
        for c in diff(resolve(), resolve(text))["changes"]
    ]
    assert got == [("grades", "A", "min", "120", "125"), ("caps", "volunteer.cap", "max", "10", "6")]
