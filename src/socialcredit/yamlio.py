"""YAML with line numbers, so every error in a rulebook or catalog points at `file:line`.

PyYAML's composed node tree knows where each node starts; we keep a map from the path of every
value (keys and list indexes) to its line, and translate pydantic's error locations through it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Key = str | int
M = TypeVar("M", bound=BaseModel)


class LocatedError(ValueError):
    """A user-facing error that already says where: `file:line: message` (one or more lines)."""


def first_of(items: list[str], sep: str = ", ", limit: int = 20) -> str:
    """The first `limit` of the items an error names, and how many it leaves out: a message about ten
    thousand bad requests stays readable, and never suggests that the ones it shows are all there are."""
    shown = sep.join(items[:limit])
    return shown if len(items) <= limit else f"{shown}{sep}and {len(items) - limit} more ({len(items)} in all)"


class Where:
    """Lines of every value in one YAML document, by path; and, when parsing went on past bad values
    (`keep_going`), what was wrong with them, so every problem of a file is told in one pass."""

    def __init__(self) -> None:
        self._lines: dict[tuple[Key, ...], int] = {}
        self.problems: list[tuple[int, str]] = []  # (line, message) of values that could not be read
        self.bad: set[tuple[Key, ...]] = set()  # their paths: a later check of them would only repeat this

    def located(self, name: Path | str) -> list[str]:
        return [f"{name}:{line}: {message}" for line, message in self.problems]

    def add(self, path: tuple[Key, ...], line: int) -> None:
        self._lines[path] = line

    def line(self, path: tuple[Key, ...]) -> int:
        """The line of the deepest known prefix of `path` (1-based)."""
        for n in range(len(path), -1, -1):
            if path[:n] in self._lines:
                return self._lines[path[:n]]
        return 1


MAX_NODES = 200_000  # far above the largest shipped rulebook (a few thousand): a bound, not a budget


def _build(
    node: yaml.Node, path: tuple[Key, ...], where: Where, seen: set[int] | None = None, keep_going: bool = False
) -> Any:
    """The document as plain data, refusing anchors/aliases: an alias is the same node reached twice, and
    nine nested levels of them (a "billion laughs") would expand to 9⁹ values from a few hundred bytes.

    With `keep_going`, a value that cannot be read (a date such as 2024-13-01) and a duplicate key are noted
    in `where` instead of raised: the value stays its text, the first of two keys wins, and the rest of the
    document is still read, so its other problems can be told at the same time."""
    if seen is None:
        seen = set()
    if id(node) in seen:
        raise LocatedError(
            f"line {node.start_mark.line + 1}: anchors and aliases (&, *) are not allowed; write each value out"
        )
    seen.add(id(node))
    if len(seen) > MAX_NODES:
        raise LocatedError(f"line {node.start_mark.line + 1}: more than {MAX_NODES} values in one document")
    where.add(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for k, v in node.value:
            key = _scalar(k)
            if key in out:
                if not keep_going:
                    raise LocatedError(f"line {k.start_mark.line + 1}: duplicate key {key!r}")
                where.problems.append((k.start_mark.line + 1, f"duplicate key {key!r} (the first one is read)"))
                continue
            out[key] = _build(v, (*path, str(key)), where, seen, keep_going)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v, (*path, i), where, seen, keep_going) for i, v in enumerate(node.value)]
    if not keep_going:
        return _scalar(node)
    try:
        return _scalar(node)
    except LocatedError as e:
        where.problems.append((node.start_mark.line + 1, str(e).split(": ", 1)[1]))
        where.bad.add(path)
        return node.value


def _scalar(node: yaml.Node) -> Any:
    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except (ValueError, yaml.YAMLError) as e:  # a date such as 2024-13-01 matches YAML's pattern, then fails
        why = getattr(e, "problem", None) or str(e)
        raise LocatedError(f"line {node.start_mark.line + 1}: {node.value!r} is not a valid value: {why}") from None


def parse_yaml_located(text: str, name: str, keep_going: bool = False) -> tuple[Any, Where]:
    """The document and the lines of its values; a problem raises at once, unless `keep_going` (see `_build`)
    leaves the values it can name in `where.problems` for the caller to report with its own."""
    where = Where()
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise LocatedError(f"{name}:{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if node is None:
        return None, where
    try:
        return _build(node, (), where, keep_going=keep_going), where
    except LocatedError as e:
        raise LocatedError(f"{name}:{str(e).removeprefix('line ')}") from None


def load_yaml_located(path: Path) -> tuple[Any, Where]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise LocatedError(f"{path}: cannot read: {e.strerror}") from None
    return parse_yaml_located(text, str(path))


def validate_located(model: type[M], raw: Any, name: Path | str, where: Where, prefix: tuple[Key, ...] = ()) -> M:
    """Validate with pydantic, re-raising every problem as `file:line: field: message`, together with the
    values `where` could not read (in line order)."""
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        problems = [*where.located(name), *_located(e, name, where, prefix)]
        raise LocatedError("\n".join(in_line_order(problems))) from None


def in_line_order(problems: list[str]) -> list[str]:
    """`file:line: …` messages sorted by file, then line (as numbers), each once."""

    def key(message: str) -> tuple[str, int]:
        m = re.match(r"(.*?):([0-9]+): ", message)
        return (m.group(1), int(m.group(2))) if m else (message, 0)

    return sorted(dict.fromkeys(problems), key=key)


def _located(e: ValidationError, name: Path | str, where: Where, prefix: tuple[Key, ...]) -> list[str]:
    out = []
    for err in e.errors():
        loc = tuple(x for x in err["loc"] if isinstance(x, (str, int)))
        if (*prefix, *loc) in where.bad and err["type"] != "extra_forbidden":
            continue  # already told: the value itself could not be read (a field it should not be in is news)
        field = ".".join(str(x) for x in loc) or "(document)"
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{name}:{where.line((*prefix, *loc))}: {field}: {msg}")
    return out
