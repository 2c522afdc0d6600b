"""Rulebooks: typed, versioned, inheriting layers of rules, checked against the catalog.

A *layer* is one YAML file: one jurisdiction's rules as of one `effective_from` date. A jurisdiction
`extends` its parent (national → province → city) and may override any inherited rule, cap, list or
memory by id, or remove it. The *resolved* rulebook for a city at a time stacks the layers in force
then; its version is the chain of layer versions (e.g. `rongcheng@2+national@1`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from sqlglot import exp

from socialcredit import frames
from socialcredit.catalog import Catalog, default_catalog
from socialcredit.conditions import ConditionError, parse_condition
from socialcredit.yamlio import LocatedError, Where, in_line_order, parse_yaml_located, validate_located

DURATION = r"^[1-9][0-9]*[dmy]$"
SOURCE = r"^(seed|illustrative|reported: .+)$"
Period = Literal["month", "quarter", "year"]
Assessment = Literal["month"]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    _at: str = PrivateAttr(default="")

    @property
    def at(self) -> str:
        """`file:line` where this item was written."""
        return self._at


class Rule(_M):
    id: str = Field(pattern=r"^[a-z0-9_.:-]+$")
    behaviour: str | None = None
    characteristic: str | None = None
    when: str | None = Field(None, description="condition on the behaviour's or characteristic's attributes")
    points: int
    valid_for: str | None = Field(None, pattern=DURATION, description="points expire after this; null = never")
    label: str = ""
    source: str = Field(pattern=SOURCE)

    @model_validator(mode="after")
    def _one_subject(self) -> Rule:
        if (self.behaviour is None) == (self.characteristic is None):
            raise ValueError("a rule names exactly one of behaviour or characteristic")
        return self


class Cap(_M):
    id: str
    behaviour: str
    per: Period = "year"
    max: int | None = Field(None, description="at most this many points gained per period")
    min: int | None = Field(None, description="at most this many points lost per period (a negative number)")
    source: str = Field(pattern=SOURCE)

    @model_validator(mode="after")
    def _some_bound(self) -> Cap:
        if self.max is None and self.min is None:
            raise ValueError("a cap needs max or min")
        return self


class Trigger(_M):
    behaviour: str | None = None
    characteristic: str | None = None
    when: str | None = None
    duration: str | None = Field(None, pattern=DURATION, description="stay on the list this long from the record")

    @model_validator(mode="after")
    def _one_subject(self) -> Trigger:
        if (self.behaviour is None) == (self.characteristic is None):
            raise ValueError("a trigger names exactly one of behaviour or characteristic")
        if self.behaviour is not None and self.duration is None:
            raise ValueError("a behaviour trigger needs a duration")
        return self


class ListMeasure(_M):
    measure: str
    for_: str | None = Field(None, alias="for", pattern=DURATION, description="only this long from entry")


class ListDef(_M):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    kind: Literal["blacklist", "whitelist"]
    label: str
    grades: list[str] = Field([], description="enter at an assessment when the grade is one of these")
    triggers: list[Trigger] = []
    min_stay: str | None = Field(None, pattern=DURATION, description="a grade entry lasts at least this long")
    measures: list[ListMeasure | str] = []
    public: bool = Field(True, description="shown on public pages where disclosure allows")
    source: str = Field(pattern=SOURCE)

    def list_measures(self) -> list[ListMeasure]:
        return [ListMeasure.model_validate({"measure": m}) if isinstance(m, str) else m for m in self.measures]


class Memory(_M):
    id: str
    after: str = Field(description="a list id: any stay on it, ever, leaves this mark")
    never_lists: list[str] = Field([], description="lists the citizen may never enter again")
    measures: list[str] = Field([], description="measures that apply for good from the first stay")
    source: str = Field(pattern=SOURCE)


class Scale(_M):
    base: int
    min: int
    max: int

    @model_validator(mode="after")
    def _ordered(self) -> Scale:
        if not self.min <= self.base <= self.max:
            raise ValueError("scale needs min <= base <= max")
        return self

    # score = clamp(base + points in force): the one formula, for a single citizen (`score`) and as a sqlglot
    # expression over a set (`score_expr`, what the engine runs), both from the same three numbers
    def score(self, points: int) -> int:
        return min(max(self.base + points, self.min), self.max)

    def score_expr(self, points: exp.Expression) -> exp.Expression:
        total = exp.Add(this=exp.Literal.number(self.base), expression=points)
        # ignore_nulls: SQL's own least/greatest (sqlglot's default would wrap each in a NULL check)
        return exp.Least(
            this=exp.Greatest(this=total, expressions=[exp.Literal.number(self.min)], ignore_nulls=True),
            expressions=[exp.Literal.number(self.max)],
            ignore_nulls=True,
        )


class Grade(_M):
    grade: str
    min: int


class Disclosure(_M):
    publish_scores: bool = False
    billboard: bool = False
    station_monitor: bool = False
    notify_citizens: bool = True


class Remove(_M):
    rules: list[str] = []
    caps: list[str] = []
    lists: list[str] = []
    memory: list[str] = []


class Layer(_M):
    """One rulebook file: a jurisdiction's own rules from one date on."""

    jurisdiction: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    level: Literal["national", "province", "city"]
    extends: str | None = None
    region_code: str | None = Field(None, pattern=r"^[1-8][0-9]{5}$")
    version: int = Field(ge=1)
    effective_from: dt.date = Field(description="CST calendar date this version takes effect")
    source: str = Field(pattern=SOURCE)
    notes: str = ""
    scale: Scale | None = None
    period: Assessment | None = Field(None, description="assessment and network period; only month for now")
    grades: list[Grade] | None = None
    disclosure: Disclosure | None = None
    rules: list[Rule] = []
    caps: list[Cap] = []
    lists: list[ListDef] = []
    memory: list[Memory] = []
    remove: Remove = Remove()
    _sections: dict[str, str] = PrivateAttr(default_factory=dict)  # scale, grades, disclosure → file:line
    _removals: dict[tuple[str, str], str] = PrivateAttr(default_factory=dict)  # (section, id) → file:line

    @property
    def key(self) -> str:
        return f"{self.jurisdiction}@{self.version}"

    def where(self, section: str) -> str:
        """`file:line` of a section of this file (its start when the section is not written)."""
        return self._sections.get(section, self.at)


