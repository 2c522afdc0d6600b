"""Calibrate the national court-defaulter scenario to the published 2013–2018 series, and report it.

Why a separate, fast model: a full run of `scenarios/china-defaulters.yaml` takes minutes, and a fit
needs thousands of evaluations. So the fit runs on an *aggregate* model that computes, month by
month, the expected counts of the very mechanics the simulator runs (the same listing weights per
citizen, the same two-year term for grounds 2–6, the same repayment rule, the same service attempts);
the final table always comes from an actual engine run of the scenario (`table RUN_DIR`), where
every blocked purchase is a denied decision in the run's store. The fast model's expectation is shown
beside it, so any gap between the two is visible.

The mechanics (each is what the run does, not an approximation made for the fit):

* Listings: court_defaulter_listing records of adult citizen i in month m are Poisson with mean
  `r · ramp(m) · w_i(m)` (+ a one-month backlog in October 2013, the first publication), where
  `w_i(m)` is the simulator's own weight (propensity × income gradient × adult) — summed over the
  population by `behaviour.weight_sums`, and `ramp` is logistic in time (midpoint, width).
* Terms: 40% of listings (SPC 2017 Art. 1 grounds 2–6, `behaviour.DEFAULTER_GROUNDS`) end after
  730 days; ground 1 has no term.
* Paying under pressure: a listed defaulter pays (and is delisted) each month with probability
  `repay_base`, plus `repay_when_sanctioned` if a purchase was denied them in the previous month
  (`incentives.respond`). Listed people try `air` flight and `hsr` high-speed-rail purchases a
  month (Poisson), each sent through `decide`; a purchase is blocked while the listing lasts.

What is fitted, and how (reproducible: `python -m socialcredit.simulate.calibrate fit SCENARIO`):

1. listing (4 parameters: full rate, ramp midpoint and width, first-month backlog) — least squares
   on log counts of the 7 published "people listed" figures, by Nelder–Mead (numpy; no SciPy here);
2. repayment (2 parameters: the monthly hazard h of paying, and the half-life over which it halves
   as a listing ages) — least squares on log counts of the 2 published "paid" figures, by
   Nelder–Mead. A constant hazard cannot fit both (20% of the first 75,500 paid within months, but
   only 3.2M of the ~9M listed in 2016–Sep 2018), hence the half-life: those who can pay, pay early.
   The data identify only h, not how much of it is pressure from denials: SANCTION_SHARE (a quarter)
   is an assumption, giving `repay_base = h·(1−s)` and `repay_when_sanctioned = h·s / P(denied)`;
3. attempts (2 parameters: flight and high-speed-rail purchases per listed person per month) —
   blocked counts are linear in the rate, so each has a closed-form log least-squares solution
   on its 3 published cumulative figures.

Interpretation of the published figures (research: realworld-facts.md §3): "people listed" is the
cumulative number of listings published; tickets "blocked" are purchases refused, counted as times
(not people); "paid" is cumulative delistings after paying (the March 2014 figure is 20% of the
75,500 listed by then; the 3.2M is for 2016 to September 2018). Each figure is compared with the
model as of the first day of the month after the one it describes (as of 1 Mar 2014 for a report of
4 Mar 2014). Counts are scaled up by 1.41 billion / the scenario's population.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from socialcredit.simulate.behaviour import DAYS_PER_MONTH, DEFAULTER_GROUNDS, DEFAULTER_TERM_DAYS, weight_sums
from socialcredit.simulate.scenario import Scenario, load_scenario

NATIONAL_POPULATION = 1_410_000_000
CODE = "court_defaulter_listing"
TERMED = 1.0 - DEFAULTER_GROUNDS[0]  # grounds 2–6 carry a fixed term
TERM_MONTHS = round(DEFAULTER_TERM_DAYS / DAYS_PER_MONTH)
SANCTION_SHARE = 0.25  # assumed share of the repayment hazard that comes from denials (not identified)
LIST_ID = "dishonest_judgment_defaulters"
SERIES = {
    "listed": "people listed (cumulative)",
    "air_blocked": "flight purchases blocked (cumulative)",
    "hsr_blocked": "high-speed-rail purchases blocked (cumulative)",
    "paid": "paid and delisted (cumulative)",
    "on_list": "on the list",
}


@dataclass(frozen=True)
class Target:
    """One published figure: the model's `series` as of `as_of` (counted from `since`, if given)."""

    as_of: dt.date
    series: str
    value: float
    reported: str
    source: str
    since: dt.date | None = None


