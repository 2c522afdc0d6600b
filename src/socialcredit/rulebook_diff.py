"""The difference between two resolved rulebooks, section by section and field by field.

One answer for the CLI's `rulebook diff`, the admin API and the admin page (`diff`); `changes` names every
item added or removed and every field changed, in the words the YAML uses (`sections`).
"""

from __future__ import annotations

from typing import Any

from socialcredit.rulebook import ListDef, ListMeasure, Rulebook

SECTIONS = ("rulebook", "scale", "grades", "disclosure", "rules", "caps", "lists", "memory")


def _measure(m: ListMeasure) -> str | dict[str, str]:
    return m.measure if m.for_ is None else {"measure": m.measure, "for": m.for_}


def sections(rb: Rulebook) -> dict[str, dict[str | None, dict[str, Any]]]:
    """A resolved rulebook as section → item id (None for a single item) → its fields, in the words the YAML uses.

    Everything the rulebook says is here, and nothing about where it was written, so two rulebooks that say
    the same are equal; a list's measures are in one form (`air_ban` whether written bare or as a mapping),
    a trigger without its unset fields.
    """

    def lst(x: ListDef) -> dict[str, Any]:
        d = x.model_dump(by_alias=True, exclude={"id"})
        d["triggers"] = [t.model_dump(exclude_none=True) for t in x.triggers]
        d["measures"] = [_measure(m) for m in x.list_measures()]
        return d

    return {
        "rulebook": {None: {"jurisdiction": rb.jurisdiction, "name": rb.name, "region_code": rb.region_code,
                            "effective_from": rb.effective_from.isoformat(), "period": rb.period}},
        "scale": {None: rb.scale.model_dump()},
        "grades": {g.grade: g.model_dump(exclude={"grade"}) for g in rb.grades},
        "disclosure": {None: rb.disclosure.model_dump()},
        "rules": {r.id: r.model_dump(exclude={"id"}) for r in rb.rules},
        "caps": {c.id: c.model_dump(exclude={"id"}) for c in rb.caps},
        "lists": {x.id: lst(x) for x in rb.lists},
        "memory": {m.id: m.model_dump(exclude={"id"}) for m in rb.memory},
    }  # fmt: skip


def changes(a: Rulebook, b: Rulebook) -> list[dict[str, Any]]:
    """Every difference from `a` to `b`, one per item added or removed and one per field changed.

    Section by section and item by item (by id, in `a`'s order, then the items only `b` has), so a grade
    band moved, a cap cut or a rule's label reworded is named exactly. `changes(b, a)` is the mirror image:
    the same rows with before and after swapped and added ↔ removed (the items only `a` has come last there).
    """
    out: list[dict[str, Any]] = []
    sa, sb = sections(a), sections(b)
    for section in SECTIONS:
        ia, ib = sa[section], sb[section]
        for key in [*ia, *(k for k in ib if k not in ia)]:
            x, y = ia.get(key), ib.get(key)
            row = {"section": section, "id": key}
            if y is None:
                out.append({**row, "change": "removed", "field": None, "before": x, "after": None})
            elif x is None:
                out.append({**row, "change": "added", "field": None, "before": None, "after": y})
            else:
                out += [
                    {**row, "change": "changed", "field": f, "before": x.get(f), "after": y.get(f)}
                    for f in [*x, *(f for f in y if f not in x)]
                    if x.get(f) != y.get(f)
                ]
    return out


def diff(a: Rulebook, b: Rulebook) -> dict[str, Any]:
    """What changes from resolved rulebook `a` to `b`.

    One function for the CLI's `rulebook diff`, the admin API and the admin page. `changes` is the whole
    answer, field by field (see `changes`); `rules`, `lists` and `other` are the older summaries by
    item that the API has promised its callers (whole rules and lists before and after; scale and
    disclosure as `{part: [before, after]}`), kept as they were.
    """
    ra = {r.id: r for r in a.rules}
    rb_ = {r.id: r for r in b.rules}
    rules: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]]
    rules = [("removed", i, ra[i].model_dump(), None) for i in ra if i not in rb_]
    rules += [("added", i, None, rb_[i].model_dump()) for i in rb_ if i not in ra]
    # compare what the rules say, not where they were written (models also carry their file and line)
    rules += [
        ("changed", i, ra[i].model_dump(), rb_[i].model_dump())
        for i in ra
        if i in rb_ and ra[i].model_dump() != rb_[i].model_dump()
    ]
    la = {x.id: x.model_dump(by_alias=True) for x in a.lists}
    lb = {x.id: x.model_dump(by_alias=True) for x in b.lists}
    na, nb = sections(a)["lists"], sections(b)["lists"]  # a list written in another form is not a change
    lists = [(i, la.get(i), lb.get(i)) for i in sorted(set(la) | set(lb)) if na.get(i) != nb.get(i)]
    other = {
        k: (getattr(a, k).model_dump(), getattr(b, k).model_dump())
        for k in ("scale", "disclosure")
        if getattr(a, k).model_dump() != getattr(b, k).model_dump()
    }
    return {"a": a.version, "b": b.version, "rules": rules, "lists": lists, "other": other, "changes": changes(a, b)}