@dataclass
class Rulebook:
    """A city's rules in force over one stretch of time, with inheritance already applied."""

    jurisdiction: str
    name: str
    version: str
    effective_from: dt.date
    effective_to: dt.date | None
    scale: Scale
    period: Assessment
    grades: list[Grade]
    disclosure: Disclosure
    rules: list[Rule]
    caps: list[Cap]
    lists: list[ListDef]
    memory: list[Memory]
    region_code: str | None
    conditions: dict[str, exp.Expression] = field(default_factory=dict)
    set_at: dict[str, str] = field(default_factory=dict)  # scale, grades → `file:line` of the layer that set them

    # the grade of a score: the first grade (best first) whose minimum it reaches, else the lowest grade; one
    # rule, read by `grade_of` for a single citizen and turned into the engine's CASE by `grade_expr`
    def grade_of(self, score: float) -> str:
        for g in self.grades:
            if score >= g.min:
                return g.grade
        return self.grades[-1].grade

    def grade_expr(self, score: exp.Expression) -> exp.Expression:
        return exp.Case(
            ifs=[
                exp.If(
                    this=exp.GTE(this=score.copy(), expression=exp.Literal.number(g.min)),
                    true=exp.Literal.string(g.grade),
                )
                for g in self.grades
            ],
            default=exp.Literal.string(self.grades[-1].grade),
        )

    def list_by_id(self, list_id: str) -> ListDef:
        return next(x for x in self.lists if x.id == list_id)


# --------------------------------------------------------------------------- loading