TARGETS = (
    Target(dt.date(2013, 11, 1), "listed", 30_000, "24 Oct 2013: >30,000 in the first publication",
           "http://en.people.cn/90882/8436016.html"),
    Target(dt.date(2014, 3, 1), "listed", 75_500, "4 Mar 2014: ~75,500 names",
           "https://global.chinadaily.com.cn/china/2014-03/04/content_17319641.htm"),
    Target(dt.date(2014, 3, 1), "paid", 0.20 * 75_500, "4 Mar 2014: ~20% had complied and were removed",
           "https://global.chinadaily.com.cn/china/2014-03/04/content_17319641.htm"),
    Target(dt.date(2015, 1, 1), "listed", 700_000, "Dec 2014: >700,000 on the list",
           "http://www.chinadaily.com.cn/china/2015-07/22/content_21374948.htm"),
    Target(dt.date(2017, 7, 1), "listed", 7_490_000, "8 Jul 2017: 7.49M defaulters made public",
           "https://www.chinadaily.com.cn/a/201707/08/WS59bbe6eba310ded8ac18b2c9.html"),
    Target(dt.date(2017, 7, 1), "air_blocked", 7_280_000, "8 Jul 2017: 7.28M restricted from plane tickets",
           "https://www.chinadaily.com.cn/a/201707/08/WS59bbe6eba310ded8ac18b2c9.html"),
    Target(dt.date(2017, 7, 1), "hsr_blocked", 2_740_000, "8 Jul 2017: 2.74M from high-speed trains",
           "https://www.chinadaily.com.cn/a/201707/08/WS59bbe6eba310ded8ac18b2c9.html"),
    Target(dt.date(2018, 1, 1), "listed", 9_590_000, "end 2017: 9.59M blacklisted",
           "https://www.news24online.com/news/9600000-loan-chors-blacklisted-54"),
    Target(dt.date(2018, 1, 1), "air_blocked", 9_360_000, "end 2017: 9.36M flight trips blocked",
           "http://www.asdq11.com/a/201801/09/WS5a5487e9a31008cf16da60c6.html"),
    Target(dt.date(2018, 1, 1), "hsr_blocked", 3_670_000, "end 2017: 3.67M HSR trips blocked",
           "http://www.asdq11.com/a/201801/09/WS5a5487e9a31008cf16da60c6.html"),
    Target(dt.date(2018, 10, 1), "listed", 12_110_000, "Sep 2018: 12.11M blacklisted",
           "http://www.pressreader.com/china/shanghai-daily/20181025/281517932107108"),
    Target(dt.date(2018, 10, 1), "paid", 3_200_000, "2016 to Sep 2018: >3.2M forced to pay",
           "http://www.pressreader.com/china/shanghai-daily/20181025/281517932107108", since=dt.date(2016, 1, 1)),
    Target(dt.date(2019, 1, 1), "listed", 13_000_000, "end 2018: ~13M blacklisted (SPC white paper)",
           "https://archive.shine.cn/nation/Blacklist-for-defaulters/shdaily.shtml"),
    Target(dt.date(2019, 1, 1), "air_blocked", 17_500_000, "end 2018: ~17.5M plane tickets blocked",
           "https://archive.shine.cn/nation/Blacklist-for-defaulters/shdaily.shtml"),
    Target(dt.date(2019, 1, 1), "hsr_blocked", 5_470_000, "end 2018: 5.47M HSR tickets blocked",
           "https://archive.shine.cn/nation/Blacklist-for-defaulters/shdaily.shtml"),
)  # fmt: skip
PROJECTIONS = (dt.date(2020, 1, 1), dt.date(2021, 1, 1))  # end of 2019 and of 2020


