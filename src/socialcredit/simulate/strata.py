"""Who did it: weighted draws of citizens in O(records), from strata of income decile × whole-year age.

Why: a month holds about one record per five citizens, so sweeping every citizen for each of the
catalog's behaviours (a rate per citizen, a cumulative sum, a search) made a month cost its
population forty times over. A citizen's rate of a behaviour is

    base rate × propensity(polarity, category) × f(age in whole years, income decile)

so citizens are sorted once per population by (income decile, birth day from youngest, position).
In that order every (decile, age) stratum is one contiguous run in any month, and one prefix sum
per propensity gives every stratum's propensity total at once. A month's draw of one behaviour is
then a Poisson count per stratum (mean: base × f(stratum) × the stratum's propensity total), and
for each record a uniform point in the stratum's span of the prefix sum, found by binary search.
That is exactly the model's independent Poisson count per citizen (a Poisson process split by
weights), in O(strata + records) per behaviour; only the month's ages cost one pass over the
population, for all behaviours together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAYS_PER_YEAR = 365.2425


@dataclass(frozen=True)
class Cells:
    """One month's strata: positions (in the strata's order) where each begins, and its age and decile."""

    starts: np.ndarray  # int64, one more than there are strata: stratum i is [starts[i], starts[i + 1])
    age: np.ndarray  # int64 whole years at the month's start, per stratum
    decile: np.ndarray  # float64 income decile per stratum (5.5 where none)

    def totals(self, prefix: np.ndarray) -> np.ndarray:
        """Per stratum, the sum of the weights whose prefix sum is `prefix`."""
        return np.asarray(prefix[self.starts[1:]] - prefix[self.starts[:-1]], np.float64)


@dataclass
class Strata:
    """A population sorted once into (decile, age) strata, with prefix sums of its propensities."""

    order: np.ndarray  # int64 citizen positions (in the source's order), sorted by decile, youngest first
    born: np.ndarray  # int64 birth day numbers, in `order`
    level: np.ndarray  # int64 index into `deciles`, in `order`
    deciles: np.ndarray  # float64 distinct decile values

    @classmethod
    def of(cls, born: np.ndarray, decile: np.ndarray) -> Strata:
        """`born`: birth day numbers; `decile`: income decile (5.5 where none), both in the source's order."""
        deciles, level = np.unique(np.asarray(decile, np.float64), return_inverse=True)
        level = level.astype(np.int64).reshape(-1)
        born = np.asarray(born, np.int64)
        order = np.lexsort((np.arange(born.size), -born, level))  # last key first: decile, youngest, position
        return cls(order=order, born=born[order], level=level[order], deciles=deciles)

    def prefix(self, weights: np.ndarray) -> np.ndarray:
        """The prefix sum of per-citizen `weights` (in the source's order) in the strata's order, after a 0."""
        return np.concatenate(([0.0], np.cumsum(np.asarray(weights, np.float64)[self.order])))

    def month(self, today: int) -> Cells:
        """The strata on day number `today`: ages in whole years, as `behaviour` computes them."""
        age = np.floor((today - self.born) / DAYS_PER_YEAR).astype(np.int64)
        if age.size == 0:
            return Cells(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
        low, span = int(age.min()), int(age.max() - age.min()) + 1
        cell = self.level * span + (age - low)  # non-decreasing: by decile, then youngest first
        count = len(self.deciles) * span
        starts = np.searchsorted(cell, np.arange(count + 1)).astype(np.int64)
        ages = np.tile(np.arange(low, low + span, dtype=np.int64), len(self.deciles))
        return Cells(starts, ages, np.repeat(self.deciles, span))

    def draw(self, cells: Cells, prefix: np.ndarray, mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Citizen positions (sorted, repeats allowed) for Poisson counts with per-stratum `mean`, each
        record falling on a citizen of its stratum in proportion to the weights of `prefix`."""
        counts = rng.poisson(np.maximum(mean, 0.0))
        k = int(counts.sum())
        if k == 0:
            return np.zeros(0, np.int64)
        cell = np.repeat(np.arange(counts.size), counts)
        lo, hi = cells.starts[cell], cells.starts[cell + 1]
        point = prefix[lo] + rng.random(k) * (prefix[hi] - prefix[lo])
        at = np.searchsorted(prefix, point, side="right") - 1
        at = np.clip(at, lo, hi - 1)  # a point on a span's very end belongs to its last citizen (float error)
        return np.sort(self.order[at])


__all__ = ["Cells", "Strata"]