def parse_layer(text: str, name: str) -> Layer:
    """One rulebook file as a layer; every problem the file has on its own is told at once, each as
    `file:line: …` (what it names is checked against the catalog and its parents when it is resolved)."""
    raw, where = parse_yaml_located(text, name, keep_going=True)
    if not isinstance(raw, dict):
        raise LocatedError(
            "\n".join([*where.located(name), f"{name}:1: a rulebook is a mapping (jurisdiction, version, rules …)"])
        )
    layer = validate_located(Layer, raw, name, where)  # raises with where's problems too
    _stamp(layer, name, where)
    problems = where.located(name)
    for coll in ("rules", "caps", "lists", "memory"):
        seen: set[str] = set()
        for item in getattr(layer, coll):
            if item.id in seen:
                problems.append(f"{item.at}: {coll}: id {item.id!r} is used twice in this file")
            seen.add(item.id)
    if problems:
        raise LocatedError("\n".join(in_line_order(problems)))
    return layer


def _stamp(layer: Layer, name: str, where: Where) -> None:
    layer._at = f"{name}:{where.line(())}"
    layer._sections = {key: f"{name}:{where.line((key,))}" for key in ("scale", "grades", "disclosure")}
    layer._removals = {
        (coll, rid): f"{name}:{where.line(('remove', coll, i))}"
        for coll in ("rules", "caps", "lists", "memory")
        for i, rid in enumerate(getattr(layer.remove, coll))
    }
    for coll in ("rules", "caps", "lists", "memory"):
        for i, item in enumerate(getattr(layer, coll)):
            item._at = f"{name}:{where.line((coll, i))}"
            if isinstance(item, ListDef):
                for j, t in enumerate(item.triggers):
                    t._at = f"{name}:{where.line((coll, i, 'triggers', j))}"


def load_layer(path: Path) -> Layer:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise LocatedError(f"{path}: cannot read: {e.strerror}") from None
    return parse_layer(text, str(path))


def previous_version(layer: Layer, layers: list[Layer]) -> Layer | None:
    """The version of the same jurisdiction in force just before `layer` takes effect, if any."""
    earlier = [v for v in layers if v.jurisdiction == layer.jurisdiction and v.effective_from < layer.effective_from]
    return max(earlier, key=lambda v: v.effective_from, default=None)


def dropped(layer: Layer, previous: Layer) -> list[str]:
    """What `previous` said that `layer`, its next version, no longer says, as warnings naming the items.

    A version file is a complete rulebook, not a list of changes: whatever it leaves out is gone from its
    first day on (an own rule, cap, list or memory), comes back from the parents (an inherited item the
    previous version removed), or is the parents' again (scale, grades, disclosure). An author who wrote
    only the changes would lose the rest silently; these warnings say what went.
    """
    out: list[str] = []
    why = "a version file is a complete rulebook, not a list of changes: repeat them to keep them"
    for coll in ("rules", "caps", "lists", "memory"):
        kept = {item.id for item in getattr(layer, coll)}
        gone = [item.id for item in getattr(previous, coll) if item.id not in kept]
        if gone:
            out.append(
                f"{layer.at}: {layer.key} drops {len(gone)} of the {coll} {previous.key} had: {', '.join(gone)} ({why})"
            )
        back = [rid for rid in getattr(previous.remove, coll) if rid not in getattr(layer.remove, coll)]
        if back:
            out.append(
                f"{layer.at}: {layer.key} no longer removes the inherited {coll} {previous.key} removed, "
                f"so they apply again: {', '.join(back)} ({why})"
            )
    for section in ("scale", "grades", "disclosure"):
        if getattr(previous, section) is not None and getattr(layer, section) is None:
            out.append(f"{layer.at}: {layer.key} drops the {section} {previous.key} set, so its parents' apply ({why})")
    return out


