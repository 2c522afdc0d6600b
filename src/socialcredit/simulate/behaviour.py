"""Generate one month of behaviour records for a whole simulated population, with arrays.

Why arrays: the simulator must reach the whole country, so a month is drawn per *behaviour* over all
citizens at once, never per citizen: how many records each (income decile, age) stratum gets, then
who, by weighted sampling over the population's propensity prefix sums (`simulate.strata`), so a
month costs its records, not its population.
The records come out as one Arrow table in the shape `Store.ingest` reads, so simulated records go
through exactly the validation and scoring path real agency batches take (SPEC §4: the simulator is a
client of the engine).

The model, in words (every number is a named default below, overridable through `BehaviourRates`):

* Each catalog behaviour has a base rate: expected records per eligible citizen per month
  (`DEFAULT_RATES`). Most behaviours are adults-only; children report nothing except
  `exam_cheating`, for ages 15–18; a few have narrower ages (`AGES`).
* Citizens differ: each has a log-normal propensity (mean 1) for undesirable and one for desirable
  behaviour, times one per behaviour category. They are derived from the citizen's `avatar_seed`
  (itself fixed per citizen) and `BehaviourRates.propensity_seed`, so they are the same every month
  and in any partition of the population, without storing them.
* Correlations that matter: money trouble (unpaid debt, late bills, card arrears, court listings) is
  more frequent at low income deciles, charity at high ones (`INCOME_GRADIENT`); online posting,
  rumours and gaming are more frequent at young ages (`AGE_GRADIENT`).
* Attributes are drawn to fit their type and meaning: amounts log-normal with a median per
  behaviour, days late and hours skewed, severity 1–5 skewed to minor, sites and cameras from a
  simulated camera network per city (`SH-int-0042`, `SH-cam-0171`). Required attributes are always
  present; attributes a behaviour does not declare stay null.
* The reporting agency is one allowed to report the behaviour: electricity bills come from State
  Grid, other utilities from the city utilities; red lights from the camera network (simulated
  detections at a known camera, never recognition of a person); otherwise by fixed shares.
* `occurred_at` is uniform over the month in China Standard Time (ISO text with +08:00), after its first
  instant and up to the next month's first (`seconds_into_month`: what the month's assessment sees);
  `record_id` is `sim-YYYYMM-NNNNNNNN`, numbered in time order, so it is stable for a seed.

Delistings and settlements respond to a citizen's standing: they are emitted by
`simulate.incentives.respond`, not here; service use goes through `decide` in `simulate.run`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_validator

from socialcredit.catalog import Catalog, default_catalog
from socialcredit.clock import CST
from socialcredit.simulate.strata import Strata

if TYPE_CHECKING:
    from socialcredit.simulate.population import Population
    from socialcredit.store import Store

ADULT = 18

# --------------------------------------------------------------------------- the model's numbers

# expected records per eligible citizen per month (illustrative, chosen to give a plausible mix)
DEFAULT_RATES: dict[str, float] = {
    # desirable
    "volunteer_work": 0.03,
    "blood_donation": 0.003,
    "visiting_parents": 0.04,
    "caring_for_grandparents": 0.01,
    "charity_donation": 0.02,
    "party_loyalty": 0.01,
    "punctuality": 0.05,
    "heroic_act": 0.0002,
    # undesirable (seed)
    "false_terrorism_information": 0.00001,
    "late_bill_payment": 0.02,
    "late_cancellation": 0.01,
    "spreading_rumours": 0.0005,
    "refusing_military_service": 0.0002,
    "drug_use": 0.0003,
    "undesirable_online_post": 0.002,
    "dog_off_leash": 0.003,
    "unpaid_debt": 0.003,
    "excessive_gaming": 0.01,
    "wasteful_purchase": 0.01,
    "traffic_violation": 0.01,
    "smoking_on_train": 0.0005,
    "dog_fouling": 0.002,
    "fare_evasion": 0.001,
    "exam_cheating": 0.002,
    "disruptive_flight_behaviour": 0.0001,
    "red_light_crossing": 0.01,
    "loud_music": 0.002,
    # real-world events and city-rulebook behaviours
    "criminal_conviction": 0.00005,
    "court_defaulter_listing": 0.0002,  # ~0.24%/year of adults, the order of the national list's growth
    "court_defaulter_delisting": 0.0,  # a response to being listed: the incentives step, not a base rate
    "guarantee_default": 0.0001,
    "guarantee_settled": 0.0,  # likewise a response to a guarantee default
    "credit_repair_completed": 0.0,  # only a reviewer's upheld repair case reports it (socialcredit.objections)
    "contract_breach": 0.0005,
    "credit_card_overdue": 0.005,
    "neglecting_parents": 0.00002,
    "drunk_driving": 0.0003,
    "littering": 0.005,
    "illegal_rental": 0.0003,
    "public_fee_arrears": 0.002,
    "utility_theft": 0.0001,
    "illegal_fundraising": 0.00002,
    "counterfeit_goods": 0.00002,
    "mlm_fraud": 0.0001,
}
# eligible ages (inclusive, whole years at the month's start); every other behaviour: ADULT and over
AGES: dict[str, tuple[int, int]] = {
    "exam_cheating": (15, 18),
    "refusing_military_service": (18, 22),
    "visiting_parents": (22, 80),
    "caring_for_grandparents": (18, 50),
    "blood_donation": (18, 60),
    "party_loyalty": (18, 80),
}
# log-rate slope per income decile step from the middle: rate × exp(g · (5.5 − decile) / 4.5), so
# decile 1 has exp(2g) times the rate of decile 10; positive = more frequent when poorer
INCOME_GRADIENT: dict[str, float] = {
    "unpaid_debt": 1.0,
    "late_bill_payment": 0.6,
    "credit_card_overdue": 0.5,
    "public_fee_arrears": 0.6,
    "court_defaulter_listing": 0.8,
    "guarantee_default": 0.4,
    "utility_theft": 0.5,
    "fare_evasion": 0.5,
    "charity_donation": -0.8,
    "wasteful_purchase": -0.5,
    "disruptive_flight_behaviour": -0.5,
}
# log-rate slope per 20 years younger than 40: rate × exp(g · (40 − age) / 20); positive = the young
AGE_GRADIENT: dict[str, float] = {
    "undesirable_online_post": 1.0,
    "spreading_rumours": 0.6,
    "excessive_gaming": 1.5,
    "late_cancellation": 0.4,
    "drug_use": 0.8,
    "loud_music": 0.5,
    "party_loyalty": -0.5,
    "visiting_parents": -0.3,
}
# median amount in yuan (log-normal, sigma AMOUNT_SIGMA) per behaviour with an amount
AMOUNT_MEDIAN: dict[str, float] = {
    "late_bill_payment": 300.0,
    "unpaid_debt": 20_000.0,
    "charity_donation": 200.0,
    "wasteful_purchase": 2_000.0,
    "fare_evasion": 80.0,
    "court_defaulter_listing": 100_000.0,
    "credit_card_overdue": 5_000.0,
    "contract_breach": 50_000.0,
    "public_fee_arrears": 1_500.0,
    "utility_theft": 2_000.0,
    "illegal_fundraising": 500_000.0,
    "counterfeit_goods": 50_000.0,
    "mlm_fraud": 30_000.0,
    "guarantee_default": 80_000.0,
    "guarantee_settled": 80_000.0,
}
AMOUNT_SIGMA = 1.0
DAYS_LATE_MEAN = {"unpaid_debt": 120.0, "public_fee_arrears": 90.0}  # others: DAYS_LATE_DEFAULT
DAYS_LATE_DEFAULT = 35.0  # exponential mean; about 40% of late bills are 30+ days late
HOURS = {"volunteer_work": (2.0, 1.5), "excessive_gaming": (4.0, 1.5)}  # gamma (shape, scale); others below
HOURS_DEFAULT = (2.0, 1.0)
SEVERITY = (0.40, 0.30, 0.17, 0.09, 0.04)  # probability of severity 1 … 5
JUDGED = 0.2  # share of financial records with a court or arbitration finding
UTILITIES = ("electricity", "water", "gas", "heating")  # electricity is reported by State Grid
UTILITY_SHARES = (0.45, 0.25, 0.15, 0.15)
DEFAULTER_GROUNDS = (0.60, 0.10, 0.10, 0.10, 0.05, 0.05)  # SPC 2017 Art. 1 grounds 1 … 6
DEFAULTER_TERM_DAYS = 730  # grounds 2–6 carry a two-year term; ground 1 none (0)
CAMERA_CITIZENS_PER_INTERSECTION = 400  # a city's camera network grows with its population
CAMERAS_PER_INTERSECTION = 4
MIN_INTERSECTIONS = 20
ZIPF_EXPONENT = 1.1  # a few busy intersections see most crossings
CAMERA_SHARE = {"traffic_violation": 0.7}  # the rest are ticketed by traffic police, with no camera
CITY_CODES = {
    "shanghai": "SH",
    "rongcheng": "RC",
    "beijing": "BJ",
    "shenzhen": "SZ",
    "guangzhou": "GZ",
    "qingzhen": "QZ",
}
# how sites are named per behaviour: intersection, train, flight; everything else is a street
SITE_KIND = {
    "red_light_crossing": "int",
    "traffic_violation": "int",
    "drunk_driving": "int",
    "smoking_on_train": "train",
    "fare_evasion": "train",
    "disruptive_flight_behaviour": "flight",
}
# fixed shares where more than one agency may report a behaviour (others: equal shares)
AGENCY_SHARES: dict[str, dict[str, float]] = {
    "court_defaulter_listing": {"supreme_peoples_court": 1.0},
    "court_defaulter_delisting": {"supreme_peoples_court": 1.0},
    "red_light_crossing": {"traffic_camera_network": 1.0},
    "unpaid_debt": {"commercial_banks": 0.7, "peoples_bank_credit_reference": 0.3},
    "credit_card_overdue": {"commercial_banks": 1.0},
    "false_terrorism_information": {"public_security": 0.7, "cyberspace_administration": 0.3},
    "heroic_act": {"civil_affairs_bureau": 1.0},
    "visiting_parents": {"neighbourhood_committee": 1.0},
    "caring_for_grandparents": {"neighbourhood_committee": 1.0},
    "late_cancellation": {"reservation_platform": 0.6, "hospital_appointments": 0.4},
    "punctuality": {"reservation_platform": 0.5, "hospital_appointments": 0.5},
}


# --------------------------------------------------------------------------- the overridable knobs

DAYS_PER_MONTH = 365.2425 / 12


class Ramp(BaseModel):
    """A rate that is phased in: the behaviour's rate × 1 / (1 + exp(−(t − midpoint) / width)).

    Why: a mechanism that is rolled out (courts publishing more and more defaulters from 2013 on) has
    no constant rate; a logistic ramp says it with two numbers a calibration can fit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    midpoint: dt.date = Field(description="when the rate reaches half its full value")
    width_months: float = Field(gt=0, le=600, description="months for the rate to go from 27% to 73% of full")

    def factor(self, month: dt.date) -> float:
        t = (month - self.midpoint).days / DAYS_PER_MONTH / self.width_months
        return float(1.0 / (1.0 + np.exp(-np.clip(t, -700, 700))))


