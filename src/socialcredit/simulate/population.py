"""Generate a synthetic population with arrays: resident IDs, names, households, contacts, income.

Why arrays: the society has to reach 1.41 billion people, so nothing here is a Python call per
citizen. Every attribute is drawn for a whole city at once with numpy, households are laid out by
cumulative sums, resident IDs are built as one byte matrix, names are gathers from frequency tables
and the contact graph is a stub-matching model sorted in one pass.

The model, in words (every number is a named constant below, so it can be read and changed):

* Households are drawn first. Each has a first adult aged 18–90, weighted like China's 2020
  population pyramid; with an age-dependent probability it is a married couple (the wife's age is
  the drawn one, the husband is about two years older; legal ages 20 and 22). Couples, and a few
  single parents, have 0–3 children under 18, born when both parents were at least 20 and the
  mother at most 45. Households are taken until the city's size is reached exactly.
* Some adults are linked to the parents they grew up with: an older couple of the same city whose
  younger member is 20–40 years older. Children take their father's surname (a single parent's
  otherwise), through every generation; wives keep their own, as in China.
* Contacts: every adult draws a log-normal number of contact "stubs" (mean about 14). Most are
  paired with neighbours (households near each other in the city's layout), some with people of
  similar age anywhere in the city, and a few form long ties across the whole population, which is
  how cities connect. Self-loops and repeated pairs are dropped; every contact is symmetric.
* Income decile (adults only, relative to the generated population) rises to a peak in the
  forties, differs by city, and is shared in part within a household; occupation follows age
  (students, retirees) and income decile.

Same seed, same tables, bit for bit: each city draws from its own stream, derived from the seed and
the city's name, and the contact graph and profiles from streams derived from the seed alone.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from socialcredit import ids
from socialcredit.simulate.names import GIVEN, SURNAMES
from socialcredit.yamlio import LocatedError

Progress = Callable[[str], None]

# --------------------------------------------------------------------------- the model's numbers

ADULT, OLDEST = 18, 90
DAYS_PER_YEAR = 365.2425
# China, 2020 census, people in millions per five-year age band (band start, millions); the adult ages
# of first adults in households are drawn with these weights (18–19 from the 15–19 band).
PYRAMID = (
    (15, 72.7), (20, 75.5), (25, 91.9), (30, 124.1), (35, 99.0), (40, 93.0), (45, 114.2), (50, 121.4),
    (55, 101.4), (60, 73.4), (65, 74.0), (70, 49.6), (75, 30.0), (80, 20.4), (85, 11.0), (90, 6.0),
)  # fmt: skip
# probability that a household whose first adult is this old is a married couple, by age band start
COUPLE = ((18, 0.01), (20, 0.08), (23, 0.28), (26, 0.48), (30, 0.64), (65, 0.60), (75, 0.45), (85, 0.30))
HUSBAND_OLDER = (2.0, 3.0)  # mean and sd of the husband's age minus the wife's, in years
WIFE_MIN_AGE, HUSBAND_MIN_AGE = 20, 22  # legal ages of marriage in China
MIN_PARENT_AGE, MAX_MOTHER_AGE = 20, 45  # both parents at least this old when a child is born
CHILDREN = (0.36, 0.40, 0.20, 0.04)  # probability of 0, 1, 2, 3 children under 18 for an eligible couple
SINGLE_PARENT = 0.10  # share of single adults aged 22–55 who live with children
SINGLE_MALE = 0.54  # single adults are a little more often men
BOY = 0.53  # China's sex ratio at birth has been skewed towards boys
LINK_PARENTS = 0.6  # share of adults up to 70 linked to parents in the same city, where one fits
PARENT_GAP = (27.0, 4.0, 20, 40)  # years between an adult and the younger of their parents: mean, sd, min, max
MAX_GROWN_CHILDREN = 4  # at most this many grown children linked to one couple
# share of given names with two characters, by birth year from (single-character names peaked in the 1980s–90s)
TWO_CHARACTERS = ((1900, 0.55), (1960, 0.45), (1980, 0.30), (2000, 0.70), (2010, 0.80))
GIVEN_RANK_OFFSET = 8  # given-name characters are weighted 1 / (rank + offset)
CONTACTS_MEAN, CONTACTS_SIGMA = 14.0, 0.6  # log-normal number of contact stubs per adult
LONG_TIES, PEER_TIES = 0.06, 0.30  # shares of stubs paired across the whole population / by age in the city
NEIGHBOURHOOD = 40.0  # Laplace scale, in adults, of how far along the city's layout a neighbour tie reaches
PEER_AGE_SD = 2.5  # how far apart in years peers of "similar age" are
# income level of a city relative to others (unknown cities: 0)
CITY_INCOME = {"shanghai": 0.8, "beijing": 0.8, "shenzhen": 0.7, "guangzhou": 0.5, "rongcheng": 0.1, "qingzhen": -0.5}
HOUSEHOLD_INCOME_SHARE = 0.6  # weight of a household-wide income component (spouses earn alike)
RETIREMENT = {"M": 60, "F": 55}
OCCUPATIONS = (
    "child", "student", "retired", "farmer", "worker", "service", "self_employed", "professional", "civil_servant",
    "manager", "unemployed",
)  # fmt: skip
# occupation of working-age adults by income decile band (deciles 1–2, 3–5, 6–8, 9–10)
OCCUPATION_BY_INCOME = (
    {"farmer": 0.40, "worker": 0.30, "service": 0.12, "unemployed": 0.18},
    {"farmer": 0.18, "worker": 0.36, "service": 0.30, "self_employed": 0.14, "unemployed": 0.02},
    {"worker": 0.22, "service": 0.22, "self_employed": 0.16, "professional": 0.24, "civil_servant": 0.16},
    {"self_employed": 0.14, "professional": 0.42, "civil_servant": 0.16, "manager": 0.28},
)
SEQUENCES = 500  # a resident ID has 500 sequence numbers per sex for one region and birth date
KINDS = ("parent", "child", "spouse", "contact")
DEFAULT_START = dt.date(2025, 1, 1)

CITIZEN_SCHEMA = pa.schema(
    [
        ("ckey", pa.int32()),
        ("citizen_id", pa.string()),
        ("name", pa.string()),
        ("name_latin", pa.string()),
        ("sex", pa.string()),
        ("birth_date", pa.date32()),
        ("city", pa.string()),
        ("avatar_seed", pa.int64()),
        ("household", pa.int64()),
        ("income_decile", pa.int8()),
        ("occupation", pa.string()),
    ]
)
RELATION_SCHEMA = pa.schema(
    [("ckey", pa.int32()), ("other", pa.int32()), ("kind", pa.dictionary(pa.int8(), pa.string()))]
)


@dataclass(frozen=True)
class Population:
    """A generated society: one row per citizen, and every relation in both directions.

    `ckey`s are local to the population (0 … n-1, in row order); `Store.add_population` gives them
    store keys. Relations have the store's shape: (ckey, other, kind), `kind` one of parent (other is
    ckey's parent), child, spouse, contact, each edge present in both directions.
    """

    citizens: pa.Table
    relations: pa.Table
    seed: int
    start: dt.date

    def __len__(self) -> int:
        return self.citizens.num_rows

    def summary(self) -> list[dict[str, Any]]:
        """Per city: citizens, adults, children, households and mean contacts per adult."""
        city = self.citizens["city"].to_numpy(zero_copy_only=False)
        decile = self.citizens["income_decile"].is_valid().to_numpy(zero_copy_only=False)
        household = self.citizens["household"].to_numpy()
        kind = self.relations["kind"].combine_chunks()
        contact = kind.indices.to_numpy() == kind.dictionary.to_pylist().index("contact")
        degree = np.bincount(self.relations["ckey"].to_numpy()[contact], minlength=len(self))
        out = []
        for name in sorted(set(city.tolist())):
            mine = city == name
            adults = mine & decile
            out.append(
                {
                    "city": name,
                    "citizens": int(mine.sum()),
                    "adults": int(adults.sum()),
                    "children": int((mine & ~decile).sum()),
                    "households": int(np.unique(household[mine]).size),
                    "mean_contacts": float(degree[adults].mean()) if adults.any() else 0.0,
                }
            )
        return out


# --------------------------------------------------------------------------- entry point


def generate_population(
    cities: Mapping[str, int],
    seed: int,
    start: dt.date = DEFAULT_START,
    *,
    regions: Mapping[str, str] | None = None,
    reserved: Iterable[str] | pa.Array | pa.ChunkedArray = (),
    progress: Progress | None = None,
    district: tuple[int, int] | None = None,
) -> Population:
    """Generate `cities` (name → number of citizens) as of `start`, reproducibly from `seed`.

    `regions` maps each city to its 6-digit region code (default: the shipped rulebooks'
    `region_code`). `reserved` lists resident IDs already in use (e.g. in the target store), which
    the generated ones avoid, so a second population can join a store that holds a first one.

    `district` = (i, n) generates district i of a city split into n districts (`simulate.partition`):
    its streams are its own (derived from the seed, the district and the city), and it takes every
    n-th resident-ID sequence slot from the i-th on, so districts generated apart, one per process,
    never issue the same ID. (1 of 1 is a whole city run as its own partition.)
    """
    step = progress or (lambda _label: None)
    codes = dict(regions) if regions is not None else shipped_regions()
    for name, size in cities.items():
        if name not in codes or not codes[name]:
            raise LocatedError(f"unknown city {name!r} (cities with a region code: {', '.join(sorted(codes))})")
        if size < 1:
            raise LocatedError(f"city {name!r}: the number of citizens must be at least 1, not {size}")
    if district is not None and not 0 <= district[0] < district[1]:
        raise LocatedError(f"district {district[0]} of {district[1]}: expected 0 <= district < districts")
    if district is not None and district[1] > 1 and reserved != ():
        raise LocatedError("a district of a split city cannot also avoid reserved IDs: generate it into a new store")
    order = sorted(cities)  # the same tables whatever order the cities were named in
    # a partition's streams are its own: cities run apart must not draw the same numbers
    salt = () if district is None else (f"district {district[0]}/{district[1]}", *order)
    start_day = int(np.datetime64(start, "D").astype(np.int64))
    parts = []
    base = 0
    households = 0
    for index, name in enumerate(order):
        step(f"households of {name}")
        part = _city(int(cities[name]), _stream(seed, "city", name, *salt), start_day)
        part["index"] = np.full(part["n"], index, np.int16)
        part["region"] = np.full(part["n"], int(codes[name]), np.int64)
        for k in ("name_from", "spouse"):
            part[k] = np.where(part[k] >= 0, part[k] + base, -1)
        part["parent_pairs"] = part["parent_pairs"] + base
        part["household"] = part["household"] + households
        households = int(part["household"].max()) + 1
        base += part["n"]
        parts.append(part)
    pop = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "n"}
    n = base

    step("names")
    names = _stream(seed, "names", *salt)
    given_first, given_second = _given_names(pop, names, start_day)
    surname = _surnames(pop, names)

    step("resident IDs")
    birth = start_day - pop["age_days"]
    resident = _resident_ids(pop["region"], birth, pop["male"], seed, reserved, district or (0, 1))

    step("income and occupation")
    decile, occupation = _profiles(pop, order, _stream(seed, "profiles", *salt))

    step("contacts")
    adults = np.flatnonzero(pop["age_days"] >= _ADULT_DAYS)
    a, b = _contacts(adults, pop["index"][adults], pop["years"][adults], _stream(seed, "contacts", *salt))

    step("tables")
    citizens = pa.table(
        [
            pa.array(np.arange(n, dtype=np.int32)),
            resident,
            _names_zh(surname, given_first, given_second),
            _names_latin(surname, given_first, given_second),
            pa.DictionaryArray.from_arrays(pop["male"].astype(np.int8), pa.array(["F", "M"])).cast(pa.string()),
            pa.array(birth.astype(np.int32), pa.date32()),
            pa.DictionaryArray.from_arrays(pop["index"], pa.array(order)).cast(pa.string()),
            pa.array(pop["avatar_seed"]),
            pa.array(pop["household"]),
            pa.array(decile, mask=decile == 0),
            pa.DictionaryArray.from_arrays(occupation, pa.array(OCCUPATIONS)).cast(pa.string()),
        ],
        schema=CITIZEN_SCHEMA,
    )
    relations = _relations(pop["parent_pairs"], pop["spouse"], a, b)
    return Population(citizens=citizens, relations=relations, seed=seed, start=start)


@functools.cache
def _shipped_regions() -> tuple[tuple[str, str], ...]:
    from socialcredit.rulebook import shipped_layers

    found = {}
    for layer in shipped_layers():
        if layer.level == "city" and layer.region_code:
            found[layer.jurisdiction] = layer.region_code
    return tuple(sorted(found.items()))


def shipped_regions() -> dict[str, str]:
    """City → region code, from the shipped rulebooks (a store's own rulebooks may add cities)."""
    return dict(_shipped_regions())


def regions_of(rulebooks: Any) -> dict[str, str]:
    """City → region code from a store's `RulebookSet` (each city's latest layer that names one)."""
    out = {}
    for city in rulebooks.cities:
        codes = [v.region_code for v in rulebooks.layers[city] if v.region_code]
        if codes:
            out[city] = codes[-1]
    return out


def _stream(seed: int, *names: str) -> np.random.Generator:
    """An independent random stream per purpose (and per city), so one part can change alone."""
    words = [int.from_bytes(hashlib.sha256(x.encode()).digest()[:4], "little") for x in names]
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, *words]))