def validate_files(paths: list[Path], base: list[Layer] | None = None) -> tuple[list[Layer], list[str]]:
    """Check rulebook files together with `base` (the shipped layers; a file replaces the base's version of
    the same key) and resolve every city they reach on every day its rulebook changes.

    Every problem is told at once, each as `file:line: …`: raises LocatedError with all of them. Returns
    the files' layers and the warnings about each file against its jurisdiction's previous version
    (`dropped`). A file that cannot be read or parsed stops the check after every file was parsed: what it
    would name cannot be resolved."""
    problems: list[str] = []
    layers: list[Layer] = []
    for path in paths:
        try:
            layers.append(load_layer(path))
        except LocatedError as e:
            problems += str(e).splitlines()
    if problems:
        raise LocatedError("\n".join(problems))
    keys = {x.key for x in layers}
    base = [x for x in (shipped_layers() if base is None else base) if x.key not in keys]
    rbs = RulebookSet([*base, *layers])
    cities = sorted({city for layer in layers for city in rbs.cities if layer.jurisdiction in rbs.ancestors(city)})
    for city in cities:
        for day in rbs.change_days(city):
            try:
                rbs.resolve(city, day)
            except LocatedError as e:
                problems += str(e).splitlines()
    if problems:
        raise LocatedError("\n".join(in_line_order(problems)))
    every = [*base, *layers]
    warnings = [
        w for layer in layers if (prev := previous_version(layer, every)) is not None for w in dropped(layer, prev)
    ]
    return layers, warnings


def shipped_dir() -> Path:
    return Path(str(resources.files("socialcredit.rulebooks")))


def shipped_layers() -> list[Layer]:
    return [load_layer(p) for p in sorted(shipped_dir().glob("*.yaml"))]


def json_schema() -> dict[str, Any]:
    """The rulebook file format as JSON Schema, generated from the models so it cannot drift."""
    schema = Layer.model_json_schema()
    schema["$id"] = "https://socialcredit.invalid/rulebook.schema.json"
    schema["title"] = "socialcredit rulebook layer"
    return schema


# --------------------------------------------------------------------------- the set of layers