class Backlog(BaseModel):
    """Extra records per eligible citizen in one month: a backlog published at once (a first list)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    month: dt.date = Field(description="the first day of the month")
    rate: float = Field(ge=0, le=1)


class BehaviourRates(BaseModel):
    """What a scenario may change about behaviour; everything left out keeps the module's defaults.

    Why overrides rather than full tables: a scenario says "twice as many late bills" in one line,
    and a new catalog behaviour gets its default without every scenario file being edited.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rates: dict[str, float] = Field(default_factory=dict, description="behaviour → records per citizen-month")
    multipliers: dict[str, float] = Field(default_factory=dict, description="behaviour → factor on its rate")
    scale: float = Field(default=1.0, ge=0, description="factor on every rate")
    income_gradient: dict[str, float] = Field(default_factory=dict)
    age_gradient: dict[str, float] = Field(default_factory=dict)
    propensity_sigma: float = Field(default=0.8, ge=0, le=3, description="log-sd of a citizen's overall propensity")
    category_sigma: float = Field(default=0.5, ge=0, le=3, description="log-sd of a citizen's propensity per category")
    propensity_seed: int = Field(default=0, ge=0, description="which citizens are the prone ones")
    only: list[str] | None = Field(default=None, description="if given, every other behaviour has rate 0")
    ramps: dict[str, Ramp] = Field(default_factory=dict, description="behaviour → logistic phase-in of its rate")
    backlog: dict[str, Backlog] = Field(default_factory=dict, description="behaviour → one month's extra rate")

    @model_validator(mode="after")
    def _known_and_non_negative(self) -> BehaviourRates:
        behaviours = default_catalog().behaviours
        for code in self.only or []:
            if code not in behaviours:
                raise ValueError(f"only: unknown behaviour {code!r}")
        for name in ("rates", "multipliers", "income_gradient", "age_gradient", "ramps", "backlog"):
            for code, value in getattr(self, name).items():
                if code not in behaviours:
                    raise ValueError(f"{name}: unknown behaviour {code!r}")
                if name in ("rates", "multipliers") and value < 0:
                    raise ValueError(f"{name}.{code}: must be at least 0, not {value}")
        return self

    def rate(self, code: str, month: dt.date | None = None) -> float:
        """Expected records per eligible citizen per month, all overrides applied.

        Without `month` the ramp and backlog are ignored (the full, steady rate).
        """
        if self.only is not None and code not in self.only:
            return 0.0
        base = self.rates.get(code, DEFAULT_RATES.get(code, 0.0)) * self.multipliers.get(code, 1.0) * self.scale
        if month is None:
            return base
        if code in self.ramps:
            base *= self.ramps[code].factor(month)
        extra = self.backlog.get(code)
        if extra is not None and (extra.month.year, extra.month.month) == (month.year, month.month):
            base += extra.rate * self.scale
        return base

    def income_slope(self, code: str) -> float:
        return self.income_gradient.get(code, INCOME_GRADIENT.get(code, 0.0))

    def age_slope(self, code: str) -> float:
        return self.age_gradient.get(code, AGE_GRADIENT.get(code, 0.0))


