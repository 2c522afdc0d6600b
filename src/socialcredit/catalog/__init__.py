"""The catalog: the vocabulary every rulebook and every record must use.

Behaviours, characteristics, services, measures and agencies are data (YAML beside this file) so that
a reader can see the whole system's reach in one place, and so that a rulebook can be checked against
what actually exists before any SQL is generated from it.
"""

from __future__ import annotations

from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from socialcredit.yamlio import LocatedError, load_yaml_located, validate_located

AttributeType = Literal["int", "float", "bool", "str"]
Category = Literal[
    "financial",
    "legal",
    "traffic",
    "transport",
    "online",
    "family",
    "civic",
    "social",
    "health",
    "education",
    "consumption",
    "military",
    "commercial",
    "public_services",
]
Effect = Literal["deny", "priority", "discount", "deposit_waived", "throttle", "deprioritise", "publish"]
Reach = Literal["self", "children", "household"]
# A measure that reaches children binds a child while under this age on the decision's CST calendar day, unless
# the measure says another (`children_under`): a minor (the PRC Civil Code, art. 17: 18 and over is an adult).
# An adult son of a listed parent is no longer "reached".
CHILDREN_UNDER = 18

# The record envelope: who reported what about whom, and when. It comes from the declared fields (and the
# authenticated agency) only, never from attributes, so no attribute may take one of these names; `row`
# and `attributes` are the staging row number and the nested attribute object (SPEC §6).
ENVELOPE = ("record_id", "citizen_id", "behaviour", "occurred_at", "reported_by")
RESERVED_NAMES = frozenset({*ENVELOPE, "row", "attributes"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Attribute(_Model):
    """A typed field a record may carry; shared by name across behaviours so it is one column."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    type: AttributeType
    unit: str | None = None
    description: str
    min: float | None = Field(None, description="least value a record may carry (int and float attributes)")
    max: float | None = Field(None, description="greatest value a record may carry (int and float attributes)")
    max_length: int = Field(200, ge=1, le=10_000, description="longest text a str attribute may carry")

    @model_validator(mode="after")
    def _range_fits_type(self) -> Attribute:
        if self.name in RESERVED_NAMES:
            raise ValueError(f"{self.name!r} is a field of the record envelope, not an attribute name")
        numeric = self.type in ("int", "float")
        if not numeric and (self.min is not None or self.max is not None):
            raise ValueError(f"min/max apply to int and float attributes, not {self.type}")
        if numeric and (self.min is None or self.max is None):
            raise ValueError("a number attribute declares its range (min and max): unbounded numbers are refused")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        return self


class Behaviour(_Model):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    category: Category
    polarity: Literal["desirable", "undesirable", "event"]
    attributes: list[str] = []
    required: list[str] = []
    seed: str | None = Field(None, description="the words of the seed article this behaviour encodes")
    description: str = ""


class Characteristic(_Model):
    """A state a citizen is in over an interval, derived from records (or from contacts, for network)."""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    kind: Literal["state", "network"] = "state"
    set_by: list[str] = []
    cleared_by: list[str] = []
    term_attribute: str | None = Field(
        None, description="attribute of the setting record giving the term in days; 0 or null = no fixed term"
    )
    attributes: list[str] = Field([], description="values usable in rule conditions")
    seed: str | None = None
    description: str = ""


class Service(_Model):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
    label: str
    provider: str


class Measure(_Model):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    kind: Literal["privilege", "sanction"]
    effect: Effect
    services: list[str]
    reach: Reach = "self"
    children_under: int = Field(
        CHILDREN_UNDER,
        ge=1,
        le=30,
        description="for a measure that reaches children: "
        "it reaches a child while under this age on the decision's CST day",
    )
    discount_pct: float | None = Field(None, ge=0, le=100)
    throttle_pct: float | None = Field(None, ge=0, le=100, description="share of normal speed kept")
    public_reason: str
    seed: str | None = None

    @model_validator(mode="after")
    def _params_fit_effect(self) -> Measure:
        if self.effect == "discount" and self.discount_pct is None:
            raise ValueError("a discount measure needs discount_pct")
        if self.effect == "throttle" and self.throttle_pct is None:
            raise ValueError("a throttle measure needs throttle_pct")
        return self


class Agency(_Model):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    kind: Literal[
        "ministry",
        "court",
        "bank",
        "state_owned_enterprise",
        "camera_network",
        "transport_operator",
        "volunteer_association",
        "local_government",
        "platform",
        "hospital",
        "school",
        "police",
    ]
    behaviours: list[str]


class Catalog(_Model):
    attributes: dict[str, Attribute]
    behaviours: dict[str, Behaviour]
    characteristics: dict[str, Characteristic]
    services: dict[str, Service]
    measures: dict[str, Measure]
    agencies: dict[str, Agency]

    def attributes_of(self, behaviour: str) -> list[Attribute]:
        return [self.attributes[a] for a in self.behaviours[behaviour].attributes]

    @cached_property
    def services_by_provider(self) -> dict[str, tuple[str, ...]]:
        """Each provider's services (the code's first part), sorted: asked on every decision a provider
        requests, so worked out once per catalog (it is frozen)."""
        out: dict[str, list[str]] = {}
        for code in sorted(self.services):
            out.setdefault(code.split(".")[0], []).append(code)
        return {p: tuple(codes) for p, codes in out.items()}


_FILES = ("attributes", "behaviours", "characteristics", "services", "measures", "agencies")
_MODELS: dict[str, type[_Model]] = {
    "attributes": Attribute,
    "behaviours": Behaviour,
    "characteristics": Characteristic,
    "services": Service,
    "measures": Measure,
    "agencies": Agency,
}


def load_catalog(directory: Path | None = None) -> Catalog:
    """Load and cross-check the catalog; every error names its file and line."""
    base = directory or Path(str(resources.files("socialcredit.catalog")))
    parts: dict[str, dict[str, _Model]] = {}
    lines: dict[tuple[str, str], str] = {}
    for name in _FILES:
        path = base / f"{name}.yaml"
        data, where = load_yaml_located(path)
        if not isinstance(data, list):
            raise LocatedError(f"{path}:1: expected a list of {name}")
        items: dict[str, _Model] = {}
        for i, raw in enumerate(data):
            item = validate_located(_MODELS[name], raw, path, where, (i,))
            key = item.name if isinstance(item, Attribute) else item.code  # type: ignore[attr-defined]
            if key in items:
                raise LocatedError(f"{path}:{where.line((i,))}: duplicate {name[:-1]} {key!r}")
            items[key] = item
            lines[(name, key)] = f"{path}:{where.line((i,))}"
        parts[name] = items
    catalog = Catalog(**parts)  # type: ignore[arg-type]
    _cross_check(catalog, lines)
    return catalog


def _cross_check(c: Catalog, at: dict[tuple[str, str], str]) -> None:
    def fail(kind: str, key: str, message: str) -> None:
        raise LocatedError(f"{at[(kind, key)]}: {message}")

    for b in c.behaviours.values():
        for a in [*b.attributes, *b.required]:
            if a not in c.attributes:
                fail("behaviours", b.code, f"behaviour {b.code!r} names unknown attribute {a!r}")
        for a in b.required:
            if a not in b.attributes:
                fail("behaviours", b.code, f"required attribute {a!r} is not among the attributes")
    for ch in c.characteristics.values():
        for code in [*ch.set_by, *ch.cleared_by]:
            if code not in c.behaviours:
                fail("characteristics", ch.code, f"unknown behaviour {code!r}")
        if ch.kind == "state" and not ch.set_by:
            fail("characteristics", ch.code, "a state characteristic needs set_by behaviours")
        if ch.term_attribute and not all(ch.term_attribute in c.behaviours[s].attributes for s in ch.set_by):
            fail("characteristics", ch.code, f"term_attribute {ch.term_attribute!r} missing on a set_by behaviour")
        for a in ch.attributes:
            if a not in c.attributes:
                fail("characteristics", ch.code, f"unknown attribute {a!r}")
    for m in c.measures.values():
        for s in m.services:
            if s not in c.services:
                fail("measures", m.code, f"measure {m.code!r} binds unknown service {s!r}")
    for ag in c.agencies.values():
        for code in ag.behaviours:
            if code not in c.behaviours:
                fail("agencies", ag.code, f"agency {ag.code!r} reports unknown behaviour {code!r}")
    reported = {code for ag in c.agencies.values() for code in ag.behaviours}
    for b in c.behaviours.values():
        if b.code not in reported:
            fail("behaviours", b.code, f"no agency reports behaviour {b.code!r}")


@cache
def default_catalog() -> Catalog:
    return load_catalog()