class RulebookSet(frames.Tabular):
    """All layers known to a store, able to resolve any city's rulebook at any time."""

    def rows(self) -> list[dict[str, Any]]:
        """One row per version: jurisdiction, level, version, effective date, parent, source, counts."""
        return [
            {
                "jurisdiction": v.jurisdiction,
                "name": v.name,
                "level": v.level,
                "version": v.version,
                "effective_from": v.effective_from,
                "extends": v.extends,
                "source": v.source,
                "rules": len(v.rules),
                "lists": len(v.lists),
            }
            for vs in self.layers.values()
            for v in vs
        ]

    def to_arrow(self) -> pa.Table:
        return frames.table(self.rows())

    def _repr_html_(self) -> str:
        rows = self.rows()
        return frames.html_table(
            rows, list(rows[0]) if rows else [], f"RulebookSet: {len(rows)} versions, cities {', '.join(self.cities)}"
        )

    def __init__(self, layers: list[Layer], catalog: Catalog | None = None) -> None:
        self.catalog = catalog or default_catalog()
        self.layers: dict[str, list[Layer]] = {}
        problems: list[str] = []
        for layer in layers:
            versions = self.layers.setdefault(layer.jurisdiction, [])
            if any(v.version == layer.version for v in versions):
                problems.append(f"{layer.at}: {layer.key} is defined twice")
                continue
            versions.append(layer)
        for versions in self.layers.values():
            versions.sort(key=lambda v: v.effective_from)
            for a, b in itertools.pairwise(versions):
                if a.effective_from == b.effective_from:
                    problems.append(
                        f"{b.at}: {b.key} takes effect on {b.effective_from}, the day {a.key} "
                        f"({a.at}) does: two versions of {b.jurisdiction} share a date"
                    )
        for versions in self.layers.values():
            for layer in versions:
                if layer.extends is not None and layer.extends not in self.layers:
                    problems.append(f"{layer.at}: extends unknown jurisdiction {layer.extends!r}")
        if problems:
            raise LocatedError("\n".join(problems))
        self._cache: dict[tuple[str, ...], Rulebook] = {}

    @property
    def cities(self) -> list[str]:
        return sorted(j for j, vs in self.layers.items() if vs[-1].level == "city")

    def chain(self, jurisdiction: str, day: dt.date | None = None, pin: dict[str, int] | None = None) -> list[str]:
        """The jurisdictions stacked for `jurisdiction` (national first) on `day`, or with its newest versions.

        Each step follows the `extends` of the version in force (or pinned), not of the newest version: a
        city whose later version moves to another parent (a replay or policy copy of Shenzhen's rules for
        Qingzhen) keeps its earlier versions on the parents they were written against, whose rules their
        `remove` lists name.
        """
        out = [jurisdiction]
        while (parent := self._version(out[-1], day, pin).extends) is not None:
            if parent in out:
                raise LocatedError(f"{self.layers[jurisdiction][-1].at}: inheritance loop through {parent!r}")
            out.append(parent)
        return out[::-1]

    def _version(self, jurisdiction: str, day: dt.date | None, pin: dict[str, int] | None) -> Layer:
        """The version whose `extends` the chain follows: pinned, else in force on `day`, else the newest;
        a jurisdiction not yet in force on `day` passes on its first version's parent."""
        versions = self.layers[jurisdiction]
        if pin and jurisdiction in pin:
            return next((v for v in versions if v.version == pin[jurisdiction]), versions[-1])
        if day is None:
            return versions[-1]
        return self.layer_at(jurisdiction, day) or versions[0]

    def ancestors(self, jurisdiction: str) -> list[str]:
        """Every jurisdiction any version of `jurisdiction` (or of its parents) extends, itself included."""
        out = [jurisdiction]
        for j in out:
            for parent in sorted({v.extends for v in self.layers[j] if v.extends is not None} - set(out)):
                out.append(parent)
        return out

    def layer_at(self, jurisdiction: str, day: dt.date) -> Layer | None:
        found = None
        for v in self.layers[jurisdiction]:
            if v.effective_from <= day:
                found = v
        return found

    def change_days(self, jurisdiction: str) -> list[dt.date]:
        """The CST dates on which this city's resolved rulebook may change (any version of any possible parent)."""
        return sorted({v.effective_from for j in self.ancestors(jurisdiction) for v in self.layers[j]})

    def timeline(self, jurisdiction: str) -> list[Rulebook]:
        days = self.change_days(jurisdiction)
        out: list[Rulebook] = []
        for i, day in enumerate(days):
            rb = self.resolve(jurisdiction, day)
            if rb is not None:
                if not (out and out[-1] is rb):  # the same stack again: a change day of a parent not in the chain
                    out.append(rb)
                rb.effective_to = days[i + 1] if i + 1 < len(days) else None
        return out

    def resolve(
        self, jurisdiction: str, day: dt.date | None = None, pin: dict[str, int] | None = None
    ) -> Rulebook | None:
        """The rulebook in force on `day` (or the versions named in `pin`), checked against the catalog."""
        if jurisdiction not in self.layers:
            raise LocatedError(f"unknown jurisdiction {jurisdiction!r} (known: {', '.join(sorted(self.layers))})")
        chosen: list[Layer] = []
        for j in self.chain(jurisdiction, day, pin):
            if pin and j in pin:
                layer = next((v for v in self.layers[j] if v.version == pin[j]), None)
                if layer is None:
                    raise LocatedError(f"no version {pin[j]} of {j!r}")
            elif day is None:
                layer = self.layers[j][-1]
            else:
                layer = self.layer_at(j, day)
            if layer is not None:
                chosen.append(layer)
        if not chosen or chosen[-1].jurisdiction != jurisdiction:
            return None
        key = tuple(c.key for c in chosen)
        if key not in self._cache:
            rb, problems = _merge(chosen)
            check(rb, self.catalog, problems)
            self._cache[key] = rb
        return self._cache[key]

    def all_resolved(self) -> list[Rulebook]:
        return [rb for city in self.cities for rb in self.timeline(city)]

    def parse_version(self, spec: str) -> tuple[str, dict[str, int]]:
        """`city@3` or `city@3+national@2` → (city, pin)."""
        pin: dict[str, int] = {}
        city = ""
        for i, part in enumerate(spec.split("+")):
            m = re.fullmatch(r"([a-z][a-z0-9_]*)@([0-9]+)", part.strip())
            if not m:
                raise LocatedError(f"rulebook version {spec!r}: expected JURISDICTION@VERSION[+…]")
            if i == 0:
                city = m.group(1)
            pin[m.group(1)] = int(m.group(2))
        return city, pin


