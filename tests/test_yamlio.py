"""Located YAML: every problem names the file and line it comes from."""

import datetime as dt

import pytest
from pydantic import BaseModel, ConfigDict

from socialcredit.yamlio import LocatedError, parse_yaml_located, validate_located


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    points: int


def test_lines_of_nested_values() -> None:
    data, where = parse_yaml_located("a: 1\nitems:\n  - code: x\n    points: 2\n  - code: y\n", "f.yaml")
    assert data["items"][1]["code"] == "y"
    assert where.line(("items", 1, "code")) == 5
    assert where.line(("items", 0, "points")) == 4
    assert where.line(("items", 0, "nothing", 3)) == 3  # deepest known prefix


def test_validation_errors_point_at_the_field() -> None:
    text = "items:\n  - code: x\n    points: 2\n  - code: y\n    points: many\n    extra: 1\n"
    data, where = parse_yaml_located(text, "f.yaml")
    with pytest.raises(LocatedError) as e:
        validate_located(Item, data["items"][1], "f.yaml", where, ("items", 1))
    message = str(e.value)
    assert "f.yaml:5: points:" in message
    assert "f.yaml:6: extra:" in message


@pytest.mark.parametrize(
    ("text", "line"),
    [("a: [1, 2\nb: 3\n", 2), ("a: 1\na: 2\n", 2), ("a:\n  b: 1\n c: 2\n", 3)],
)
def test_bad_yaml_is_located(text: str, line: int) -> None:
    with pytest.raises(LocatedError, match=rf"^f\.yaml:{line}:"):
        parse_yaml_located(text, "f.yaml")


def test_an_alias_bomb_is_refused_at_once_not_expanded():
    """Nine nested levels of aliases would be 9⁹ values (hours and gigabytes); refused before any is built."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    with pytest.raises(LocatedError, match=r"bomb\.yaml:1: anchors and aliases"):
        parse_yaml_located("\n".join(lines), "bomb.yaml")


def test_a_single_alias_is_refused_too():
    with pytest.raises(LocatedError, match=r"doc\.yaml:1: anchors and aliases"):
        parse_yaml_located("a: &x 1\nb: *x\n", "doc.yaml")


def test_an_impossible_date_is_a_located_error_not_a_traceback():
    why = r"book\.yaml:2: '2024-13-01' is not a valid value: month must be in 1\.\.12"
    with pytest.raises(LocatedError, match=why):
        parse_yaml_located("version: 7\neffective_from: 2024-13-01\n", "book.yaml")


def test_keep_going_reads_past_bad_values_and_names_each():
    """For a caller that reports every problem of a file at once: the bad values stay text, the first of two
    keys wins, and each problem keeps its line; validation then skips what was already told."""
    text = "version: 7\neffective_from: 2024-13-01\nagain: 2023-02-30\nversion: 8\n"
    data, where = parse_yaml_located(text, "book.yaml", keep_going=True)
    assert data == {"version": 7, "effective_from": "2024-13-01", "again": "2023-02-30"}
    assert where.located("book.yaml") == [
        "book.yaml:2: '2024-13-01' is not a valid value: month must be in 1..12",
        "book.yaml:3: '2023-02-30' is not a valid value: day is out of range for month",
        "book.yaml:4: duplicate key 'version' (the first one is read)",
    ]

    class Book(BaseModel):
        model_config = ConfigDict(extra="forbid")
        version: str
        effective_from: dt.date

    with pytest.raises(LocatedError) as e:
        validate_located(Book, data, "book.yaml", where)
    assert str(e.value).splitlines() == [
        "book.yaml:1: version: Input should be a valid string",
        "book.yaml:2: '2024-13-01' is not a valid value: month must be in 1..12",
        "book.yaml:3: '2023-02-30' is not a valid value: day is out of range for month",
        "book.yaml:3: again: Extra inputs are not permitted",
        "book.yaml:4: duplicate key 'version' (the first one is read)",
    ]