# --------------------------------------------------------------------------- citizens in


@dataclass(frozen=True)
class _Citizens:
    ids: pa.Array
    age: np.ndarray  # whole years at the month's start
    decile: np.ndarray  # float, children 5.5 (neutral)
    city: np.ndarray  # index into cities
    cities: list[str]
    key: np.ndarray  # uint64, fixed per citizen (from avatar_seed)


def citizens_table(store: Store) -> pa.Table:
    """The columns the generator reads, from a store: registry joined with the generated profiles."""
    return store.con.sql("""
        SELECT c.citizen_id, c.birth_date, c.city, c.avatar_seed, p.income_decile
        FROM citizens c LEFT JOIN citizen_profiles p USING (ckey) ORDER BY c.ckey""").to_arrow_table()


def _table(source: Store | Population | pa.Table) -> pa.Table:
    from socialcredit.simulate.population import Population

    if isinstance(source, Population):
        return source.citizens
    if isinstance(source, pa.Table):
        return source
    return citizens_table(source)


def _born(table: pa.Table) -> np.ndarray:
    return np.asarray(table["birth_date"].to_numpy(zero_copy_only=False).astype("datetime64[D]").astype(np.int64))


def _day(month: dt.date) -> int:
    return int(np.datetime64(month, "D").astype(np.int64))


