"""Scenario files: what a simulated run is made of, as YAML validated like rulebooks.

Why a typed model with located errors: a scenario is edited by hand and a run can take a while, so a
typo ("shangai", "rail.tiket", a negative rate) must fail at load time with `file:line: field: message`,
not minutes later inside the engine. Cities are checked against the rulebooks of the store the run
uses (a city needs a rulebook and a region code to have citizens), services against the catalog.

A scenario may bring its own rulebook layers (`rulebooks:`, paths relative to the scenario file, each
parsed like a shipped layer) and may leave the shipped ones out (`shipped_rulebooks: false`), so a
study can run one mechanism alone; `policy:` runs a city under another jurisdiction's rules (see
`simulate.policy`), so two runs of one population and seed differ only by policy.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from socialcredit.catalog import Catalog, default_catalog
from socialcredit.rulebook import parse_layer
from socialcredit.simulate.behaviour import BehaviourRates
from socialcredit.simulate.incentives import Incentives
from socialcredit.yamlio import LocatedError, Where, parse_yaml_located, validate_located


class ServiceUse(BaseModel):
    """How often citizens try one service: expected attempts per eligible citizen per month.

    `for: adults` (the default) means each adult asks for themselves; `for: children` means a parent
    asks on behalf of each child under 18 who has a parent in the population (school admission), and
    the decision is about the child, so measures that reach children bind. `for: listed` means only
    citizens on a blacklist at the month's start try: a study of blocked purchases (where only listed
    people can be blocked) then sends the attempts that matter through `decide` and skips the many
    that every rulebook would allow.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    rate: float = Field(ge=0, le=30, description="expected attempts per eligible citizen per month")
    for_: Literal["adults", "children", "listed"] = Field(default="adults", alias="for")

    @model_validator(mode="before")
    @classmethod
    def _bare_number(cls, value: Any) -> Any:
        """`rail.ticket: 0.3` is short for `rail.ticket: {rate: 0.3}`."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return {"rate": value}
        return value


class District(BaseModel):
    """Which part of a city a partition's run is: set by `simulate.partition` and kept in the
    partition's scenario.yaml, so the partition can be rerun alone and gives the same tables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(ge=0, description="this district's number, from 0")
    of: int = Field(ge=1, description="how many districts the city was split into")


class Scenario(BaseModel):
    """A run: which cities and how many citizens, from when, for how long, at what rates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    seed: int = Field(ge=0, description="one seed for population, records and service attempts")
    start: dt.date = Field(description="the first simulated month (its first day, CST)")
    months: int = Field(ge=1, le=600)
    cities: dict[str, int] = Field(min_length=1, description="city → number of citizens")
    rates: BehaviourRates = Field(default_factory=BehaviourRates)
    services: dict[str, ServiceUse] = Field(default_factory=dict)
    incentives: Incentives | None = Field(default=None, description="citizens' responses; absent = none")
    rulebooks: list[str] = Field(default_factory=list, description="extra rulebook layers, relative to this file")
    shipped_rulebooks: bool = Field(default=True, description="load the shipped rulebooks into the run's store")
    policy: dict[str, str] = Field(
        default_factory=dict, description="city → JURISDICTION@VERSION whose rules the city runs under"
    )
    district: District | None = Field(
        default=None, description="set in a partition of a partitioned run: its one city's district (own streams)"
    )

    @field_validator("policy")
    @classmethod
    def _policy_specs(cls, value: dict[str, str]) -> dict[str, str]:
        for city, spec in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]*@[1-9][0-9]*", spec):
                raise ValueError(f"{city}: expected JURISDICTION@VERSION (e.g. rongcheng@1), not {spec!r}")
        return value

    @field_validator("start")
    @classmethod
    def _first_of_month(cls, value: dt.date) -> dt.date:
        if value.day != 1:
            raise ValueError(f"must be the first day of a month, not {value}")
        return value

    @field_validator("cities")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        for city, n in value.items():
            if n < 1:
                raise ValueError(f"{city}: the number of citizens must be at least 1, not {n}")
        return value

    @model_validator(mode="after")
    def _district_of_one_city(self) -> Scenario:
        if self.district is not None:
            if len(self.cities) != 1:
                raise ValueError("district: a partition runs exactly one city (or one district of it)")
            if self.district.index >= self.district.of:
                raise ValueError(f"district: index {self.district.index} is not below of ({self.district.of})")
        return self

    def check(self, cities: list[str], catalog: Catalog, name: str, where: Where) -> None:
        """Names that only make sense against a store and a catalog: unknown cities and services."""
        problems = []
        for city in self.policy:
            if city not in self.cities:
                line = where.line(("policy", city))
                problems.append(f"{name}:{line}: policy.{city}: not one of the scenario's cities")
        for city in self.cities:
            if city not in cities:
                line = where.line(("cities", city))
                problems.append(f"{name}:{line}: cities.{city}: unknown city (known: {', '.join(cities)})")
        for service in self.services:
            if service not in catalog.services:
                line = where.line(("services", service))
                problems.append(f"{name}:{line}: services.{service}: unknown service (see `socialcredit catalog`)")
        if problems:
            raise LocatedError("\n".join(problems))


def parse_scenario(text: str, name: str, cities: list[str] | None = None, catalog: Catalog | None = None) -> Scenario:
    """Parse and check a scenario.

    `cities` defaults to the shipped rulebooks' cities (unless `shipped_rulebooks: false`) plus those
    of the scenario's own layers. Rulebook paths are resolved against the directory of `name` and
    returned absolute, so the scenario can be run from anywhere.
    """
    raw, where = parse_yaml_located(text, name)
    if not isinstance(raw, dict):
        raise LocatedError(f"{name}:1: a scenario is a mapping (name, seed, start, months, cities, …)")
    scenario = validate_located(Scenario, raw, name, where)
    base = Path(name).parent
    paths, own = [], []
    for i, rel in enumerate(scenario.rulebooks):
        path = (base / rel).resolve()
        try:
            layer_text = path.read_text(encoding="utf-8")
        except OSError as e:
            line = where.line(("rulebooks", i))
            raise LocatedError(f"{name}:{line}: rulebooks.{i}: cannot read {rel}: {e.strerror}") from None
        layer = parse_layer(layer_text, str(path))
        if layer.level == "city":
            own.append(layer.jurisdiction)
        paths.append(str(path))
    scenario = scenario.model_copy(update={"rulebooks": paths})
    if cities is None:
        from socialcredit.simulate.population import shipped_regions

        cities = sorted(set(shipped_regions()) if scenario.shipped_rulebooks else set())
    scenario.check(sorted({*cities, *own}), catalog or default_catalog(), name, where)
    return scenario


def load_scenario(path: Path, cities: list[str] | None = None, catalog: Catalog | None = None) -> Scenario:
    """Read a scenario file; every problem is a LocatedError naming `path:line`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise LocatedError(f"{path}: cannot read: {e.strerror}") from None
    return parse_scenario(text, str(path), cities, catalog)


__all__ = ["Scenario", "ServiceUse", "load_scenario", "parse_scenario"]