# --------------------------------------------------------------------------- parameters and the fast model


@dataclass(frozen=True)
class Params:
    """The fitted numbers, in the units the scenario file uses."""

    listing_rate: float  # full monthly court_defaulter_listing rate per unit weight (≈ per adult)
    midpoint: dt.date  # when the listing rate reaches half of full
    width_months: float  # logistic width of the ramp
    backlog_rate: float  # extra listing rate in the first month (the first publication)
    repay: float  # monthly hazard of paying for a defaulter listed more than a month (at the start of a stay)
    halflife: float  # months for that hazard to halve as a stay ages
    air: float  # flight purchases tried per listed person per month
    hsr: float  # high-speed-rail purchases tried per listed person per month

    @property
    def denied_share(self) -> float:
        """P(a listed person who stays listed all month is denied at least one purchase)."""
        return 1.0 - math.exp(-(self.air + self.hsr))

    @property
    def repay_base(self) -> float:
        return self.repay * (1.0 - SANCTION_SHARE)

    @property
    def repay_when_sanctioned(self) -> float:
        return self.repay * SANCTION_SHARE / self.denied_share if self.denied_share > 0 else 0.0


def _months(start: dt.date, n: int) -> list[dt.date]:
    out = []
    y, m = start.year, start.month
    for _ in range(n):
        out.append(dt.date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _ramp(months: list[dt.date], midpoint: dt.date, width: float) -> np.ndarray:
    t = np.array([(m - midpoint).days / DAYS_PER_MONTH / width for m in months])
    return 1.0 / (1.0 + np.exp(-np.clip(t, -700, 700)))


def decay(k: np.ndarray, halflife: float) -> np.ndarray:
    """Mean of 2^(−age/halflife) over a cohort listed k months before (listing times uniform in the month)."""
    if halflife <= 0:
        return np.ones(np.shape(k))
    return np.exp2(-k / halflife) * (np.exp2(1.0 / halflife) - 1.0) * halflife / math.log(2.0)


def listings(p: Params, months: list[dt.date], weights: np.ndarray) -> np.ndarray:
    """Expected listings per month (the month's rate × the population's summed weights)."""
    lam = p.listing_rate * _ramp(months, p.midpoint, p.width_months)
    lam[0] += p.backlog_rate
    return lam * weights


def expected(p: Params, months: list[dt.date], weights: np.ndarray) -> dict[str, np.ndarray]:
    """Expected flows per month: listings, holders at the month's start, paid, expired, blocked purchases."""
    n = len(months)
    new = listings(p, months, weights)
    open_, termed = np.zeros(n), np.zeros(n)  # holders by month of listing, at the current month's start
    keys = ("listed", "on_list", "on_list_end", "paid", "expired", "air_blocked", "hsr_blocked")
    out = {k: np.zeros(n) for k in keys}
    for m in range(n):
        hazard = np.full(m, p.repay)
        if m:
            hazard[m - 1] = p.repay_base  # listed last month: not yet asked to buy, so not yet denied
        hazard = hazard * decay(m - np.arange(m), p.halflife)
        holders = float(open_[:m].sum() + termed[:m].sum())
        paid_open, paid_termed = open_[:m] * hazard, termed[:m] * hazard
        due = m - TERM_MONTHS
        expired = float(termed[due] - paid_termed[due]) if due >= 0 else 0.0
        paid = float(paid_open.sum() + paid_termed.sum())
        # attempts are spread over the month; those leaving the list leave, on average, half-way through
        exposed = holders - 0.5 * (paid + expired)
        out["on_list"][m], out["paid"][m], out["expired"][m] = holders, paid, expired
        out["air_blocked"][m], out["hsr_blocked"][m] = p.air * exposed, p.hsr * exposed
        open_[:m] -= paid_open
        termed[:m] -= paid_termed
        if due >= 0:
            termed[due] = 0.0
        out["listed"][m] = new[m]
        open_[m], termed[m] = (1 - TERMED) * new[m], TERMED * new[m]
        out["on_list_end"][m] = open_[: m + 1].sum() + termed[: m + 1].sum()
    return out


def cumulative(flows: dict[str, np.ndarray], months: list[dt.date], target: Target) -> float:
    """A target's model value from monthly flows: the sum over months before `as_of` (from `since`)."""
    if target.series == "on_list":  # a stock: holders at the end of the last month before `as_of`
        before = [i for i, m in enumerate(months) if m < target.as_of]
        return float(flows["on_list_end"][before[-1]]) if before else 0.0
    keep = np.array([(target.since is None or m >= target.since) and m < target.as_of for m in months])
    return float(flows[target.series][keep].sum())


# --------------------------------------------------------------------------- fitting


def nelder_mead(
    f: Callable[[np.ndarray], float], x0: np.ndarray, step: np.ndarray, iterations: int = 4000, tol: float = 1e-12
) -> np.ndarray:
    """Minimise `f` from `x0` (standard Nelder–Mead: reflect, expand, contract, shrink). Deterministic."""
    pts = [x0.astype(float)] + [x0 + np.eye(len(x0))[i] * step[i] for i in range(len(x0))]
    vals = [f(x) for x in pts]
    for _ in range(iterations):
        order = np.argsort(vals)
        pts, vals = [pts[i] for i in order], [vals[i] for i in order]
        if vals[-1] - vals[0] < tol:
            break
        centre = np.mean(pts[:-1], axis=0)
        reflected = centre + (centre - pts[-1])
        fr = f(reflected)
        if fr < vals[0]:
            expanded = centre + 2.0 * (centre - pts[-1])
            fe = f(expanded)
            pts[-1], vals[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = reflected, fr
        else:
            contracted = centre + 0.5 * (pts[-1] - centre)
            fc = f(contracted)
            if fc < vals[-1]:
                pts[-1], vals[-1] = contracted, fc
            else:
                pts = [pts[0] + 0.5 * (x - pts[0]) for x in pts]
                vals = [f(x) for x in pts]
    return pts[int(np.argmin(vals))]


def _sq_log_error(p: Params, months: list[dt.date], weights: np.ndarray, series: set[str], scale: float) -> float:
    flows = expected(p, months, weights)
    return sum(
        (math.log(max(cumulative(flows, months, t) * scale, 1e-9)) - math.log(t.value)) ** 2
        for t in TARGETS
        if t.series in series
    )


def fit(months: list[dt.date], weights: np.ndarray, scale: float) -> Params:
    """Fit the seven parameters in three stages (listing; repayment; attempts), as the module says."""
    start = months[0]
    adults = float(weights[0])

    def listing_params(x: np.ndarray) -> Params:
        return Params(
            listing_rate=math.exp(x[0]),
            midpoint=start + dt.timedelta(days=round(float(x[1]) * DAYS_PER_MONTH)),
            width_months=math.exp(x[2]),
            backlog_rate=math.exp(x[3]),
            repay=0.0,
            halflife=0.0,
            air=0.0,
            hsr=0.0,
        )

    def listing_error(x: np.ndarray) -> float:
        p = listing_params(x)
        cum = np.cumsum(listings(p, months, weights)) * scale
        return sum(
            (math.log(max(cum[months.index(t.as_of) - 1], 1e-9)) - math.log(t.value)) ** 2
            for t in TARGETS
            if t.series == "listed"
        )

    # start: 300k listings a month at full rate, half-way after two years, first publication as reported
    x0 = np.array([math.log(3e5 / scale / adults), 24.0, math.log(8.0), math.log(3e4 / scale / adults)])
    x = nelder_mead(listing_error, x0, np.array([0.5, 6.0, 0.5, 0.5]))
    x = nelder_mead(listing_error, x, np.array([0.1, 1.0, 0.1, 0.1]))  # a restart guards against early collapse
    p = listing_params(x)

    def with_repay(y: np.ndarray) -> Params:
        return Params(**{**asdict(p), "repay": math.exp(y[0]), "halflife": math.exp(y[1]), "air": 0.1, "hsr": 0.05})

    def repay_error(y: np.ndarray) -> float:
        if math.exp(y[0]) > 0.9:  # a monthly probability; the simulator caps it at 1
            return 1e6 + y[0]
        return _sq_log_error(with_repay(y), months, weights, {"paid"}, scale)

    y = nelder_mead(repay_error, np.array([math.log(0.05), math.log(12.0)]), np.array([0.5, 0.5]))
    p = with_repay(y)
    flows = expected(Params(**{**asdict(p), "air": 1.0, "hsr": 1.0}), months, weights)
    rates = {}
    for series in ("air_blocked", "hsr_blocked"):
        chosen = [t for t in TARGETS if t.series == series]
        logs = [math.log(t.value) - math.log(cumulative(flows, months, t) * scale) for t in chosen]
        rates[series] = math.exp(sum(logs) / len(logs))
    return Params(**{**asdict(p), "air": rates["air_blocked"], "hsr": rates["hsr_blocked"]})


def scenario_weights(scenario: Scenario) -> tuple[list[dt.date], np.ndarray, float]:
    """The scenario's months, its population's summed listing weights per month, and its scale factor."""
    from socialcredit.rulebook import parse_layer
    from socialcredit.simulate.population import generate_population, shipped_regions

    regions = shipped_regions() if scenario.shipped_rulebooks else {}
    for path in scenario.rulebooks:
        layer = parse_layer(Path(path).read_text(encoding="utf-8"), path)
        if layer.region_code:
            regions[layer.jurisdiction] = layer.region_code
    pop = generate_population(scenario.cities, scenario.seed, scenario.start, regions=regions)
    months = _months(scenario.start, scenario.months)
    rates = scenario.rates.model_copy(update={"ramps": {}, "backlog": {}})  # weights only, no time profile
    return months, weight_sums(pop, months, CODE, rates), NATIONAL_POPULATION / len(pop)


def params_of(scenario: Scenario) -> Params:
    """The calibrated parameters as the scenario file states them."""
    rates = scenario.rates
    ramp, backlog, inc = rates.ramps[CODE], rates.backlog[CODE], scenario.incentives
    if inc is None:
        raise ValueError(f"scenario {scenario.name} has no incentives, so no repayment to calibrate")
    air, hsr = scenario.services["air.ticket"].rate, scenario.services["rail.high_speed"].rate
    repay = inc.repay_base + inc.repay_when_sanctioned * (1.0 - math.exp(-(air + hsr)))
    return Params(
        rates.rate(CODE), ramp.midpoint, ramp.width_months, backlog.rate, repay, inc.repay_halflife_months, air, hsr
    )


def scenario_yaml(p: Params) -> str:
    """The scenario keys that carry the fitted parameters (rounded to 4 significant digits)."""

    def r(x: float) -> str:
        return f"{float(f'{x:.4g}'):g}"

    return (
        "rates:\n"
        "  only: [court_defaulter_listing]\n"
        f"  rates: {{court_defaulter_listing: {r(p.listing_rate)}}}\n"
        f"  ramps: {{court_defaulter_listing: {{midpoint: {p.midpoint}, width_months: {r(p.width_months)}}}}}\n"
        f"  backlog: {{court_defaulter_listing: {{month: {{start}}, rate: {r(p.backlog_rate)}}}}}\n"
        "services:\n"
        f"  air.ticket: {{rate: {r(p.air)}, for: listed}}\n"
        f"  rail.high_speed: {{rate: {r(p.hsr)}, for: listed}}\n"
        "incentives:\n"
        f"  repay_base: {r(p.repay_base)}\n"
        f"  repay_when_sanctioned: {r(p.repay_when_sanctioned)}\n"
        f"  repay_halflife_months: {r(p.halflife)}\n"
        "  settle_guarantee: 0\n"
        "  deterrence: 1.0\n"
    )


# --------------------------------------------------------------------------- a run, read back


@dataclass(frozen=True)
class RunSeries:
    """A run's monthly flows (unscaled), read from its Parquet files, in the fast model's shape."""

    months: list[dt.date]
    flows: dict[str, np.ndarray]
    citizens: int

    @property
    def scale(self) -> float:
        return NATIONAL_POPULATION / self.citizens


def read_run(run_dir: Path) -> RunSeries:
    """Monthly listings, holders, payments and blocked purchases of the court list from a run directory."""
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    lists = [r for r in pq.read_table(run_dir / "lists.parquet").to_pylist() if r["list_id"] == LIST_ID]
    months = sorted({r["month"] for r in lists})
    index = {m: i for i, m in enumerate(months)}
    keys = ("listed", "on_list", "on_list_end", "paid", "air_blocked", "hsr_blocked")
    flows = {k: np.zeros(len(months)) for k in keys}
    for r in lists:
        flows["listed"][index[r["month"]]] += r["entries"]
        flows["on_list_end"][index[r["month"]]] += r["on_list"]
        if index[r["month"]] + 1 < len(months):  # on the list at the end of m = at the start of m + 1
            flows["on_list"][index[r["month"]] + 1] += r["on_list"]
    for r in pq.read_table(run_dir / "responses.parquet").to_pylist():
        if r["behaviour"] == "court_defaulter_delisting" and r["month"] in index:
            flows["paid"][index[r["month"]]] += r["n"]
    for r in pq.read_table(run_dir / "decisions.parquet").to_pylist():
        key = {"air.ticket": "air_blocked", "rail.high_speed": "hsr_blocked"}.get(r["service"])
        if key and r["outcome"] == "deny" and r["month"] in index:
            flows[key][index[r["month"]]] += r["n"]
    return RunSeries(months, flows, int(meta["citizens"]))


def _value(series: RunSeries | tuple[list[dt.date], dict[str, np.ndarray]], target: Target) -> float | None:
    months, flows = (series.months, series.flows) if isinstance(series, RunSeries) else series
    if target.as_of > months[-1] + dt.timedelta(days=31):
        return None  # the run stops before this date
    return cumulative(flows, months, target)


def table_rows(run: RunSeries, p: Params | None = None, weights: np.ndarray | None = None) -> list[dict[str, object]]:
    """Published vs the engine run (scaled up), with the error, and the fast model's value if given."""
    fast = expected(p, run.months, weights) if p is not None and weights is not None else None
    rows = []
    for t in TARGETS:
        got = _value(run, t)
        row: dict[str, object] = {
            "as_of": t.as_of,
            "series": SERIES[t.series] + (f" since {t.since:%b %Y}" if t.since else ""),
            "reported": t.reported,
            "published": t.value,
            "run": None if got is None else got * run.scale,
            "error_pct": None if got is None else 100.0 * (got * run.scale - t.value) / t.value,
            "fast_model": None if fast is None else cumulative(fast, run.months, t) * run.scale,
            # one standard deviation of a Poisson count with the fast model's mean, scaled up: how far a
            # run of this size can land from the expectation by chance alone
            "noise": None if fast is None else math.sqrt(cumulative(fast, run.months, t)) * run.scale,
        }
        rows.append(row)
    return rows


def projection_rows(run: RunSeries) -> list[dict[str, object]]:
    """The run's 2019 and 2020 figures (scaled up), for dates past the calibration window."""
    out = []
    for as_of in PROJECTIONS:
        if as_of > run.months[-1] + dt.timedelta(days=31):
            continue
        row: dict[str, object] = {"as_of": as_of}
        year_start = dt.date(as_of.year - 1, 1, 1)
        for series in ("listed", "on_list", "paid", "air_blocked", "hsr_blocked"):
            t = Target(as_of, series, 0, "", "")
            row[series] = cumulative(run.flows, run.months, t) * run.scale
            if series != "on_list":
                row[series + "_in_year"] = (
                    cumulative(run.flows, run.months, Target(as_of, series, 0, "", "", since=year_start)) * run.scale
                )
        out.append(row)
    return out


# --------------------------------------------------------------------------- output


def _n(x: object) -> str:
    if x is None:
        return "—"
    v = float(x)  # type: ignore[arg-type]
    return f"{v / 1e6:,.2f}M" if abs(v) >= 1e6 else f"{v:,.0f}"


def markdown_table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| as of | series | published | engine run (scaled) | error | fast model (scaled) | ± chance (1 sd) "
        "| reported as |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        err = "—" if r["error_pct"] is None else f"{float(r['error_pct']):+.1f}%"  # type: ignore[arg-type]
        lines.append(
            f"| {r['as_of']} | {r['series']} | {_n(r['published'])} | {_n(r['run'])} | {err} | "
            f"{_n(r['fast_model'])} | {_n(r['noise'])} | {r['reported']} |"
        )
    return "\n".join(lines)


def markdown_projection(rows: list[dict[str, object]]) -> str:
    lines = [
        "| as of | people listed (cum.) | listed that year | on the list | paid (cum.) | paid that year | "
        "flights blocked (cum.) | that year | HSR blocked (cum.) | that year |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['as_of']} | {_n(r['listed'])} | {_n(r['listed_in_year'])} | {_n(r['on_list'])} | {_n(r['paid'])} | "
            f"{_n(r['paid_in_year'])} | {_n(r['air_blocked'])} | {_n(r['air_blocked_in_year'])} | "
            f"{_n(r['hsr_blocked'])} | {_n(r['hsr_blocked_in_year'])} |"
        )
    return "\n".join(lines)


def rms_log_error(rows: list[dict[str, object]], column: str = "run") -> tuple[float, int]:
    """Root-mean-square log error over the figures the column has a positive value for, and their number."""
    errs = [math.log(float(r[column]) / float(r["published"])) for r in rows if r[column]]  # type: ignore[arg-type]
    return (math.sqrt(sum(e * e for e in errs) / len(errs)) if errs else float("nan")), len(errs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m socialcredit.simulate.calibrate", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="fit the parameters on the fast model; print them as scenario YAML")
    f.add_argument("scenario", type=Path)
    t = sub.add_parser("table", help="model vs published, and the 2019–2020 projection, from a run directory")
    t.add_argument("run_dir", type=Path)
    args = ap.parse_args(argv)
    if args.command == "fit":
        scenario = load_scenario(args.scenario)
        months, weights, scale = scenario_weights(scenario)
        p = fit(months, weights, scale)
        print(f"# fitted on {scenario.name}: {len(months)} months, 1:{scale:,.0f} of {NATIONAL_POPULATION:,}")
        print(f"# repayment hazard after the first month: {p.repay:.4g}/month; P(denied | listed all month) "
              f"{p.denied_share:.3f}")  # fmt: skip
        print(scenario_yaml(p).replace("{start}", str(scenario.start)), end="")
        return 0
    run = read_run(args.run_dir)
    scenario = load_scenario(args.run_dir / "scenario.yaml")
    p = params_of(scenario)
    months, weights, _ = scenario_weights(scenario)
    rows = table_rows(run, p, weights[: len(run.months)])
    print(f"{scenario.name}: {run.citizens:,} citizens = 1:{run.scale:,.0f} of {NATIONAL_POPULATION:,}; "
          f"counts scaled up by {run.scale:,.0f}")  # fmt: skip
    print()
    print(markdown_table(rows))
    print()
    for column, label in (("run", "engine run"), ("fast_model", "fast model")):
        rms, n = rms_log_error(rows, column)
        left = sum(1 for r in rows if r[column] is not None) - n
        print(f"root-mean-square log error, {label}: {rms:.3f} over {n} figures" + (f" ({left} at zero left out)"
              if left else ""))  # fmt: skip
    print()
    print("Projection, engine run (scaled):")
    print()
    print(markdown_projection(projection_rows(run)))
    print()
    print("Projection, fast model (the expectation the run scatters around):")
    print()
    fast = RunSeries(run.months, expected(p, run.months, weights[: len(run.months)]), run.citizens)
    print(markdown_projection(projection_rows(fast)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