def _citizens(source: Store | Population | pa.Table, month: dt.date) -> _Citizens:
    table = _table(source)
    born = _born(table)
    age = np.floor((_day(month) - born) / 365.2425).astype(np.int64)
    decile = (
        table["income_decile"].cast(pa.float64()).fill_null(5.5).to_numpy()
        if "income_decile" in (table.column_names)
        else np.full(table.num_rows, 5.5)
    )
    city = table["city"].combine_chunks().dictionary_encode()
    seeds = (
        table["avatar_seed"].cast(pa.int64()).fill_null(0).to_numpy()
        if "avatar_seed" in table.column_names
        else np.arange(table.num_rows)
    )
    return _Citizens(
        ids=table["citizen_id"].combine_chunks(),
        age=age,
        decile=np.asarray(decile, np.float64),
        city=city.indices.to_numpy().astype(np.int64),
        cities=city.dictionary.to_pylist(),
        key=seeds.astype(np.uint64),
    )


def _mix(x: np.ndarray, salt: int) -> np.ndarray:
    """SplitMix64 of x ^ salt: a fixed, well-spread 64-bit hash per citizen, vectorised."""
    with np.errstate(over="ignore"):
        z = x ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _normal_of(key: np.ndarray, salt: int) -> np.ndarray:
    """A standard normal per citizen, fixed by (key, salt): Box–Muller on two hashed uniforms."""
    scale = 1.0 / float(1 << 53)
    u1 = ((_mix(key, salt) >> np.uint64(11)).astype(np.float64) + 0.5) * scale
    u2 = ((_mix(key, salt ^ 0x5BD1E995) >> np.uint64(11)).astype(np.float64) + 0.5) * scale
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _lognormal_mean_one(z: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(sigma * z - sigma * sigma / 2.0)


def propensities(key: np.ndarray, rates: BehaviourRates, catalog: Catalog) -> dict[str, np.ndarray]:
    """Per-citizen propensity (mean 1) per behaviour, the same every month: polarity × category.

    Why from a hash of the citizen's key rather than the month's stream: a prone citizen stays prone
    month after month, and a partition of the population gets the same propensities as the whole.
    """
    categories = tuple(dict.fromkeys(b.category for b in catalog.behaviours.values()))
    polarity, category = _propensity_factors(key, rates, categories)
    return {code: polarity[b.polarity] * category[b.category] for code, b in catalog.behaviours.items()}


_FACTORS: dict[tuple[object, ...], tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}


def _propensity_factors(
    key: np.ndarray, rates: BehaviourRates, categories: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The polarity and category factors of `propensities`, kept for the last population asked about:
    they are the same every month, and hashing them out of the keys is most of a month's generation
    cost. The cache is keyed by a digest of the keys themselves, so another population never hits it."""
    ident = (
        hashlib.blake2b(np.ascontiguousarray(key).tobytes(), digest_size=16).digest(),
        key.dtype.str,
        rates.propensity_seed,
        rates.propensity_sigma,
        rates.category_sigma,
        categories,
    )
    found = _FACTORS.get(ident)
    if found is not None:
        return found
    _FACTORS.clear()  # one population at a time: a million citizens' factors are ~100 MB
    _FACTORS[ident] = _factors(key, rates, categories)
    return _FACTORS[ident]


def _factors(
    key: np.ndarray, rates: BehaviourRates, categories: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    salt = rates.propensity_seed * 1_000_003
    polarity = {
        p: _lognormal_mean_one(_normal_of(key, salt + i), rates.propensity_sigma)
        for i, p in enumerate(("desirable", "undesirable", "event"), start=1)
    }
    category = {
        name: _lognormal_mean_one(_normal_of(key, salt + 100 + i * 7919 + sum(map(ord, name))), rates.category_sigma)
        for i, name in enumerate(categories)
    }
    return polarity, category


@dataclass
class Society:
    """A population as the generator reads it, prepared once for many months (`generate_records` takes
    it as its source): the citizens' columns, and per propensity setting their strata with one prefix
    sum per (polarity, category) of propensity (`simulate.strata`).

    Why: these are the population-sized part of drawing a month; a run draws every month from one
    population, so it prepares them once and a month costs what happened in it.
    """

    citizens: _Citizens  # `age` is as of the day prepared; the draws take ages from the strata per month
    born: np.ndarray  # int64 birth day numbers
    cameras: np.ndarray  # intersections per city (the simulated camera network)
    _strata: dict[tuple[object, ...], tuple[Strata, dict[tuple[str, str], np.ndarray]]] = field(default_factory=dict)

    @classmethod
    def of(cls, source: Store | Population | pa.Table) -> Society:
        table = _table(source)
        c = _citizens(table, dt.date(2000, 1, 1))
        return cls(c, _born(table), _intersections(c))

    def strata(self, rates: BehaviourRates, catalog: Catalog) -> tuple[Strata, dict[tuple[str, str], np.ndarray]]:
        """The strata and, per (polarity, category), the prefix sum of that propensity in their order."""
        categories = tuple(dict.fromkeys(b.category for b in catalog.behaviours.values()))
        ident = (rates.propensity_seed, rates.propensity_sigma, rates.category_sigma, categories)
        found = self._strata.get(ident)
        if found is None:
            strata = Strata.of(self.born, self.citizens.decile)
            polarity, category = _factors(self.citizens.key, rates, categories)
            sums: dict[tuple[str, str], np.ndarray] = {}
            for b in catalog.behaviours.values():
                if (b.polarity, b.category) not in sums:
                    sums[(b.polarity, b.category)] = strata.prefix(polarity[b.polarity] * category[b.category])
            self._strata.clear()  # one setting at a time: the sums are a float per citizen and pair
            found = self._strata[ident] = (strata, sums)
        return found


def _weights(c: _Citizens, prop: np.ndarray, code: str, rates: BehaviourRates) -> np.ndarray:
    """Each citizen's rate of `code` per unit of its base rate: eligibility × propensity × gradients."""
    return _rate_factor(c.age, c.decile, prop, code, rates)


def _rate_factor(age: np.ndarray, decile: np.ndarray, prop: np.ndarray, code: str, rates: BehaviourRates) -> np.ndarray:
    """`prop` × eligibility by age × the income and age gradients of `code`: per citizen, or per
    stratum of one age and decile (then `prop` is the stratum's propensity total)."""
    low, high = AGES.get(code, (ADULT, 200))
    w = prop * ((age >= low) & (age <= high))
    if (g := rates.income_slope(code)) != 0:
        w = w * np.exp(g * (5.5 - decile) / 4.5)
    if (g := rates.age_slope(code)) != 0:
        w = w * np.exp(g * (40.0 - age) / 20.0)
    return w


def weight_sums(
    source: Store | Population | pa.Table, months: list[dt.date], code: str, rates: BehaviourRates | None = None
) -> np.ndarray:
    """Per month, the sum over citizens of their rate of `code` per unit of its (ramped) base rate.

    The very weights `generate_records` draws with (before deterrence): expected records of `code` in
    month m are `rates.rate(code, m) × weight_sums(...)[m]`, which lets a fast aggregate model
    (`simulate.calibrate`) compute what a full run reproduces in expectation.
    """
    rates = rates or BehaviourRates()
    out = np.zeros(len(months))
    prop: np.ndarray | None = None
    for i, month in enumerate(months):
        c = _citizens(source, month)
        if prop is None:  # fixed per citizen: computed once
            prop = propensities(c.key, rates, default_catalog())[code]
        out[i] = float(_weights(c, prop, code, rates).sum())
    return out


# --------------------------------------------------------------------------- attributes


Draw = Callable[[str, np.ndarray, np.random.Generator], pa.Array]


def _amount(code: str, rows: np.ndarray, rng: np.random.Generator) -> pa.Array:
    median = AMOUNT_MEDIAN.get(code, 1_000.0)
    return pa.array(np.round(rng.lognormal(np.log(median), AMOUNT_SIGMA, rows.size), 2))


def _days_late(code: str, rows: np.ndarray, rng: np.random.Generator) -> pa.Array:
    mean = DAYS_LATE_MEAN.get(code, DAYS_LATE_DEFAULT)
    return pa.array(1 + np.floor(rng.exponential(mean, rows.size)).astype(np.int64))


def _hours(code: str, rows: np.ndarray, rng: np.random.Generator) -> pa.Array:
    shape, scale = HOURS.get(code, HOURS_DEFAULT)
    return pa.array(np.maximum(0.5, np.round(rng.gamma(shape, scale, rows.size) * 2) / 2))


def _severity(code: str, rows: np.ndarray, rng: np.random.Generator) -> pa.Array:
    return pa.array(1 + rng.choice(len(SEVERITY), size=rows.size, p=SEVERITY).astype(np.int64))


_SIMPLE: dict[str, Draw] = {
    "amount": _amount,
    "days_late": _days_late,
    "hours": _hours,
    "severity": _severity,
    "judged": lambda c, r, g: pa.array(g.random(r.size) < JUDGED),
    "minutes": lambda c, r, g: pa.array(g.integers(0, 16, r.size)),
    "notice_hours": lambda c, r, g: pa.array(np.round(g.exponential(3.0, r.size), 1)),
    "volume_ml": lambda c, r, g: pa.array(g.choice(np.array([200, 300, 400]), r.size, p=[0.3, 0.3, 0.4])),
    "speed_over_pct": lambda c, r, g: pa.array(np.round(g.lognormal(np.log(15.0), 0.6, r.size), 1)),
    "decibels": lambda c, r, g: pa.array(np.round(g.normal(85.0, 8.0, r.size), 1)),
    "sentence_days": lambda c, r, g: pa.array(
        np.where(g.random(r.size) < 0.4, 0, np.rint(g.lognormal(np.log(365.0), 0.9, r.size))).astype(np.int64)
    ),
    "deletion_ground": lambda c, r, g: pa.array(g.integers(0, 8, r.size)),
}


def _codes(prefix: pa.Array | pa.Scalar, numbers: np.ndarray, width: int = 4) -> pa.Array:
    """`prefix` + zero-padded numbers, as Arrow strings, in one vectorised pass."""
    digits = pc.utf8_lpad(pa.array(numbers).cast(pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _city_prefixes(cities: list[str]) -> list[str]:
    return [CITY_CODES.get(c, c[:2].upper()) for c in cities]


def _intersections(c: _Citizens) -> np.ndarray:
    """Intersections per city: the simulated camera network's size grows with the city."""
    sizes = np.bincount(c.city, minlength=len(c.cities))
    return np.maximum(MIN_INTERSECTIONS, sizes // CAMERA_CITIZENS_PER_INTERSECTION)


def _zipf_index(n: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """0 … n-1, low numbers busier (continuous power law, inverse transform), for per-row n."""
    u = rng.random(n.size)
    a = 1.0 - ZIPF_EXPONENT
    x = (1.0 + u * (np.power(n + 1.0, a) - 1.0)) ** (1.0 / a)  # in [1, n+1)
    return np.minimum(n - 1, np.floor(x - 1.0)).astype(np.int64)


# --------------------------------------------------------------------------- the month


def generate_records(
    source: Store | Population | pa.Table | Society,
    month_start: dt.datetime | dt.date,
    rates: BehaviourRates | None = None,
    rng: np.random.Generator | None = None,
    *,
    catalog: Catalog | None = None,
    first: int = 0,
    blacklisted: pa.Array | list[str] | None = None,
    deterrence: float = 1.0,
    cautious: pa.Array | list[str] | None = None,
    caution: float = 1.0,
) -> pa.Table:
    """One month of records for every citizen of `source`, ready for `Store.ingest`.

    `source` is a store (its citizens and generated profiles), a `Population`, a citizens table
    with citizen_id, birth_date, city and optionally income_decile and avatar_seed, or a `Society`
    prepared from one of these (a run prepares it once, so a month costs its records, not its
    population). The same source and `rng` give the same table. `month_start` is
    read in China Standard Time (a naive value or a date is taken as CST). `rng` draws the month's
    records (default: seeded from the month, so a month is reproducible on its own); `first` offsets
    the record numbering, so a caller streaming partitions of one month keeps record_ids unique.
    Columns: record_id, citizen_id, behaviour, occurred_at, reported_by, then one column per catalog
    attribute (typed, null where the behaviour does not declare it).

    `blacklisted` (citizen ids) and `deterrence` are the incentives' deterrence: those citizens'
    undesirable-behaviour rates are multiplied by `deterrence` (sanctions deter). `cautious` and
    `caution` do the same for citizens just above a grade threshold (they fear the drop). None leaves
    the draws exactly as before, so runs without incentives are unchanged.
    """
    rates = rates or BehaviourRates()
    catalog = catalog or default_catalog()
    start = _cst(month_start)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    rng = rng if rng is not None else np.random.default_rng([start.year, start.month])
    society = source if isinstance(source, Society) else Society.of(source)
    c = society.citizens
    strata, sums = society.strata(rates, catalog)
    cells = strata.month(_day(start.date()))
    deterring = [
        (pa.array(ids, pa.string()), factor)
        for ids, factor in ((blacklisted, deterrence), (cautious, caution))
        if ids is not None and factor != 1.0
    ]

    who: list[np.ndarray] = []
    what: list[np.ndarray] = []
    blocks: list[tuple[str, np.ndarray]] = []
    for bi, code in enumerate(catalog.behaviours):
        base = rates.rate(code, start.date())
        if base <= 0:
            continue
        b = catalog.behaviours[code]
        prefix = sums[(b.polarity, b.category)]
        # Independent Poisson counts per citizen, drawn exactly in O(strata + records): a Poisson count
        # per (decile, age) stratum, then each record on a citizen of it in proportion to propensity.
        mean = base * _rate_factor(cells.age, cells.decile, cells.totals(prefix), code, rates)
        rows = strata.draw(cells, prefix, mean, rng)
        if deterring and b.polarity == "undesirable" and rows.size:
            # deterrence thins the drawn records (a Poisson count thinned by p is Poisson with p × the rate)
            keep = np.ones(rows.size)
            for ids, factor in deterring:
                member = pc.is_in(c.ids.take(pa.array(rows)), value_set=ids).to_numpy(zero_copy_only=False)
                keep = keep * np.where(member, factor, 1.0)
            rows = rows[rng.random(rows.size) < keep]
        if rows.size:
            who.append(rows)
            what.append(np.full(rows.size, bi, np.int16))
            blocks.append((code, rows))

    n = sum(r.size for r in who)
    columns: dict[str, list[pa.Array]] = {"reported_by": []}
    attr_cols: dict[str, list[pa.Array]] = {a: [] for a in catalog.attributes}
    for code, rows in blocks:
        attrs, agency = _attributes(code, rows, c, society.cameras, catalog, rng)
        columns["reported_by"].append(agency)
        for name, chunks in attr_cols.items():
            chunks.append(attrs.get(name, pa.nulls(rows.size, _arrow_type(catalog.attributes[name].type))))

    seconds = (end - start).total_seconds()
    offsets = seconds_into_month(rng.random(n), seconds)
    citizen = np.concatenate(who) if who else np.zeros(0, np.int64)
    behaviour = np.concatenate(what) if what else np.zeros(0, np.int16)
    order = np.lexsort((citizen, behaviour, offsets))  # time order; ties by behaviour, then citizen

    local = np.datetime64(start.replace(tzinfo=None), "s") + offsets[order].astype("timedelta64[s]")
    # Arrow's cast writes "YYYY-MM-DD hh:mm:ss" fifty times faster than numpy's datetime_as_string
    text = pc.replace_substring(pa.array(local, pa.timestamp("s")).cast(pa.string()), " ", "T")
    occurred = pc.binary_join_element_wise(text, "+08:00", "")
    numbers = np.arange(first, first + n)
    record_id = _codes(pa.scalar(f"sim-{start:%Y%m}-", pa.string()), numbers, 8)
    codes = pa.array(list(catalog.behaviours))
    table = {
        "record_id": record_id,
        "citizen_id": c.ids.take(pa.array(citizen[order])),
        "behaviour": codes.take(pa.array(behaviour[order])),
        "occurred_at": occurred,
        "reported_by": _concat(columns["reported_by"], pa.string()).take(pa.array(order)),
    }
    for name, chunks in attr_cols.items():
        table[name] = _concat(chunks, _arrow_type(catalog.attributes[name].type)).take(pa.array(order))
    return pa.table(table)


def seconds_into_month(u: np.ndarray, seconds: float) -> np.ndarray:
    """Whole seconds after a month's first instant for uniform draws `u` in [0, 1): 1 to `seconds` inclusive.

    Why not 0 to `seconds` - 1: an assessment at a month start sees everything at or before it (SPEC §5), so
    the month assessed at its end covers (start, end]. A record drawn at exactly the start would belong to
    the previous month's assessment, which already ran: the engine would have to redo that month (about 8%
    of months at a million citizens, each costing a full recompute of the running sums)."""
    return np.floor(u * seconds).astype(np.int64) + 1


def _cst(t: dt.datetime | dt.date) -> dt.datetime:
    if not isinstance(t, dt.datetime):
        t = dt.datetime(t.year, t.month, t.day)
    t = t.replace(tzinfo=CST) if t.tzinfo is None else t.astimezone(CST)
    return t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _arrow_type(kind: str) -> pa.DataType:
    return {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}[kind]


def _concat(chunks: list[pa.Array], kind: pa.DataType) -> pa.Array:
    return pa.concat_arrays([x.cast(kind) for x in chunks]) if chunks else pa.array([], kind)


def _attributes(
    code: str, rows: np.ndarray, c: _Citizens, cameras: np.ndarray, catalog: Catalog, rng: np.random.Generator
) -> tuple[dict[str, pa.Array], pa.Array]:
    """Every declared attribute of `code` for `rows` (citizen indices), and the reporting agency."""
    declared = catalog.behaviours[code].attributes
    out: dict[str, pa.Array] = {}
    agency: pa.Array | None = None
    prefix = pa.array(_city_prefixes(c.cities), pa.string()).take(pa.array(c.city[rows]))
    for name in declared:
        if name in _SIMPLE:
            out[name] = _SIMPLE[name](code, rows, rng)
        elif name == "utility":
            pick = rng.choice(len(UTILITIES), size=rows.size, p=UTILITY_SHARES)
            out[name] = pa.array(np.array(UTILITIES, dtype=object)[pick], pa.string())
            # electricity is billed by State Grid, water, gas and heating by the city's utilities
            agency = pa.array(np.where(pick == 0, "state_grid", "city_utilities").astype(object), pa.string())
        elif name == "ground":
            ground = 1 + rng.choice(len(DEFAULTER_GROUNDS), size=rows.size, p=DEFAULTER_GROUNDS)
            out[name] = pa.array(ground.astype(np.int64))
            if "term_days" in declared:
                out["term_days"] = pa.array(np.where(ground == 1, 0, DEFAULTER_TERM_DAYS).astype(np.int64))
        elif name in ("shares", "views") and "views" not in out:  # shares are a small part of views
            views = np.rint(rng.lognormal(np.log(300.0), 2.0, rows.size)).astype(np.int64)
            out["views"] = pa.array(views)
            out["shares"] = pa.array(rng.binomial(views, 0.02))
    if "site" in declared or "camera" in declared:
        out.update(_sites(code, rows, c, cameras, prefix, rng))
    if code in CAMERA_SHARE or code == "red_light_crossing":
        by_camera = rng.random(rows.size) < CAMERA_SHARE.get(code, 1.0)
        if code not in AGENCY_SHARES:
            agency = pa.array(np.where(by_camera, "traffic_camera_network", "traffic_police").astype(object))
        if "camera" in out:  # a police ticket names no camera
            out["camera"] = pc.if_else(pa.array(by_camera), out["camera"], pa.nulls(rows.size, pa.string()))
    for name in declared:
        out.setdefault(name, pa.nulls(rows.size, _arrow_type(catalog.attributes[name].type)))
    if agency is None:
        agency = _agency(code, rows.size, catalog, rng)
    return {k: v for k, v in out.items() if k in declared}, agency


def _sites(
    code: str, rows: np.ndarray, c: _Citizens, cameras: np.ndarray, prefix: pa.Array, rng: np.random.Generator
) -> dict[str, Any]:
    """Sites by kind; at an intersection, one of its cameras (the simulated camera network)."""
    kind = SITE_KIND.get(code, "st")
    if kind == "train":
        return {
            "site": _codes(
                pa.array(np.full(rows.size, "G", dtype=object), pa.string()), rng.integers(1, 2000, rows.size)
            )
        }
    if kind == "flight":
        return {
            "site": _codes(
                pa.array(np.full(rows.size, "MU", dtype=object), pa.string()), rng.integers(1, 9000, rows.size)
            )
        }
    if kind == "st":
        return {"site": _codes(pc.binary_join_element_wise(prefix, "-st-", ""), rng.integers(0, 5000, rows.size))}
    intersection = _zipf_index(cameras[c.city[rows]], rng)
    camera = intersection * CAMERAS_PER_INTERSECTION + rng.integers(0, CAMERAS_PER_INTERSECTION, rows.size)
    return {
        "site": _codes(pc.binary_join_element_wise(prefix, "-int-", ""), intersection),
        "camera": _codes(pc.binary_join_element_wise(prefix, "-cam-", ""), camera),
    }


def allowed_agencies(code: str, catalog: Catalog) -> list[str]:
    return [a.code for a in catalog.agencies.values() if code in a.behaviours]


def _agency(code: str, n: int, catalog: Catalog, rng: np.random.Generator) -> pa.Array:
    """The reporting agency per record: fixed shares (AGENCY_SHARES), else equal among those allowed."""
    allowed = allowed_agencies(code, catalog)
    shares = AGENCY_SHARES.get(code) or dict.fromkeys(allowed, 1.0 / len(allowed))
    names = list(shares)
    for name in names:
        if name not in allowed:
            raise ValueError(f"agency {name} may not report {code} (allowed: {', '.join(allowed)})")
    if len(names) == 1:
        return pa.array(np.full(n, names[0], dtype=object), pa.string())
    p = np.array([shares[x] for x in names], np.float64)
    pick = rng.choice(len(names), size=n, p=p / p.sum())
    return pa.array(np.array(names, dtype=object)[pick], pa.string())
