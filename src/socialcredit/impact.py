"""Impact preview: what a rulebook version would change before anyone schedules it.

Why a copy: the preview must change nothing. The store is checkpointed and copied to a scratch file;
there the engine runs once as things stand and once with the candidate version added, both as of the same
moment (the later of now and the version's first day), and the two sets of standings are compared. It is
the one scoring path twice, never an estimate.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from socialcredit import standings
from socialcredit.catalog import Catalog
from socialcredit.clock import PREVIEW_HORIZON, cst, cst_midnight_utc, stored
from socialcredit.engine import Engine, utc_naive
from socialcredit.engine.sql import fill
from socialcredit.rulebook import Layer, parse_layer
from socialcredit.store import Store
from socialcredit.yamlio import LocatedError

SAMPLE = 20


def _snapshot(store: Store, at: dt.datetime) -> dict[int, tuple[int | None, str | None, tuple[str, ...]]]:
    """ckey → (score, grade, lists on at `at`) after the engine ran as of `at`."""
    rows = store.con.execute(
        fill(
            """WITH l AS (SELECT ckey, list(DISTINCT list_id ORDER BY list_id) AS lists FROM __on AS e GROUP BY ckey)
           SELECT c.ckey, g.score, g.grade, coalesce(l.lists, []) FROM citizens AS c
           LEFT JOIN __g AS g ON g.ckey = c.ckey LEFT JOIN l ON l.ckey = c.ckey""",
            g=standings.latest_assessments(at),
            on=standings.stays_at(at),
        ).sql(standings.DIALECT)
    ).fetchall()
    return {ckey: (score, grade, tuple(lists)) for ckey, score, grade, lists in rows}


@dataclass
class PreviewCopy:
    """A candidate version and a scratch copy of the store to try it on; `run` may happen without the store."""

    text: str
    origin: str
    layer: Layer
    at: dt.datetime
    catalog: Catalog
    directory: tempfile.TemporaryDirectory[str]

    @property
    def path(self) -> Path:
        return Path(self.directory.name) / "preview.duckdb"


def copy_for_preview(store: Store, text: str, origin: str = "upload", now: dt.datetime | None = None) -> PreviewCopy:
    """Validate `text` and copy the store: the only part of a preview that needs the store itself (a
    service holds its lock for this copy alone, not for the two engine runs on it)."""
    layer = store.check_rulebook(text, origin)  # located errors (a stored version too) surface before any copying
    first_day = cst_midnight_utc(layer.effective_from)
    clock = utc_naive(now)
    if first_day > clock + PREVIEW_HORIZON:
        raise LocatedError(
            f"{origin}: effective_from {layer.effective_from} is more than {PREVIEW_HORIZON.days} days "
            "ahead; a preview runs the engine up to that day"
        )
    job = PreviewCopy(
        text, origin, layer, max(clock, first_day), store.catalog, tempfile.TemporaryDirectory(prefix="impact-")
    )
    store.copy_file(job.path)  # checkpointed; not shutil.copyfile: closing a second descriptor would drop the lock
    return job


def preview(store: Store, text: str, origin: str = "upload", now: dt.datetime | None = None) -> dict[str, Any]:
    """Validate `text` as a new rulebook version and report who would change grade or list, by city."""
    return run_preview(copy_for_preview(store, text, origin, now))


def run_preview(job: PreviewCopy) -> dict[str, Any]:
    """Score the copy as things stand and with the candidate added, both as of the same moment; compare."""
    layer, at, text, origin = job.layer, job.at, job.text, job.origin
    with job.directory:
        scratch = Store(job.path, catalog=job.catalog)
        try:
            Engine(scratch).run(as_of=stored(at))
            before = _snapshot(scratch, at)
            scratch.add_rulebook(text, origin)
            Engine(scratch).run(as_of=stored(at))
            after = _snapshot(scratch, at)
            people = {
                ckey: (cid, name, city)
                for ckey, cid, name, city in scratch.con.execute(
                    "SELECT ckey, citizen_id, name, city FROM citizens"
                ).fetchall()
            }
        finally:
            scratch.close()
    by_city: dict[str, dict[str, Any]] = {}
    sample: list[dict[str, Any]] = []
    for ckey, (cid, name, city) in sorted(people.items()):
        b, a = before.get(ckey, (None, None, ())), after.get(ckey, (None, None, ()))
        row = by_city.setdefault(
            city, {"city": city, "citizens": 0, "grade_changed": 0, "list_changed": 0, "score_changed": 0}
        )
        row["citizens"] += 1
        row["score_changed"] += b[0] != a[0]
        row["grade_changed"] += b[1] != a[1]
        row["list_changed"] += b[2] != a[2]
        if (b[1] != a[1] or b[2] != a[2]) and len(sample) < SAMPLE:
            sample.append(
                {
                    "citizen_id": cid,
                    "name": name,
                    "city": city,
                    "before": {"score": b[0], "grade": b[1], "lists": list(b[2])},
                    "after": {"score": a[0], "grade": a[1], "lists": list(a[2])},
                }
            )
    return {
        "version": layer.key,  # the version previewed, not the jurisdiction's latest-dated one
        "effective_from": layer.effective_from.isoformat(),
        "as_of": at.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z"),
        "by_city": sorted(by_city.values(), key=lambda r: r["city"]),
        "sample": sample,
    }


def schedule(store: Store, text: str, origin: str, now: dt.datetime | None = None, backdate: bool = False) -> Layer:
    """Load a version after checking that it does not reach into the past.

    A version whose `effective_from` lies before today (CST) would rescore records that happened under
    the old rules — the retroactive change versioning exists to prevent — so it needs `backdate=True`.
    """
    layer = parse_layer(text, origin)
    today = cst(utc_naive(now)).date()
    if layer.effective_from < today and not backdate:
        raise LocatedError(
            f"{origin}: effective_from {layer.effective_from} is before today ({today}); records of the past would "
            "be rescored under it — choose a later date, or backdate explicitly"
        )
    return store.add_rulebook(text, origin)


__all__ = ["PreviewCopy", "copy_for_preview", "preview", "run_preview", "schedule"]
