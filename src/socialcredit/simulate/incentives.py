"""Incentives: simulated citizens respond to their standing each month (issue 3, item 3; a first step).

Why this exists: a blacklist is meant to change behaviour, so a simulated society in which nobody
reacts to being listed overstates list sizes and understates what sanctions "do". The minimal model:

* a citizen holding `court_defaulter` pays (and is delisted) with a monthly probability
  `repay_base`, plus `repay_when_sanctioned` if the system denied them at least one service in the
  previous month — "sanctions bite" — both halved every `repay_halflife_months` the listing has
  lasted, if set (those who can pay, pay early; the published series need this, see calibrate).
  For simplicity *any* simulator denial of that citizen counts (asked_by='simulator',
  outcome='deny'), not only denials whose reasons name the court list;
* a citizen holding `guarantor_for_defaulter` settles with monthly probability `settle_guarantee`;
* while on any blacklist, a citizen's undesirable-behaviour rates are multiplied by `deterrence`
  (applied in `generate_records`, see `blacklisted`);
* threshold behaviour: a citizen whose score is less than `threshold_band` points above the lower
  bound of their grade (one bad record from dropping a grade, and perhaps onto a grade list) has
  their undesirable-behaviour rates multiplied by `threshold_caution` (see `near_threshold`);
* avoiding blacklisted contacts: each month a tie to a contact on a blacklist is dropped with
  probability `avoid_listed_contacts`, and a dropped tie is replaced by a new contact with
  probability `rewire` (see `simulate.contacts`); the network rule then reads the new graph.

Everything is set-wise: one SQL query per response over the store's `characteristic_intervals`
(as of the previous engine run) and one numpy draw over the rows, so it scales like the generator.
The response records go through `Store.ingest` like any agency batch; the clearing record is
reported by the agency that reported the setting record (always allowed by the catalog: both
courts report listing and delisting, both kinds of bank report guarantee default and settlement).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from socialcredit import standings
from socialcredit.catalog import Catalog, default_catalog
from socialcredit.clock import CST
from socialcredit.engine.sql import fill
from socialcredit.simulate.behaviour import seconds_into_month

if TYPE_CHECKING:
    from socialcredit.store import Store

PAID = 1  # SPC 2017 Art. 10 deletion ground 1: the obligations were performed
RECORD_PREFIX = "resp"  # record ids `resp-YYYYMM-NNNNNNNN`, never colliding with the generator's `sim-…`
SECONDS_PER_MONTH = 365.2425 / 12 * 86400


class Incentives(BaseModel):
    """How citizens respond to their standing; a scenario without `incentives` has no responses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repay_base: float = Field(default=0.02, ge=0, le=1, description="monthly P(listed defaulter pays)")
    repay_when_sanctioned: float = Field(
        default=0.08, ge=0, le=1, description="extra monthly P(pays) after a denied service last month"
    )
    repay_halflife_months: float = Field(
        default=0.0, ge=0, description="months for the repayment probabilities to halve as a listing ages (0: never)"
    )
    settle_guarantee: float = Field(default=0.05, ge=0, le=1, description="monthly P(guarantor settles)")
    deterrence: float = Field(
        default=0.7, ge=0, le=1, description="factor on undesirable-behaviour rates while on a blacklist"
    )
    threshold_band: int = Field(
        default=0, ge=0, le=1000, description="points above one's grade's lower bound that count as near it"
    )
    threshold_caution: float = Field(
        default=1.0, ge=0, le=1, description="factor on undesirable-behaviour rates when near a grade threshold"
    )
    avoid_listed_contacts: float = Field(
        default=0.0, ge=0, le=1, description="monthly P(a tie to a blacklisted contact is dropped)"
    )
    rewire: float = Field(default=0.0, ge=0, le=1, description="P(a dropped tie is replaced by a new contact)")


