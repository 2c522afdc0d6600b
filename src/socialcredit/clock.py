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

Times are kept as naive UTC (the store's convention); a time without an offset means China Standard
Time at every door.
"""

from __future__ import annotations

import datetime as dt

from socialcredit.yamlio import LocatedError

CST = dt.timezone(dt.timedelta(hours=8))
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
    """Naive UTC for an aware time (or a naive one already in UTC, the store's convention)."""
    if t.tzinfo is None:
        return t
    try:
        return t.astimezone(dt.UTC).replace(tzinfo=None)
    except OverflowError:
        raise TimeOutOfBounds(f"{field}: {t.isoformat()} is before {EARLIEST:%Y-%m-%d} (CST), the earliest time "
                              "the system knows") from None


def bounded(t: dt.datetime, field: str, clock: dt.datetime, horizon: dt.timedelta = QUESTION_HORIZON) -> dt.datetime:
    """`t` as naive UTC if it lies in [EARLIEST, clock + horizon]; else TimeOutOfBounds naming `field`."""
    u = to_utc(t, field)
    if u < _EARLIEST_UTC:
        raise TimeOutOfBounds(f"{field}: {t.isoformat()} is before {EARLIEST:%Y-%m-%d} (CST), the earliest time "
                              "the system knows")
    latest = clock + horizon
    if u > latest:
        raise TimeOutOfBounds(f"{field}: {t.isoformat()} is more than {horizon.days} days past the clock "
                              f"({shown(clock)}); the latest time asked about may be {shown(latest)}")
    return u
