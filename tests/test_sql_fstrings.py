"""SQL is not built by pasting text (SPEC §4, issue #14): f-string SQL in `src/` is rare, and each says why.

Values reach SQL as bound parameters (`?`) or sqlglot literals, identifiers and fragments as sqlglot trees;
an f-string that builds SQL can carry a value past both. A few remain where the interpolated part is a
name the code itself chose, never data; each carries a `# sql-fstring: why` comment on its first line or
the line above, and the total is capped.

What counts as SQL is read from the f-string's own text (its constant parts): it opens with a statement
keyword (`SELECT`, `WITH`, `INSERT`, `ATTACH`, `SET` …) or names two clauses (`SELECT … FROM`, `WHERE …
JOIN`). Upper case only, so prose and error messages that mention a word are not SQL.

`python tests/test_sql_fstrings.py` prints the count per file (`-v`: each one's line).
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "socialcredit"
MARK = "# sql-fstring:"
MOST = 10  # issue #14's acceptance: at most ten, each with a comment saying why

STATEMENT = re.compile(
    r"^\s*(SELECT|WITH|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|ATTACH|DETACH|SET|USE|COPY|PRAGMA|EXPORT)\b"
)
CLAUSE = re.compile(r"\b(SELECT|FROM|WHERE|JOIN|GROUP BY|ORDER BY|HAVING|INTO|VALUES|UNION|TABLE|VIEW)\b")

# Files not yet rewritten, with their counts when listed: they may not grow. None left: the store's own modules,
# the last listed, build their statements as sqlglot trees (`socialcredit.sqltemplates.fill`) and bind values.
PENDING: dict[str, int] = {}


@dataclass(frozen=True)
class Found:
    path: str  # relative to src/socialcredit
    line: int
    text: str  # the source line it starts on
    why: str | None  # the `# sql-fstring:` comment, if any


def looks_like_sql(node: ast.JoinedStr) -> bool:
    """An f-string with at least one interpolation whose constant text reads as SQL."""
    if not any(isinstance(v, ast.FormattedValue) for v in node.values):
        return False
    text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return bool(STATEMENT.match(text)) or len(set(CLAUSE.findall(text))) >= 2


def _why(lines: list[str], line: int) -> str | None:
    for text in (lines[line - 1], lines[line - 2] if line > 1 else ""):
        if MARK in text:
            return text.split(MARK, 1)[1].strip() or None
    return None


def sql_fstrings(path: Path, root: Path = SRC) -> list[Found]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    rel = path.relative_to(root).as_posix()
    found = [
        Found(rel, n.lineno, lines[n.lineno - 1].strip(), _why(lines, n.lineno))
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.JoinedStr) and looks_like_sql(n)
    ]
    return sorted(found, key=lambda f: f.line)


@cache
def everywhere(root: Path = SRC) -> dict[str, list[Found]]:
    """Each file's SQL f-strings (files without any left out); read once per session."""
    found = {p.relative_to(root).as_posix(): sql_fstrings(p, root) for p in sorted(root.rglob("*.py"))}
    return {k: v for k, v in found.items() if v}


def test_the_finder_sees_sql_fstrings_and_not_prose(tmp_path: Path) -> None:
    """The finder itself: one it cannot see would make the tests below pass vacuously."""
    (tmp_path / "m.py").write_text(
        'a = f"SELECT * FROM {t}"\n'
        'b = f"""{x}_std AS (SELECT ckey FROM {x}.score_log)"""\n'
        "c = f\"ATTACH '{p}' AS a\"  # sql-fstring: a test\n"
        'd = f"{n} citizens: paste the SET VARIABLE lines, then the query"\n'
        'e = "SELECT * FROM t WHERE x = ?"\n'
        'f = f"{n} records from {city}"\n'
    )
    found = sql_fstrings(tmp_path / "m.py", tmp_path)
    assert [(f.line, f.why) for f in found] == [(1, None), (2, None), (3, "a test")]


def test_sql_fstrings_are_few_and_each_says_why() -> None:
    found = everywhere()
    mine = [f for path, fs in found.items() if path not in PENDING for f in fs]
    silent = [f"{f.path}:{f.line}: {f.text}" for f in mine if not f.why]
    assert not silent, f"f-string SQL without a `{MARK} why` comment (use `?` or sqlglot):\n" + "\n".join(silent)
    assert len(mine) <= MOST, "more f-string SQL than issue #14 allows:\n" + "\n".join(f.text for f in mine)


def test_the_files_being_rewritten_do_not_grow() -> None:
    found = everywhere()
    grown = {p: len(found.get(p, [])) for p, most in PENDING.items() if len(found.get(p, [])) > most}
    assert not grown, f"more f-string SQL than when they were listed as pending: {grown} (was {PENDING})"


if __name__ == "__main__":
    found = everywhere()
    for path, fs in found.items():
        print(f"{len(fs):4d} {path}{' (pending: walls)' if path in PENDING else ''}")
        if "-v" in sys.argv:
            for f in fs:
                print(f"       {f.line}: {f.text[:100]}" + (f"   [{f.why}]" if f.why else ""))
    print(f"{sum(len(fs) for fs in found.values()):4d} in all")