def _previous_month(month_start: dt.datetime) -> dt.datetime:
    """The first instant of the CST month before `month_start` (naive UTC in, naive UTC out)."""
    local = month_start.replace(tzinfo=dt.UTC).astimezone(CST)
    prev = (local.replace(day=1) - dt.timedelta(days=1)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return prev.astimezone(dt.UTC).replace(tzinfo=None)


def blacklisted(store: Store, at: dt.datetime) -> pa.Array:
    """Citizen ids on any blacklist at `at` (naive UTC), per the last engine run; empty before the first."""
    return pa.array(standings.listed_citizens(store, at, "blacklist"), pa.string())


def near_threshold(store: Store, at: dt.datetime, band: int) -> pa.Array:
    """Citizen ids whose score at `at` is less than `band` points above the lower bound of their grade.

    The score is the last assessed one (the base score for citizens never assessed), read against the
    grades of each city's rulebook in force at `at`. The lowest grade has nowhere to fall, so it never
    counts as near a threshold. Empty when `band` is 0 or nothing has been assessed yet.
    """
    if band <= 0 or not store.has_table("score_log"):
        return pa.array([], pa.string())
    day = at.replace(tzinfo=dt.UTC).astimezone(CST).date()
    rows = []
    rulebooks = store.rulebooks()
    for city in rulebooks.cities:
        rb = rulebooks.resolve(city, day)
        if rb is None:
            continue
        lowest = min(g.min for g in rb.grades)
        rows += [(city, rb.scale.base, g.min, lowest) for g in rb.grades]
    if not rows:
        return pa.array([], pa.string())
    bounds = pa.table({k: [r[i] for r in rows] for i, k in enumerate(("city", "base", "bound", "lowest"))})
    store.con.register("_bounds", bounds)
    try:
        found = store.con.execute(
            fill(
                """WITH s AS (SELECT c.ckey, c.citizen_id, c.city, coalesce(l.score, any_value(b.base)) AS score
                               FROM citizens AS c JOIN _bounds AS b ON b.city = c.city LEFT JOIN __last AS l
                               ON l.ckey = c.ckey GROUP BY c.ckey, c.citizen_id, c.city, l.score)
                    SELECT s.citizen_id FROM s JOIN _bounds AS b ON b.city = s.city
                    WHERE b.bound <= s.score GROUP BY s.ckey, s.citizen_id, s.score
                    HAVING max(b.bound) > any_value(b.lowest) AND s.score - max(b.bound) < $band ORDER BY s.ckey""",
                last=standings.latest_grades(store, at),
                band=band,
            ).sql(standings.DIALECT)
        ).fetchall()
    finally:
        store.con.unregister("_bounds")
    return pa.array([r[0] for r in found], pa.string())


def _holders(store: Store, characteristic: str, at: dt.datetime, since: dt.datetime) -> list[tuple]:
    """(citizen_id, setter agency, amount, denied since `since`, held since) per holder of `characteristic` at `at`."""
    return store.con.execute(
        fill(
            """WITH h AS (SELECT ci.ckey, arg_min(r.agency, ci.start) AS agency,
                             arg_min(ci.amount, ci.start) AS amount, min(ci.start) AS held_since
                      FROM characteristic_intervals AS ci JOIN records AS r ON r.rkey = ci.rkey
                      WHERE ci.characteristic = $ch AND $held GROUP BY ci.ckey),
                d AS (SELECT DISTINCT ckey FROM decisions WHERE asked_by = 'simulator' AND outcome = 'deny'
                      AND asked_at >= $since AND asked_at < $at)
           SELECT c.citizen_id, h.agency, h.amount, d.ckey IS NOT NULL, h.held_since
           FROM h JOIN citizens AS c ON c.ckey = h.ckey LEFT JOIN d ON d.ckey = h.ckey ORDER BY h.ckey""",
            ch=characteristic,
            held=standings.in_force(at, "ci"),
            at=at,
            since=since,
        ).sql(standings.DIALECT)
    ).fetchall()


def respond(
    store: Store,
    month_start: dt.datetime,
    month_end: dt.datetime,
    incentives: Incentives,
    rng: np.random.Generator,
    first_record_number: int = 0,
    *,
    catalog: Catalog | None = None,
) -> pa.Table:
    """This month's response records (delistings of defaulters who pay, settlements), for `Store.ingest`.

    `month_start`/`month_end` are naive UTC (as the store keeps times). Standing is read as of
    `month_start` from the last engine run, so call this before the month's engine run. Deterministic
    for a given store state and `rng`. Same columns as `generate_records` (every catalog attribute).
    """
    catalog = catalog or default_catalog()
    cols: dict[str, list] = {"citizen_id": [], "behaviour": [], "agency": [], "attrs": []}
    if store.has_table("characteristic_intervals"):
        since = _previous_month(month_start)
        defaulters = _holders(store, "court_defaulter", month_start, since)
        p = incentives.repay_base + incentives.repay_when_sanctioned * np.array([d[3] for d in defaulters], bool)
        if incentives.repay_halflife_months > 0:  # those who can pay, pay early: the hazard halves as a stay ages
            held = np.array([(month_start - d[4]).total_seconds() / SECONDS_PER_MONTH for d in defaulters])
            p = p * np.exp2(-held / incentives.repay_halflife_months)
        pays = rng.random(len(defaulters)) < np.minimum(p, 1.0)
        guarantors = _holders(store, "guarantor_for_defaulter", month_start, since)
        settles = rng.random(len(guarantors)) < incentives.settle_guarantee
        for behaviour, holders, chosen in (
            ("court_defaulter_delisting", defaulters, pays),
            ("guarantee_settled", guarantors, settles),
        ):
            for (citizen, agency, amount, *_), yes in zip(holders, chosen, strict=True):
                if yes:
                    cols["citizen_id"].append(citizen)
                    cols["behaviour"].append(behaviour)
                    cols["agency"].append(agency)
                    cols["attrs"].append(
                        {"deletion_ground": PAID} if behaviour == "court_defaulter_delisting" else {"amount": amount}
                    )
    n = len(cols["citizen_id"])
    seconds = int((month_end - month_start).total_seconds())
    offsets = np.sort(seconds_into_month(rng.random(n), seconds))  # after month_start, up to month_end
    local = month_start.replace(tzinfo=dt.UTC).astimezone(CST).replace(tzinfo=None)
    stamp = f"{local:%Y%m}"
    table: dict[str, pa.Array] = {
        "record_id": pa.array(
            [f"{RECORD_PREFIX}-{stamp}-{first_record_number + i:08d}" for i in range(n)], pa.string()
        ),
        "citizen_id": pa.array(cols["citizen_id"], pa.string()),
        "behaviour": pa.array(cols["behaviour"], pa.string()),
        "occurred_at": pa.array(
            [(local + dt.timedelta(seconds=int(o))).isoformat() + "+08:00" for o in offsets], pa.string()
        ),
        "reported_by": pa.array(cols["agency"], pa.string()),
    }
    kinds = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}
    for name, attr in catalog.attributes.items():
        table[name] = pa.array([a.get(name) for a in cols["attrs"]], kinds[attr.type])
    return pa.table(table)


__all__ = ["Incentives", "blacklisted", "near_threshold", "respond"]
