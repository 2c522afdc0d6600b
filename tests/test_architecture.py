"""The house's walls that an import graph can show: no import circle in `src/`, and the core imports no door.

The graph is read from the source (every `import`, at the top or inside a function, since a lazy import
is how a circle hides), not from what Python happened to load. An import inside `if TYPE_CHECKING:` is
left out: it names a type for the checker and runs nothing.
"""

from __future__ import annotations

import ast
import graphlib
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


def test_the_simulator_and_the_report_import_no_other_door() -> None:
    """The command line may call them; they call the core, never the command line or the service."""
    graph = imports(modules())
    wrong = sorted(
        f"{m} imports {t}"
        for m, ts in graph.items()
        if door(m) in ("simulate", "report")
        for t in ts
        if door(t) not in (None, door(m))
    )
    assert not wrong, "\n".join(wrong)
