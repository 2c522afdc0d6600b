"""Reference implementations the report's SQL is checked against: plain Python and numpy, written from the
textbook formulas, so a test compares two independent computations rather than a query with itself.

Kept in the tests, not the package: the report computes every number it shows in the SQL it prints (so a
reader can re-run it); these exist only to check that SQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Z95 = 1.959964


def katz_interval(a: int, n1: int, c: int, n0: int, z: float = Z95) -> tuple[float, float, float]:
    """Risk ratio (a/n1)/(c/n0) and its log (Katz) 95% interval: exp(ln RR ± z·√(1/a − 1/n1 + 1/c − 1/n0))."""
    rr = (a / n1) / (c / n0)
    se = math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n0)
    return rr, rr * math.exp(-z * se), rr * math.exp(z * se)


@dataclass
class Survival:
    """A Kaplan–Meier curve: at each distinct time, those at risk, events, censored, and S(t) just after."""

    times: npt.NDArray[np.int64]
    at_risk: npt.NDArray[np.int64]
    events: npt.NDArray[np.int64]
    censored: npt.NDArray[np.int64]
    survival: npt.NDArray[np.float64]
    greenwood: npt.NDArray[np.float64]  # Σ d / (n (n − d)) up to t: the variance of log S(t)


def kaplan_meier(durations: npt.ArrayLike, observed: npt.ArrayLike) -> Survival:
    """Product-limit estimate: S(t) = Π over event times t_i ≤ t of (1 − d_i / n_i), where n_i counts those whose
    time is ≥ t_i (a stay censored at t_i is still at risk at t_i, the usual convention)."""
    t = np.asarray(durations, dtype=np.int64)
    e = np.asarray(observed, dtype=bool)
    times, inverse = np.unique(t, return_inverse=True)
    events = np.bincount(inverse, weights=e, minlength=times.size).astype(np.int64)
    censored = np.bincount(inverse, weights=~e, minlength=times.size).astype(np.int64)
    at_risk = (events + censored)[::-1].cumsum()[::-1]
    survival = np.cumprod(1.0 - events / at_risk)
    with np.errstate(divide="ignore"):
        terms = np.where(at_risk > events, events / (at_risk * (at_risk - events)), 0.0)
    return Survival(times, at_risk, events, censored, survival, np.cumsum(terms))
