"""Reference pages generated from the data: the catalog and every shipped rulebook.

They are written to `docs/` by `make docs` and a test fails when they are stale, so the pages a
reader sees are always what the code runs.
"""

from __future__ import annotations

from pathlib import Path

from socialcredit.catalog import Catalog, default_catalog
from socialcredit.rulebook import RulebookSet, shipped_layers


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def catalog_page(c: Catalog) -> str:
    parts = [
        "# Catalog",
        "",
        "Generated from `src/socialcredit/catalog/*.yaml` by `make docs`; do not edit by hand.",
        "",
        f"## Behaviours ({len(c.behaviours)})",
        "",
        _table(
            ["code", "label", "category", "polarity", "attributes", "seed phrase"],
            [
                [b.code, b.label, b.category, b.polarity, ", ".join(b.attributes) or "—", b.seed or "—"]
                for b in c.behaviours.values()
            ],
        ),
        "",
        f"## Characteristics ({len(c.characteristics)})",
        "",
        _table(
            ["code", "label", "kind", "set by", "cleared by", "attributes"],
            [
                [
                    ch.code,
                    ch.label,
                    ch.kind,
                    ", ".join(ch.set_by) or "—",
                    ", ".join(ch.cleared_by) or "—",
                    ", ".join(ch.attributes) or "—",
                ]
                for ch in c.characteristics.values()
            ],
        ),
        "",
        f"## Measures ({len(c.measures)})",
        "",
        _table(
            ["code", "kind", "effect", "services", "reach", "public reason", "seed phrase"],
            [
                [m.code, m.kind, m.effect, ", ".join(m.services), m.reach, m.public_reason, m.seed or "—"]
                for m in c.measures.values()
            ],
        ),
        "",
        f"## Services ({len(c.services)})",
        "",
        _table(["code", "label", "provider"], [[s.code, s.label, s.provider] for s in c.services.values()]),
        "",
        f"## Agencies ({len(c.agencies)})",
        "",
        _table(
            ["code", "name", "kind", "may report"],
            [[a.code, a.name, a.kind, ", ".join(a.behaviours)] for a in c.agencies.values()],
        ),
        "",
        f"## Attributes ({len(c.attributes)})",
        "",
        _table(
            ["name", "type", "unit", "description"],
            [[a.name, a.type, a.unit or "—", a.description] for a in c.attributes.values()],
        ),
        "",
    ]
    return "\n".join(parts)


def rulebooks_page(rbs: RulebookSet) -> str:
    parts = [
        "# Rulebooks",
        "",
        "Generated from `src/socialcredit/rulebooks/*.yaml` by `make docs`; do not edit by hand. Each city's",
        "rulebook is resolved (inheritance applied) for every stretch of time between version changes.",
        "",
        "## Writing a version",
        "",
        "- **A version file is a complete rulebook of its jurisdiction, not a list of changes.** From its",
        "  `effective_from` on it replaces the previous version whole: a rule, cap, list or memory the previous",
        "  version had and this file does not repeat is gone, an inherited item the previous version removed",
        "  applies again unless this file removes it too, and a scale, grades or disclosure it does not set is",
        "  its parents'. To change one rule, copy the previous version, raise `version`, set `effective_from`",
        "  and edit (`rongcheng@2.yaml`, `national@2.yaml` and `beijing@2.yaml` are written so and say what",
        "  changed in `notes`).",
        "- Inheritance runs between jurisdictions, not versions: `extends` names the parent (national →",
        "  province → city), whose versions in force are stacked under this one; an item with a parent's id",
        "  overrides it, and `remove:` takes inherited items away by id.",
        "- `socialcredit rulebook validate FILE…` checks files with the shipped rulebooks they extend and tells",
        "  every problem at once, each as `file:line: message`; it warns, naming them, about the rules, caps,",
        "  lists and memory the previous version of the jurisdiction had and the file drops (`rulebook load`",
        "  warns the same against the store's versions).",
        "- `socialcredit rulebook load FILE` refuses an `effective_from` before the store's clock (its last",
        "  engine run) unless `--backdate` says rescoring past records under it is meant, as the admin API",
        "  and page do with the service's clock.",
        "- Every rule, cap, list and memory carries a `source`: `seed`, `illustrative`, or `reported: …`.",
        "",
    ]
    for city in rbs.cities:
        parts += [f"## {city}", ""]
        for rb in rbs.timeline(city):
            until = rb.effective_to.isoformat() if rb.effective_to else "now"
            d = rb.disclosure
            parts += [
                f"### {rb.version} ({rb.effective_from.isoformat()} → {until})",
                "",
                f"Scale {rb.scale.min}–{rb.scale.max}, base {rb.scale.base}; grades "
                + ", ".join(f"{g.grade} ≥ {g.min}" for g in rb.grades)
                + f". Publishes scores: {d.publish_scores}; billboard: {d.billboard}; station monitor: "
                f"{d.station_monitor}; notifies citizens: {d.notify_citizens}. {len(rb.rules)} rules.",
                "",
                _table(
                    ["list", "kind", "grades", "triggers", "measures", "source"],
                    [
                        [
                            x.id,
                            x.kind,
                            ", ".join(x.grades) or "—",
                            ", ".join(
                                f"{t.behaviour or t.characteristic}" + (f" for {t.duration}" if t.duration else "")
                                for t in x.triggers
                            )
                            or "—",
                            ", ".join(m.measure + (f" ({m.for_})" if m.for_ else "") for m in x.list_measures()),
                            x.source,
                        ]
                        for x in rb.lists
                    ],
                ),
                "",
            ]
            if len(rb.rules) <= 200:
                parts += [
                    _table(
                        ["rule", "on", "when", "points", "expires", "source"],
                        [
                            [
                                r.id,
                                r.behaviour or r.characteristic,
                                r.when or "always",
                                f"{r.points:+d}",
                                r.valid_for or "never",
                                r.source,
                            ]
                            for r in rb.rules
                        ],
                    ),
                    "",
                ]
            else:
                parts += [f"{len(rb.rules)} rules: see `socialcredit rulebook show {city}`.", ""]
    return "\n".join(parts)


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    pages = {
        "catalog.md": catalog_page(default_catalog()),
        "rulebooks.md": rulebooks_page(RulebookSet(shipped_layers())),
    }
    out = []
    for name, text in pages.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        out.append(path)
    return out


if __name__ == "__main__":
    import sys

    for p in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")):
        print(p)
