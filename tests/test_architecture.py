"""The house's walls that an import graph can show: no import circle in `src/`, and the core imports no door.

The graph is read from the source (every `import`, at the top or inside a function, since a lazy import
is how a circle hides), not from what Python happened to load. An import inside `if TYPE_CHECKING:` is
left out: it names a type for the checker and runs nothing.
"""

from __future__ import annotations

import ast
import graphlib
import re
from collections.abc import Callable
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "socialcredit"
# the doors: what a person or a program comes in through (SPEC §4); everything else is the core
DOORS = ("cli", "api", "pages", "simulate", "report", "export")


def modules(root: Path = SRC) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking_only(tree: ast.Module) -> set[int]:
    """The line numbers of imports under `if TYPE_CHECKING:`."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            found = (n for stmt in node.body for n in ast.walk(stmt))
            lines |= {n.lineno for n in found if isinstance(n, ast.Import | ast.ImportFrom)}
    return lines


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's imports of other modules of the package (the deepest module a name resolves to)."""

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_only(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or node.lineno in skip:
                continue
            if isinstance(node, ast.Import):
                targets |= {resolve(a.name) for a in node.names if a.name.startswith("socialcredit")}
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if base.startswith("socialcredit"):
                targets |= {resolve(f"{base}.{a.name}") for a in node.names}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def door(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in DOORS else None


def test_the_graph_is_read_as_python_resolves_it() -> None:
    """The reader itself: a circle it cannot see would make the test below pass vacuously."""
    graph = imports(modules())
    assert "socialcredit.engine.runner" in graph["socialcredit.engine"]  # `from socialcredit.engine.runner import`
    assert "socialcredit.engine.assessments" in graph["socialcredit.engine.runner"]  # `from … import assessments`
    assert "socialcredit.cli.console" in graph["socialcredit.cli.report"]
    assert "socialcredit.store" in graph["socialcredit.engine.runner"]
    assert "socialcredit.store" not in graph["socialcredit.store.ingest"]  # only under TYPE_CHECKING, if at all


def test_no_import_circle_in_src() -> None:
    graph = imports(modules())
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        raise AssertionError(f"import circle: {' -> '.join(e.args[1])}") from None


def test_a_circle_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / "socialcredit"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from socialcredit import b\n")
    (pkg / "b.py").write_text("from socialcredit.a import f\n")
    graph = imports(modules(pkg))
    assert graph["socialcredit.a"] == {"socialcredit.b"} and graph["socialcredit.b"] == {"socialcredit.a"}


def test_the_core_imports_no_door() -> None:
    graph = imports(modules())
    wrong = sorted(f"{m} imports {t}" for m, ts in graph.items() if door(m) is None for t in ts if door(t))
    assert not wrong, "the core imports a door:\n" + "\n".join(wrong)


def door_imports(importers: tuple[str, ...], allowed: Callable[[str | None, str | None], bool]) -> list[str]:
    """Every import by a module of the doors `importers` of a module that `allowed(its door, their door)` refuses."""
    graph = imports(modules())
    return sorted(f"{m} imports {t}" for m, ts in graph.items() if door(m) in importers
                  for t in ts if not allowed(door(t), door(m)))  # fmt: skip


def test_the_simulator_and_the_report_import_no_other_door() -> None:
    """The command line may call them; they call the core, never the command line or the service."""
    wrong = door_imports(("simulate", "report"), lambda theirs, own: theirs in (None, own))
    assert not wrong, "\n".join(wrong)


def test_the_service_imports_neither_the_simulator_nor_the_reports() -> None:
    """The HTTP API and its pages answer from a store through the core, whatever made the store: a server
    process never loads the simulator or the reports. (The pages drew avatars from the simulator's package;
    loading it took 0.6 s of each server process's start: the writer's app built in 1.1 s, now 0.5 s.)"""
    wrong = door_imports(("api", "pages"), lambda theirs, own: theirs not in ("simulate", "report"))
    assert not wrong, "\n".join(wrong)


# ------------------------------------------------------------------------------------- who may write

# The store writes facts and the engine derived tables (SPEC §4); no other module executes SQL that writes.
WRITERS = ("store", "engine")
# build statements for the store and the engine to execute (`schema.create`, `sqltemplates.create`) and
# execute none
DECLARES = ("schema.py", "sqltemplates.py")
# a statement that changes the database, however it is laid out or cased (prose such as "update the list"
# does not match: each verb must be followed by what SQL follows it with)
WRITE = re.compile(
    r"\b(INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+[\w.\"?]+\s+SET|DELETE\s+FROM|"
    r"CREATE\s+(OR\s+REPLACE\s+)?(TEMP\w*\s+|\?\s*)?(TABLE|VIEW|INDEX|SEQUENCE|MACRO|SCHEMA|TYPE|\?)|"
    r"DROP\s+(TABLE|VIEW|INDEX|SEQUENCE|MACRO|SCHEMA|TYPE|\?)|ALTER\s+(TABLE|VIEW|\?)|"
    r"COPY\s+[\w.\"(?]+.*\b(TO|FROM)\b|TRUNCATE\b)",
    re.I | re.S,
)
# what a string must begin with to count as SQL when it is not passed straight to an execute
LEADING = re.compile(r"\s*(INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|COPY|TRUNCATE)\b", re.I)
EXECUTES = {"execute", "executemany", "sql", "query"}
# DuckDB's relation API and sqlglot's builders of writing statements
WRITING_CALLS = {"insert_into", "create_view", "insert", "delete", "update"}
WRITING_NODES = {"Create", "Drop", "Insert", "Delete", "Update", "Alter", "Copy", "TruncateTable"}


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of docstring nodes (module, class, function): prose, which names INSERT INTO freely."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant | ast.JoinedStr):
                found.add(id(first.value))
    return found


def _text(node: ast.AST) -> str | None:
    """A string constant's text, an f-string's with each `{…}` as `?`, or None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "?" for v in node.values)
    return None


def writes(path: Path) -> list[str]:
    """Each place a module executes, or spells, SQL that writes: `line: what`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    found: list[tuple[int, str]] = []  # one report per line: the first reason found
    for node in ast.walk(tree):
        if id(node) in skip or id(node) in parts:
            continue
        text = _text(node)
        if text is not None and LEADING.match(text) and WRITE.search(text):
            found.append((node.lineno, f"SQL that writes: {text.strip()[:60]!r}"))
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        if name in EXECUTES:
            for arg in node.args[:1]:
                text = _text(arg)
                if text is not None and WRITE.search(text):
                    found.append((node.lineno, f".{name}() of SQL that writes: {text.strip()[:60]!r}"))
        owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
        if name in WRITING_NODES or (name in WRITING_CALLS and owner in ("exp", "sqlglot")):
            found.append((node.lineno, f"builds a writing statement ({owner + '.' if owner else ''}{name})"))
        elif name in ("insert_into", "create_view") and owner != "exp":
            found.append((node.lineno, f"writes through DuckDB's relation API (.{name})"))
    first = {line: what for line, what in reversed(found)}
    return [f"{line}: {first[line]}" for line in sorted(first)]


def writers_outside(root: Path = SRC) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] in WRITERS or rel in DECLARES:
            continue
        out += [f"{rel}:{w}" for w in writes(path)]
    return out


def test_only_the_store_and_the_engine_write() -> None:
    found = writers_outside()
    assert not found, "SQL that writes outside store/ and engine/ (write through the store's API):\n" + "\n".join(found)


def test_each_way_of_writing_is_found(tmp_path: Path) -> None:
    """The check itself: every spelling of a write below is reported, and the prose and reads are not."""
    pkg = tmp_path / "socialcredit"
    (pkg / "store").mkdir(parents=True)
    (pkg / "store" / "__init__.py").write_text('con.execute("INSERT INTO records VALUES (1)")\n')
    (pkg / "door.py").write_text(
        '"""Docstring prose: INSERT INTO x VALUES (1), CREATE TABLE y, DELETE FROM z."""\n'
        "def f(con, t, name):\n"
        '    """DELETE FROM z, in prose again."""\n'
        "    con.execute(\"SELECT 1 FROM t WHERE note = 'update the list'\")\n"
        '    con.execute("insert into t values (?)", [1])\n'
        '    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT 1")\n'
        "    q = '''\n        UPDATE cases SET status = ? WHERE case_id = ?'''\n"
        '    con.sql("WITH a AS (SELECT 1) DELETE FROM t")\n'
        '    con.from_arrow(t).insert_into("decisions")\n'
        '    con.execute(exp.delete("t").sql())\n'
        '    con.execute(exp.Drop(this=t, kind="TABLE").sql())\n'
        '    raise ValueError("Delete the file and try again")\n'
    )
    found = writers_outside(pkg)
    assert [w.split(":")[1] for w in found] == ["5", "6", "7", "9", "10", "11", "12"], found