def _merge(chain: list[Layer]) -> tuple[Rulebook, list[str]]:
    """The layers stacked; and the removals that named nothing inherited, for `check` to tell with the rest."""
    scale = period = grades = disclosure = None
    set_at: dict[str, str] = {}
    colls: dict[str, dict[str, Any]] = {"rules": {}, "caps": {}, "lists": {}, "memory": {}}
    problems: list[str] = []
    for layer in chain:
        scale = layer.scale or scale
        period = layer.period or period
        grades = layer.grades or grades
        disclosure = layer.disclosure or disclosure
        set_at.update({k: layer.where(k) for k in ("scale", "grades") if getattr(layer, k)})
        for coll, items in colls.items():
            for rid in getattr(layer.remove, coll):
                if rid not in items:
                    at = layer._removals.get((coll, rid), layer.at)
                    problems.append(f"{at}: remove.{coll}: nothing inherited has id {rid!r}")
                    continue
                del items[rid]
            for item in getattr(layer, coll):
                items[item.id] = item
    top = chain[-1]
    if scale is None or grades is None:
        raise LocatedError(f"{top.at}: no layer of {top.jurisdiction} or its parents sets scale and grades")
    return Rulebook(
        jurisdiction=top.jurisdiction,
        name=top.name,
        version="+".join(c.key for c in reversed(chain)),
        effective_from=max(c.effective_from for c in chain),
        effective_to=None,
        scale=scale,
        period=period or "month",
        grades=list(grades),
        disclosure=disclosure or Disclosure(),
        rules=list(colls["rules"].values()),
        caps=list(colls["caps"].values()),
        lists=list(colls["lists"].values()),
        memory=list(colls["memory"].values()),
        region_code=top.region_code,
        set_at=set_at,
    ), problems


def check(rb: Rulebook, catalog: Catalog, problems: list[str] | None = None) -> None:
    """Everything a resolved rulebook names must exist, and every condition must be in the language.
    Raises LocatedError with every problem (and those already found, `problems`), each at its line."""
    problems = list(problems or [])
    grades = [g.grade for g in rb.grades]
    mins = [g.min for g in rb.grades]
    grades_at = rb.set_at.get("grades", rb.version)
    if mins != sorted(mins, reverse=True) or len(set(grades)) != len(grades):
        problems.append(f"{grades_at}: grades must be listed highest first, each once ({rb.version})")
    if mins and mins[-1] > rb.scale.min:
        problems.append(
            f"{grades_at}: the lowest grade must start at or below scale.min ({rb.scale.min}) ({rb.version})"
        )

    def attrs_of(behaviour: str | None, characteristic: str | None, at: str) -> dict[str, str] | None:
        if behaviour is not None:
            if behaviour not in catalog.behaviours:
                problems.append(f"{at}: unknown behaviour {behaviour!r}{unknown_hint(behaviour, 'behaviour', catalog)}")
                return None
            return {a.name: a.type for a in catalog.attributes_of(behaviour)}
        assert characteristic is not None
        if characteristic not in catalog.characteristics:
            problems.append(
                f"{at}: unknown characteristic {characteristic!r}"
                f"{unknown_hint(characteristic, 'characteristic', catalog)}"
            )
            return None
        return {a: catalog.attributes[a].type for a in catalog.characteristics[characteristic].attributes}

    def condition(key: str, text: str | None, attrs: dict[str, str], at: str) -> None:
        if text is None:
            return
        try:
            rb.conditions[key] = parse_condition(text, attrs)
        except ConditionError as e:
            problems.append(f"{at}: {e}")

    for r in rb.rules:
        attrs = attrs_of(r.behaviour, r.characteristic, r.at)
        if attrs is not None:
            condition(f"rule:{r.id}", r.when, attrs, r.at)
    for c in rb.caps:
        if c.behaviour not in catalog.behaviours:
            problems.append(
                f"{c.at}: cap names unknown behaviour {c.behaviour!r}{unknown_hint(c.behaviour, 'behaviour', catalog)}"
            )
    list_ids = {x.id for x in rb.lists}
    for lst in rb.lists:
        for g in lst.grades:
            if g not in grades:
                problems.append(f"{lst.at}: list {lst.id!r} names unknown grade {g!r} (grades: {', '.join(grades)})")
        for i, t in enumerate(lst.triggers):
            attrs = attrs_of(t.behaviour, t.characteristic, t.at or lst.at)
            if attrs is not None:
                condition(f"trigger:{lst.id}:{i}", t.when, attrs, t.at or lst.at)
        for m in lst.list_measures():
            if m.measure not in catalog.measures:
                problems.append(f"{lst.at}: list {lst.id!r} names unknown measure {m.measure!r}")
            elif (catalog.measures[m.measure].kind == "privilege") != (lst.kind == "whitelist"):
                problems.append(f"{lst.at}: a {lst.kind} cannot carry {catalog.measures[m.measure].kind} {m.measure!r}")
    for mem in rb.memory:
        if mem.after not in list_ids:
            problems.append(f"{mem.at}: memory {mem.id!r} follows unknown list {mem.after!r}")
        for lid in mem.never_lists:
            if lid not in list_ids:
                problems.append(f"{mem.at}: memory {mem.id!r} bars unknown list {lid!r}")
            elif rb.list_by_id(lid).kind != "whitelist":
                problems.append(f"{mem.at}: memory may only bar whitelists, not {lid!r}")
        for code in mem.measures:
            if code not in catalog.measures:
                problems.append(f"{mem.at}: memory {mem.id!r} names unknown measure {code!r}")
    if problems:
        raise LocatedError("\n".join(in_line_order(problems)))


