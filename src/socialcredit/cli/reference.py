"""`docs/cli.md`: every command of the CLI with its arguments and options, generated from the Typer app.

Written by `make docs` and checked by a test, like the catalog and rulebook pages, so the reference a
reader sees is the CLI that runs. Built from the commands' declared parameters, never from rendered
`--help` text, so it does not depend on the terminal it was made in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer.main

from socialcredit.cli.app import app


# Typer ships its own copy of click, so commands and parameters are recognised by what they have
def _walk(group: Any, prefix: list[str]) -> list[tuple[list[str], Any]]:
    out: list[tuple[list[str], Any]] = []
    for name in sorted(group.commands):
        command = group.commands[name]
        if command.hidden:
            continue
        path = [*prefix, name]
        if hasattr(command, "commands"):
            out += _walk(command, path)
        else:
            out.append((path, command))
    return out


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(p: Any) -> str:
    if p.required:
        return "required"
    if p.default is None or p.default is False or p.default == ():
        return ""
    return f"`{p.default}`"


def page() -> str:
    """The reference as Markdown."""
    root = typer.main.get_command(app)
    parts = [
        "# Command-line reference",
        "",
        "Generated from the Typer app by `make docs`; do not edit by hand. `socialcredit COMMAND --help` says "
        "the same.",
        "",
    ]
    for path, command in _walk(root, []):
        args = [p for p in command.params if p.param_type_name == "argument"]
        usage = " ".join(["socialcredit", *path, *((a.name or "").upper() for a in args)])
        parts += [
            f"## `{' '.join(path)}`",
            "",
            _cell((command.help or "").split("\n\n")[0]),
            "",
            f"    {usage} [OPTIONS]",
            "",
        ]
        rows = []
        for p in command.params:
            if p.param_type_name == "argument":
                what = _cell(getattr(p, "help", None) or "argument")
                rows.append(((p.name or "").upper(), what, "required" if p.required else ""))
            elif p.param_type_name == "option":
                rows.append((", ".join(p.opts + p.secondary_opts), _cell(p.help or ""), _default(p)))
        if rows:
            parts += ["| name | what | default |", "|---|---|---|"]
            parts += [f"| `{n}` | {w} | {d} |" for n, w, d in rows]
            parts.append("")
    return "\n".join(parts)


def write(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cli.md"
    path.write_text(page(), encoding="utf-8")
    return path


if __name__ == "__main__":
    import sys

    print(write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")))