# --------------------------------------------------------------------------- one city

_ADULT_DAYS = int(np.ceil(ADULT * 365.25)) + 1  # at least 18 calendar years, whatever the leap days
_CHILD_MAX_DAYS = ADULT * 365 - 5  # under 18 calendar years
_OLDEST_DAYS = int((OLDEST + 1) * DAYS_PER_YEAR) - 2


def _adult_age_weights() -> np.ndarray:
    ages = np.arange(ADULT, OLDEST + 1)
    starts = np.array([s for s, _ in PYRAMID])
    per_year = np.array([m / 5 for _, m in PYRAMID])
    w = per_year[np.searchsorted(starts, ages, side="right") - 1]
    return w / w.sum()


def _by_band(table: tuple[tuple[int, float], ...], values: np.ndarray) -> np.ndarray:
    starts = np.array([s for s, _ in table])
    probs = np.array([p for _, p in table])
    return probs[np.clip(np.searchsorted(starts, values, side="right") - 1, 0, None)]


def _draw_households(count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`count` households: first adult's age and sex, whether a couple, husband's age, children's ages."""
    first = ADULT + rng.choice(OLDEST - ADULT + 1, size=count, p=_adult_age_weights())
    couple = (rng.random(count) < _by_band(COUPLE, first)) & (first >= WIFE_MIN_AGE)
    husband = np.clip(first + np.rint(rng.normal(*HUSBAND_OLDER, size=count)), HUSBAND_MIN_AGE, OLDEST)
    husband = np.where(couple, husband, 0).astype(np.int64)
    single_male = rng.random(count) < SINGLE_MALE
    single_parent = (~couple) & (first >= 22) & (first <= 55) & (rng.random(count) < SINGLE_PARENT)
    younger = np.where(couple, np.minimum(first, husband), first)
    # children under 18, born when both parents were at least MIN_PARENT_AGE and the first adult (the
    # wife, in a couple) at most MAX_MOTHER_AGE
    low = np.maximum(0, first - MAX_MOTHER_AGE)
    high = np.minimum(ADULT - 1, younger - MIN_PARENT_AGE)
    eligible = (couple | single_parent) & (high >= low)
    kids = rng.choice(len(CHILDREN), size=count, p=CHILDREN)
    kids = np.where(eligible, kids, 0)
    kids = np.where(single_parent & eligible & (kids == 0), 1, kids)
    return {
        "first": first,
        "couple": couple,
        "husband": husband,
        "single_male": single_male,
        "kids": kids,
        "low": low,
        "high": high,
    }


def _city(n: int, rng: np.random.Generator, start_day: int) -> dict[str, Any]:
    """One city of exactly `n` citizens, laid out household by household (local indices 0 … n-1)."""
    # draw households until they hold at least n people; the last ones are cut to single adults so
    # the city has exactly n citizens
    drawn: list[dict[str, np.ndarray]] = []
    total = 0
    while True:
        chunk = _draw_households(max(1024, n // 2 + 64), rng)
        drawn.append(chunk)
        total += int((1 + chunk["couple"] + chunk["kids"]).sum())
        if total >= n + 8:
            break
    hh = {k: np.concatenate([c[k] for c in drawn]) for k in drawn[0]}
    size = 1 + hh["couple"].astype(np.int64) + hh["kids"]
    full = int(np.searchsorted(np.cumsum(size), n, side="right"))
    rest = n - int(size[:full].sum())
    keep = full + rest
    hh = {k: v[:keep] for k, v in hh.items()}
    hh["couple"][full:] = False
    hh["kids"][full:] = 0
    hh["husband"][full:] = 0
    size = 1 + hh["couple"].astype(np.int64) + hh["kids"]
    h = keep
    offset = np.cumsum(size) - size
    assert int(size.sum()) == n

    years = np.zeros(n, np.int64)
    male = np.zeros(n, bool)
    household = np.repeat(np.arange(h, dtype=np.int64), size)
    is_child = np.zeros(n, bool)
    spouse = np.full(n, -1, np.int64)
    name_from = np.full(n, -1, np.int64)

    first = offset
    years[first] = hh["first"]
    male[first] = np.where(hh["couple"], False, hh["single_male"])
    couples = np.flatnonzero(hh["couple"])
    wife, husband = offset[couples], offset[couples] + 1
    years[husband] = hh["husband"][couples]
    male[husband] = True
    spouse[wife], spouse[husband] = husband, wife

    kids = hh["kids"]
    kid_house = np.repeat(np.arange(h), kids)
    kid_rank = np.arange(int(kids.sum())) - np.repeat(np.cumsum(kids) - kids, kids)
    kid = offset[kid_house] + 1 + hh["couple"][kid_house] + kid_rank
    low, high = hh["low"][kid_house], hh["high"][kid_house]
    years[kid] = low + np.floor(rng.random(kid.size) * (high - low + 1)).astype(np.int64)
    male[kid] = rng.random(kid.size) < BOY
    is_child[kid] = True
    father = np.where(hh["couple"][kid_house], offset[kid_house] + 1, offset[kid_house])
    name_from[kid] = father
    parent_pairs = [np.stack([kid, offset[kid_house]], axis=1)]
    with_two = hh["couple"][kid_house]
    parent_pairs.append(np.stack([kid[with_two], offset[kid_house][with_two] + 1], axis=1))

    # a uniform day within the age's year, cut to the child/adult bounds first, so no day piles up at a bound
    # (piled-up birth days would exhaust the 500 resident-ID sequences a region has for a sex and a day)
    lo = np.floor(years * DAYS_PER_YEAR).astype(np.int64)
    hi = np.floor((years + 1) * DAYS_PER_YEAR).astype(np.int64) - 1
    lo = np.where(is_child, np.maximum(lo, 0), np.maximum(lo, _ADULT_DAYS))
    hi = np.where(is_child, np.minimum(hi, _CHILD_MAX_DAYS), np.minimum(hi, _OLDEST_DAYS))
    age_days = lo + np.floor(rng.random(n) * (hi - lo + 1)).astype(np.int64)

    # adults linked to the couple they grew up with: the younger parent is PARENT_GAP years older
    grown = np.flatnonzero(~is_child & (years <= OLDEST - PARENT_GAP[2]))
    grown = grown[rng.random(grown.size) < LINK_PARENTS]
    gap = np.clip(np.rint(rng.normal(PARENT_GAP[0], PARENT_GAP[1], grown.size)), PARENT_GAP[2], PARENT_GAP[3])
    target = years[grown] + gap.astype(np.int64)
    elder_younger = np.minimum(years[wife], years[husband])
    by_age = np.argsort(elder_younger, kind="stable")
    sorted_age = elder_younger[by_age]
    lo = np.searchsorted(sorted_age, target, side="left")
    hi = np.searchsorted(sorted_age, target, side="right")
    # deal the adults of one target age round the couples of that age, from a random couple on, so
    # that parents have one to MAX_GROWN_CHILDREN grown children rather than some a dozen
    by_target = np.argsort(target, kind="stable")
    t = target[by_target]
    first_of = np.r_[0, np.flatnonzero(t[1:] != t[:-1]) + 1]
    turn = np.empty(grown.size, np.int64)
    turn[by_target] = np.arange(grown.size) - np.repeat(first_of, np.diff(np.r_[first_of, grown.size]))
    start_at = rng.integers(0, 1 << 30, size=OLDEST + PARENT_GAP[3] + 1)[target]
    found = (hi > lo) & (turn < MAX_GROWN_CHILDREN * (hi - lo))
    pick = lo + (turn + start_at) % np.maximum(hi - lo, 1)
    grown, pick = grown[found], by_age[pick[found]]
    # spouses are never both children of the same couple
    chosen = np.full(n, -1, np.int64)
    chosen[grown] = pick
    partner = spouse[grown]
    clash = (partner >= 0) & (chosen[np.maximum(partner, 0)] == pick) & (partner < grown)
    grown, pick = grown[~clash], pick[~clash]
    name_from[grown] = husband[pick]
    parent_pairs.append(np.stack([grown, wife[pick]], axis=1))
    parent_pairs.append(np.stack([grown, husband[pick]], axis=1))

    return {
        "n": n,
        "years": years,
        "age_days": age_days,
        "male": male,
        "household": household,
        "spouse": spouse,
        "name_from": name_from,
        "parent_pairs": np.concatenate(parent_pairs).astype(np.int64),
        "avatar_seed": rng.integers(0, 2**48, size=n, dtype=np.int64),
        "household_income": rng.normal(size=h)[household],
    }


# --------------------------------------------------------------------------- names

_SURNAME_ZH = pa.array([s for s, _, _ in SURNAMES])
_SURNAME_PY = pa.array([p for _, p, _ in SURNAMES])
_SURNAME_P = np.array([w for _, _, w in SURNAMES]) / sum(w for _, _, w in SURNAMES)
# index 0 is "no character", so a one-character given name is (character, 0)
_GIVEN_ZH = pa.array(["", *(c for c, _, _ in GIVEN)])
_GIVEN_PY_FIRST = pa.array(["", *(p.capitalize() for _, p, _ in GIVEN)])
# pinyin writes an apostrophe before a syllable starting with a, o or e inside a word (Jian'an)
_GIVEN_PY_SECOND = pa.array(["", *("'" + p if p[0] in "aoe" else p for _, p, _ in GIVEN)])


def _given_weights(sex: str) -> np.ndarray:
    lean = {"m": {"m": 1.0, "n": 0.6, "f": 0.0}, "f": {"f": 1.0, "n": 0.6, "m": 0.0}}[sex]
    w = np.array([0.0] + [lean[x] / (rank + GIVEN_RANK_OFFSET) for rank, (_, _, x) in enumerate(GIVEN)])
    return w / w.sum()


def _surnames(pop: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Surname indices: drawn for everyone, then each child takes their father's, generation by generation."""
    surname = rng.choice(len(SURNAMES), size=pop["male"].size, p=_SURNAME_P)
    source = pop["name_from"]
    has = source >= 0
    for _ in range(OLDEST // MIN_PARENT_AGE + 2):
        inherited = np.where(has, surname[np.maximum(source, 0)], surname)
        if np.array_equal(inherited, surname):
            break
        surname = inherited
    return surname


def _given_names(pop: dict[str, np.ndarray], rng: np.random.Generator, start_day: int) -> tuple[np.ndarray, ...]:
    n = pop["male"].size
    born = (np.datetime64(start_day, "D") - pop["age_days"].astype("timedelta64[D]")).astype("datetime64[Y]")
    two = rng.random(n) < _by_band(TWO_CHARACTERS, born.astype(np.int64) + 1970)
    first = np.zeros(n, np.int64)
    second = np.zeros(n, np.int64)
    for is_male, sex in ((True, "m"), (False, "f")):
        mine = np.flatnonzero(pop["male"] == is_male)
        p = _given_weights(sex)
        first[mine] = rng.choice(p.size, size=mine.size, p=p)
        second[mine] = rng.choice(p.size, size=mine.size, p=p)
    second[~two] = 0
    return first, second


def _names_zh(surname: np.ndarray, first: np.ndarray, second: np.ndarray) -> pa.Array:
    parts = (_SURNAME_ZH.take(surname), _GIVEN_ZH.take(first), _GIVEN_ZH.take(second))
    return pc.binary_join_element_wise(*parts, "")


def _names_latin(surname: np.ndarray, first: np.ndarray, second: np.ndarray) -> pa.Array:
    """Surname, space, given name in one word: Zhang Xiaoming, Ouyang Jian'an."""
    parts = (_SURNAME_PY.take(surname), pa.scalar(" "), _GIVEN_PY_FIRST.take(first), _GIVEN_PY_SECOND.take(second))
    return pc.binary_join_element_wise(*parts, "")


# --------------------------------------------------------------------------- resident IDs


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64: a fixed, well-spread hash of integers, so a group's sequence offset needs no stream."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _group_key(region: np.ndarray, birth_day: np.ndarray, male: np.ndarray) -> np.ndarray:
    """One integer per (region, birth date, sex): the people who compete for the same 500 sequences."""
    return (region.astype(np.int64) << 21 | (birth_day.astype(np.int64) + (1 << 19))) << 1 | male.astype(np.int64)


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm), for whole arrays."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _parse_reserved(reserved: Iterable[str] | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Group keys and sequence slots of resident IDs already in use.

    Only IDs that could equal a generated one matter: 18 characters, 17 digits, a real date.
    """
    if isinstance(reserved, pa.ChunkedArray):
        reserved = reserved.combine_chunks()
    text = reserved if isinstance(reserved, pa.Array) else pa.array(list(reserved), pa.string())
    text = pc.drop_null(text.cast(pa.string()))
    text = pc.filter(text, pc.equal(pc.binary_length(text), 18))
    if len(text) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    fixed = text.cast(pa.binary(18))
    raw = np.frombuffer(fixed.buffers()[1], np.uint8)[fixed.offset * 18 : (fixed.offset + len(fixed)) * 18]
    digits = raw.reshape(-1, 18)[:, :17].astype(np.int64) - ord("0")
    ok = ((digits >= 0) & (digits <= 9)).all(axis=1)
    digits = digits[ok]
    region = digits[:, :6] @ (10 ** np.arange(5, -1, -1))
    y = digits[:, 6:10] @ (10 ** np.arange(3, -1, -1))
    m = digits[:, 10:12] @ np.array([10, 1])
    d = digits[:, 12:14] @ np.array([10, 1])
    seq = digits[:, 14:17] @ np.array([100, 10, 1])
    day = _days_from_civil(y, m, d)
    dates = day.astype("datetime64[D]")
    real = (
        (m >= 1) & (m <= 12) & (d >= 1)
        & ((dates - dates.astype("datetime64[M]")).astype(np.int64) + 1 == d)
        & (dates.astype("datetime64[M]").astype(np.int64) % 12 + 1 == m)
    )  # fmt: skip
    return _group_key(region[real], day[real], seq[real] % 2 == 1), seq[real] // 2


def _resident_ids(
    region: np.ndarray,
    birth_day: np.ndarray,
    male: np.ndarray,
    seed: int,
    reserved: Iterable[str] | pa.Array | pa.ChunkedArray,
    stride: tuple[int, int] = (0, 1),
) -> pa.Array:
    """18-character IDs: region, birth date, a sequence unique per (region, date, sex), MOD 11-2 check.

    The sequence's last digit is odd for men and even for women. Within a group, people take the
    500 slots in row order starting at an offset hashed from the group and the seed (so IDs do not
    all end in 001), skipping slots already used by `reserved` IDs. With `stride` = (i, n) a group's
    j-th person takes rank j * n + i, so the n districts of one city share the slots without overlap.
    """
    n = region.size
    key = _group_key(region, birth_day, male)
    salt = np.uint64(int.from_bytes(hashlib.sha256(f"ids:{seed}".encode()).digest()[:8], "little"))
    order = np.argsort(key, kind="stable")
    k = key[order]
    start = np.r_[0, np.flatnonzero(k[1:] != k[:-1]) + 1]
    rank_sorted = np.arange(n) - np.repeat(start, np.diff(np.r_[start, n]))
    rank = np.empty(n, np.int64)
    rank[order] = rank_sorted
    offset = (_mix(key.astype(np.uint64) ^ salt) % np.uint64(SEQUENCES)).astype(np.int64)
    taken_key, taken_slot = _parse_reserved(reserved)
    if taken_key.size:
        taken_rank = taken_slot - (_mix(taken_key.astype(np.uint64) ^ salt) % np.uint64(SEQUENCES)).astype(np.int64)
        taken = np.unique(taken_key * 1024 + taken_rank % SEQUENCES)
        # the j-th newcomer of a group takes the j-th rank no reserved ID holds
        want = rank.copy()
        for _ in range(SEQUENCES + 1):
            below = np.searchsorted(taken, key * 1024 + want, side="right") - np.searchsorted(taken, key * 1024)
            moved = rank + below
            if np.array_equal(moved, want):
                break
            want = moved
        rank = want
    rank = rank * stride[1] + stride[0]
    if n and int(rank.max()) >= SEQUENCES:
        worst = int(np.argmax(rank))
        day = np.datetime64(int(birth_day[worst]), "D")
        raise LocatedError(
            f"region {int(region[worst]):06d}: more than {SEQUENCES} {'men' if male[worst] else 'women'} born on "
            f"{day}{f' (shared by {stride[1]} districts)' if stride[1] > 1 else ''}; a resident ID has room for "
            "no more (generate fewer citizens for this region)"
        )
    seq = 2 * ((rank + offset) % SEQUENCES) + male.astype(np.int64)
    dates = birth_day.astype("datetime64[D]")
    year = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    month = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    digits = np.empty((n, 18), np.int64)
    column = 0
    for value, width in ((region, 6), (year, 4), (month, 2), (day, 2), (seq, 3)):
        for power in range(width - 1, -1, -1):
            digits[:, column] = value // 10**power % 10
            column += 1
    check = (digits[:, :17] @ np.array(ids.WEIGHTS)) % 11
    text = digits.astype(np.uint8) + ord("0")
    text[:, 17] = np.frombuffer(ids.CHECK.encode("ascii"), np.uint8)[check]
    offsets = np.arange(0, 18 * (n + 1), 18, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(text).tobytes()))


# --------------------------------------------------------------------------- income and occupation


def _profiles(pop: dict[str, np.ndarray], order: list[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Income decile (0 for children, meaning none) and occupation code per citizen."""
    n = pop["male"].size
    years = pop["years"].astype(np.float64)
    adult = pop["age_days"] >= _ADULT_DAYS
    city_level = np.array([CITY_INCOME.get(c, 0.0) for c in order])[pop["index"]]
    latent = (
        -1.6 * ((years - 44.0) / 24.0) ** 2
        - 0.5 * (years >= 60)
        + city_level
        + HOUSEHOLD_INCOME_SHARE * pop["household_income"]
        + rng.normal(size=n)
    )
    decile = np.zeros(n, np.int8)
    grown = np.flatnonzero(adult)
    by_income = grown[np.argsort(latent[grown], kind="stable")]
    decile[by_income] = (1 + np.arange(grown.size) * 10 // max(grown.size, 1)).astype(np.int8)

    code = {name: i for i, name in enumerate(OCCUPATIONS)}
    occupation = np.full(n, code["child"], np.int8)
    occupation[~adult & (years >= 6)] = code["student"]
    u = rng.random(n)
    retire_at = np.where(pop["male"], RETIREMENT["M"], RETIREMENT["F"])
    retired = adult & (years >= retire_at) & (u < 0.85)
    student = adult & ~retired & (years <= 22) & (u < 0.5)
    working = adult & ~retired & ~student
    occupation[retired] = code["retired"]
    occupation[student] = code["student"]
    band = np.searchsorted(np.array([2, 5, 8]), decile, side="left")  # deciles 1–2, 3–5, 6–8, 9–10
    v = rng.random(n)
    for b, table in enumerate(OCCUPATION_BY_INCOME):
        mine = np.flatnonzero(working & (band == b))
        names = list(table)
        cum = np.cumsum([table[x] for x in names])
        pick = np.minimum(np.searchsorted(cum / cum[-1], v[mine], side="right"), len(names) - 1)
        occupation[mine] = np.array([code[x] for x in names], np.int8)[pick]
    return decile, occupation


# --------------------------------------------------------------------------- contacts


def _pair(stubs: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort stubs by key and pair neighbours (0–1, 2–3, …): who is near in key becomes a contact."""
    ordered = stubs[np.argsort(keys, kind="stable")]
    m = ordered.size // 2 * 2
    return ordered[0:m:2], ordered[1:m:2]


def _contacts(
    adults: np.ndarray, city: np.ndarray, years: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric contact pairs (a < b, unique, no self-loops) among `adults` (citizen indices, city layout order)."""
    m = adults.size
    if m < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    mu = np.log(CONTACTS_MEAN) - CONTACTS_SIGMA**2 / 2
    degree = np.maximum(1, np.rint(rng.lognormal(mu, CONTACTS_SIGMA, m))).astype(np.int64)
    owner = np.repeat(np.arange(m), degree)
    kind = rng.random(owner.size)
    long = kind < LONG_TIES
    peer = (kind >= LONG_TIES) & (kind < LONG_TIES + PEER_TIES)
    near = ~long & ~peer
    # position of each adult along its city's layout (households in row order)
    first_of_city = np.r_[0, np.flatnonzero(city[1:] != city[:-1]) + 1]
    position = np.arange(m) - np.repeat(first_of_city, np.diff(np.r_[first_of_city, m]))
    span = float(m) * 4 + 1024.0  # keeps each city's and each kind's keys apart
    o = owner[near]
    near_key = city[o] * 2 * span + position[o] + rng.laplace(0.0, NEIGHBOURHOOD, o.size)
    o = owner[peer]
    peer_key = (city[o] * 2 + 1) * span + years[o] * 8 + rng.normal(0.0, PEER_AGE_SD * 8, o.size)
    a1, b1 = _pair(np.r_[owner[near], owner[peer]], np.r_[near_key, peer_key])
    a2, b2 = _pair(owner[long], rng.random(int(long.sum())))
    a, b = np.r_[a1, a2], np.r_[b1, b2]
    a, b = adults[np.minimum(a, b)], adults[np.maximum(a, b)]
    keep = a != b
    pairs = np.sort(a[keep] << 32 | b[keep])  # sort and drop repeats: faster than np.unique's hashing here
    pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if pairs.size else pairs
    return pairs >> 32, pairs & 0xFFFFFFFF


def _relations(parent_pairs: np.ndarray, spouse: np.ndarray, a: np.ndarray, b: np.ndarray) -> pa.Table:
    """Every relation in both directions, sorted by (ckey, kind, other)."""
    child, parent = parent_pairs[:, 0], parent_pairs[:, 1]
    me = np.flatnonzero(spouse >= 0)
    ckey = np.concatenate([child, parent, me, a, b])
    other = np.concatenate([parent, child, spouse[me], b, a])
    kind = np.concatenate(
        [np.full(child.size, 0), np.full(child.size, 1), np.full(me.size, 2), np.full(a.size * 2, 3)]
    ).astype(np.uint64)
    packed = np.sort(ckey.astype(np.uint64) << np.uint64(33) | kind << np.uint64(31) | other.astype(np.uint64))
    return pa.table(
        [
            pa.array((packed >> np.uint64(33)).astype(np.int32)),
            pa.array((packed & np.uint64(0x7FFFFFFF)).astype(np.int32)),
            pa.DictionaryArray.from_arrays(
                pa.array((packed >> np.uint64(31) & np.uint64(3)).astype(np.int8)), pa.array(KINDS)
            ),
        ],
        schema=RELATION_SCHEMA,
    )