def unknown_hint(code: str, kind: Literal["behaviour", "characteristic"], catalog: Catalog) -> str:
    """What an unknown code is instead, for the error message: a characteristic written as a behaviour
    (and which behaviours set it), a behaviour written as a characteristic, or the nearest known codes."""
    if kind == "behaviour" and code in catalog.characteristics:
        ch = catalog.characteristics[code]
        if ch.kind == "network":
            how = "it is derived from the citizen's contacts, not reported"
        else:
            how = f"set by behaviour {' or '.join(map(repr, ch.set_by))}" if ch.set_by else "set by no behaviour"
            if ch.cleared_by:
                how += f", cleared by {' or '.join(map(repr, ch.cleared_by))}"
        event = f", or `behaviour: {ch.set_by[0]}` to score the event that sets it" if ch.set_by else ""
        return (
            f": it is a characteristic (a state the citizen is in: {ch.label.lower()}), {how}; write "
            f"`characteristic: {code}` to score the state{event}"
        )
    if kind == "characteristic" and code in catalog.behaviours:
        return f": it is a behaviour (an event an agency reports); write `behaviour: {code}`"
    known = catalog.behaviours if kind == "behaviour" else catalog.characteristics
    near = difflib.get_close_matches(code, list(known), n=3, cutoff=0.75)
    return f" (did you mean {' or '.join(map(repr, near))}?)" if near else ""


def duration_parts(text: str) -> tuple[int, str]:
    return int(text[:-1]), {"d": "day", "m": "month", "y": "year"}[text[-1]]


def stay_parts(text: str | None) -> tuple[int, int]:
    """A minimum stay as (months, days): what the engine adds to a stay's start (none: (0, 0))."""
    if not text:
        return 0, 0
    n, unit = duration_parts(text)
    return (n * 12 if unit == "year" else n if unit == "month" else 0), (n if unit == "day" else 0)


def stay_due(start: dt.datetime, text: str | None) -> dt.datetime | None:
    """When a minimum stay entered at `start` is reached (None without one): months first, then days."""
    months, days = stay_parts(text)
    if not (months or days):
        return None
    return (add_duration(start, f"{months}m") if months else start) + dt.timedelta(days=days)


def add_duration(t: dt.datetime, text: str) -> dt.datetime:
    n, unit = duration_parts(text)
    if unit == "day":
        return t + dt.timedelta(days=n)
    months = n * (12 if unit == "year" else 1)
    y, m = divmod(t.month - 1 + months, 12)
    year, month = t.year + y, m + 1
    import calendar

    day = min(t.day, calendar.monthrange(year, month)[1])
    return t.replace(year=year, month=month, day=day)
