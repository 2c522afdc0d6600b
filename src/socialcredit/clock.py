"""Times at the doors: how a given time is read, and the bounds every time a user names must keep.

A question (a standing, an explanation, a decision, a public list "as of") is answered from what the
engine derived up to that time; a question far in the future would make the engine assess month after
month toward it while the service waits, so every time is checked against stated bounds before any
work starts, and refused with a message naming the field (a 422 over HTTP, exit 2 in the CLI):

- no time before `EARLIEST` (1950-01-01 CST): older times name no act any rulebook could score, and the
  extreme ones (year 1) overflow the conversion to UTC;
- a question no later than `QUESTION_HORIZON` (31 days) past the clock of whoever answers it — the
  service's clock, or the store's (its last engine run) — so a question costs at most the current and the
  next month's assessments;
- an engine run (`socialcredit score --as-of`) no later than `RUN_HORIZON` (ten years) past the store's
  clock or today, whichever is later: a projection, asked for explicitly, never by a reader;
- a rulebook version's impact preview no later than `PREVIEW_HORIZON` (a year) past the clock: it runs
  the engine up to the version's first day, twice, on a copy of the store.

Times are kept as naive UTC (the store's convention). A time named to the system — at the CLI, over
HTTP, on a page or through the Python library — means China Standard Time when it has no offset:
`to_utc` is the one place that rule lives. Code that hands a time it read from the store (naive UTC)
back to the library marks it first with `stored`, so it is not read as CST.
"""

from __future__ import annotations

import datetime as dt

from socialcredit.yamlio import LocatedError

CST_OFFSET = dt.timedelta(hours=8)  # China has no daylight saving time
CST = dt.timezone(CST_OFFSET)
EARLIEST = dt.datetime(1950, 1, 1, tzinfo=CST)
QUESTION_HORIZON = dt.timedelta(days=31)
RUN_HORIZON = dt.timedelta(days=3653)
PREVIEW_HORIZON = dt.timedelta(days=366)
_EARLIEST_UTC = EARLIEST.astimezone(dt.UTC).replace(tzinfo=None)


class TimeOutOfBounds(LocatedError):
    """A time a user named lies outside the bounds above; nothing was done."""


def shown(t: dt.datetime) -> str:
    """A naive UTC time as CST text, for messages."""
    return t.replace(tzinfo=dt.UTC).astimezone(CST).strftime("%Y-%m-%dT%H:%M") + "+08:00"


def to_utc(t: dt.datetime, field: str = "time") -> dt.datetime:
    """The naive UTC the store keeps for a time someone named: one with an offset is converted, one
    without is China Standard Time — the same `2025-06-02 09:00` in every door and in the library."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=CST)
    try:
        return t.astimezone(dt.UTC).replace(tzinfo=None)
    except OverflowError:
        raise TimeOutOfBounds(
            f"{field}: {t.isoformat()} is before {EARLIEST:%Y-%m-%d} (CST), the earliest time the system knows"
        ) from None


def stored(t: dt.datetime) -> dt.datetime:
    """A time read from the store (naive UTC) made explicit (aware UTC), for handing back to the library,
    which reads a naive time as CST."""
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t


def bounded(t: dt.datetime, field: str, clock: dt.datetime, horizon: dt.timedelta = QUESTION_HORIZON) -> dt.datetime:
    """`t` as naive UTC if it lies in [EARLIEST, clock + horizon]; else TimeOutOfBounds naming `field`.
    The clock is naive UTC, or aware (a door's clock may say its zone)."""
    u = to_utc(t, field)
    clock = utc_naive(clock)
    if u < _EARLIEST_UTC:
        raise TimeOutOfBounds(
            f"{field}: {t.isoformat()} is before {EARLIEST:%Y-%m-%d} (CST), the earliest time the system knows"
        )
    latest = clock + horizon
    if u > latest:
        raise TimeOutOfBounds(
            f"{field}: {t.isoformat()} is more than {horizon.days} days past the clock "
            f"({shown(clock)}); the latest time asked about may be {shown(latest)}"
        )
    return u


# --------------------------------------------------------------------------- the calendar (CST) over UTC storage


def utc_naive(t: dt.datetime | None) -> dt.datetime:
    """Naive UTC for an aware time, a naive one as is (already UTC), and now (whole seconds) for None."""
    if t is None:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    if t.tzinfo is None:
        return t
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def cst_midnight_utc(day: dt.date) -> dt.datetime:
    """A rule's date is a CST calendar date; the store keeps naive UTC."""
    return dt.datetime.combine(day, dt.time(), CST).astimezone(dt.UTC).replace(tzinfo=None)


def cst(t_utc: dt.datetime) -> dt.datetime:
    """A naive UTC time as an aware CST one (its calendar day, month and year)."""
    return t_utc.replace(tzinfo=dt.UTC).astimezone(CST)


def month_start_utc(t_utc: dt.datetime) -> dt.datetime:
    """The start of the CST month `t_utc` falls in, as naive UTC."""
    start = cst(t_utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(dt.UTC).replace(tzinfo=None)


def next_month_utc(t_utc: dt.datetime) -> dt.datetime:
    """The start of the CST month after the one `t_utc` falls in, as naive UTC."""
    local = cst(t_utc)
    y, m = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return dt.datetime(y, m, 1, tzinfo=CST).astimezone(dt.UTC).replace(tzinfo=None)


def cst_year_start(t_utc: dt.datetime) -> dt.datetime:
    """The start of the CST year `t_utc` falls in, as naive UTC."""
    return cst_midnight_utc(dt.date(cst(t_utc).year, 1, 1))
