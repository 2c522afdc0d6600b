"""Policy comparison: run a city's citizens under another jurisdiction's rules, all else equal.

Why this way: to compare two policies the runs must differ *only* by policy — the same population,
the same seed, the same draws. Population and records do not depend on rulebooks (only on the city's
region code), so it is enough to change which rules the city's citizens are scored under. The run's
store gets one new version of the city's rulebook, effective from the scenario's first month, whose
content is a copy of the named layer (`JURISDICTION@VERSION`): its rules, caps, lists, memory, scale,
grades and disclosure, extending what that layer extends. Nothing is edited in place: the city's own
versions stay in the store, and every decision and ledger entry names the version it used
(`shanghai@2` = "Shanghai under rongcheng@1's rules"). A later version of the city's own, if one takes
effect during the run, replaces the copy from its date on, as any newer version would.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import yaml

from socialcredit.yamlio import LocatedError

if TYPE_CHECKING:
    from socialcredit.store import Store


def policy_layer(store: Store, city: str, spec: str, start: dt.date) -> str:
    """The YAML text of `city`'s new version: a copy of layer `spec` effective from `start`."""
    source, _, number = spec.partition("@")
    rows = store.con.execute(
        "SELECT jurisdiction, version, text FROM rulebook_versions WHERE jurisdiction IN (?, ?)", [source, city]
    ).fetchall()
    text = next((t for j, v, t in rows if j == source and v == int(number)), None)
    if text is None:
        known = sorted(f"{j}@{v}" for j, v, _ in store.con.execute(
            "SELECT jurisdiction, version, NULL FROM rulebook_versions").fetchall())  # fmt: skip
        raise LocatedError(f"policy {city}={spec}: no rulebook {spec} in the store (known: {', '.join(known)})")
    own = [v for j, v, _ in rows if j == city]
    if not own:
        raise LocatedError(f"policy {city}={spec}: {city} has no rulebook in the store")
    region = store.rulebooks().layers[city][-1].region_code
    layer: dict[str, Any] = yaml.safe_load(text)
    layer.update(
        jurisdiction=city,
        name=f"{store.rulebooks().layers[city][-1].name} under {spec}'s rules (policy comparison)",
        level="city",
        region_code=region,
        version=max(own) + 1,
        effective_from=start,
        notes=f"A copy of {spec} for {city}, made by the simulator for a policy comparison from {start}. "
        + str(layer.get("notes", "")),
    )
    return yaml.safe_dump(layer, sort_keys=False, allow_unicode=True)


def apply_policy(store: Store, policy: dict[str, str], start: dt.date) -> list[str]:
    """Add one version per overridden city; returns their keys (`city@N`), in city order."""
    added = []
    for city in sorted(policy):
        layer = store.add_rulebook(policy_layer(store, city, policy[city], start), f"policy:{city}={policy[city]}")
        added.append(layer.key)
    return added


def parse_overrides(specs: list[str]) -> dict[str, str]:
    """`CITY=JURISDICTION@VERSION` options (from the command line) → a scenario's `policy` mapping."""
    out: dict[str, str] = {}
    for spec in specs:
        city, sep, layer = spec.partition("=")
        if not sep or not city.strip() or "@" not in layer:
            raise LocatedError(f"--rulebook {spec!r}: expected CITY=JURISDICTION@VERSION, e.g. shanghai=rongcheng@1")
        out[city.strip()] = layer.strip()
    return out


__all__ = ["apply_policy", "parse_overrides", "policy_layer"]
