"""Explanations: why a citizen stands where they do, down to each record, rule and cap (`explain`).

It reads what a standing reads (`decisions.standing`) and then the ledger entries in force behind the
score: each with the rules that gave its points, the record or characteristic it comes from, and the cap
that cut it, if any. Every door shows this mapping (the CLI's `explain`, the API, the citizen's page).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

import pyarrow as pa
from sqlglot import exp

from socialcredit import frames, standings
from socialcredit.decisions import CLOCKS, decider, jsonable, on_ledger, standing
from socialcredit.rulebook import Rulebook
from socialcredit.standings import rulebook_at
from socialcredit.store import Store


class Explanation(dict[str, Any], frames.Tabular):
    """What `explain` answers: the JSON-ready mapping every door shows (score → ledger entries → records and
    rules; list entries → cause; measures → list), also readable as a table of its ledger entries."""

    def ledger_rows(self) -> list[dict[str, Any]]:
        """One row per ledger entry in force: its points, where they come from, and the rules that gave them."""
        rows = []
        for e in self["ledger"]:
            r = e.get("record") or e.get("set_by_record") or {}
            rows.append({
                "points": e["points"], "source": e["source"], "behaviour": r.get("behaviour"),
                "characteristic": e.get("characteristic"), "record_id": r.get("record_id"), "agency": r.get("agency"),
                "rule_ids": [x["id"] for x in e["rules"]], "rule_points": [x["points"] for x in e["rules"]],
                "capped_by": (e.get("cap") or {}).get("id"),
                "valid_from": _from_iso(e["valid_from"]), "valid_to": _from_iso(e["valid_to"]),
                "rulebook_version": e["rulebook_version"],
            })  # fmt: skip
        return rows

    def to_arrow(self) -> pa.Table:
        return frames.table(self.ledger_rows(), LEDGER_COLUMNS)

    def _repr_html_(self) -> str:
        s = self["score"]
        head = frames.fields_html(
            f"{self['name']} {self['citizen_id']}",
            [
                ("city", self["city"]),
                ("as of (CST)", self["as_of"]),
                ("whose time", CLOCKS.get(self["clock"], self["clock"])),
                ("rulebook", self["rulebook_version"]),
                ("score", f"{s['value']} = clamp(base {s['base']} + {s['sum_of_entries']}) → grade {s['grade']}"),
            ],
        )
        return (
            head
            + frames.html_table(self.ledger_rows(), LEDGER_COLUMNS, "ledger entries in force")
            + frames.html_table(
                self["list_entries"],
                ["list_id", "start", "cause", "record_id", "behaviour", "characteristic", "grade"],
                "list entries",
            )
            + frames.html_table(self["measures"], ["measure", "effect", "via", "until"], "measures")
        )


LEDGER_COLUMNS = [
    "points",
    "source",
    "behaviour",
    "characteristic",
    "record_id",
    "agency",
    "rule_ids",
    "rule_points",
    "capped_by",
    "valid_from",
    "valid_to",
    "rulebook_version",
]


def _from_iso(iso: str | None) -> dt.datetime | None:
    return None if iso is None else dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))


_EXPLAIN = """SELECT l.source, l.points, l.valid_from, l.valid_to, p.rule_ids, p.rule_points, p.points, s.version,
                  r.record_id, r.agency, b.code, r.occurred_at, l.characteristic, l.rkey
           FROM ledger l JOIN pieces p USING (piece) LEFT JOIN segments s ON s.jkey = l.jkey AND s.epoch = l.epoch
           LEFT JOIN records r ON r.rkey = l.rkey LEFT JOIN behaviours b ON b.bkey = coalesce(l.bkey, r.bkey)
           WHERE l.ckey = ? AND l.valid_from <= ? AND (l.valid_to IS NULL OR l.valid_to > ?)
           ORDER BY l.valid_from, l.rkey"""


def explain(store: Store, citizen_id: str, as_of: dt.datetime | None = None) -> Explanation:
    """Score → ledger entries → records and rules; list entries → their cause; measures → their list."""
    st = standing(store, citizen_id, as_of)
    ckey = store.ckey(citizen_id)
    at = st.as_of
    rows = store.con.execute(
        on_ledger(_EXPLAIN, standings.ledger_table(store)),
        [ckey, at, at],
    ).fetchall()
    rbs = store.rulebooks()
    entries = []
    for (
        source,
        points,
        vf,
        vt,
        rule_ids,
        rule_points,
        uncapped,
        version,
        record_id,
        agency,
        behaviour,
        occurred,
        characteristic,
        rkey,
    ) in rows:
        rules = []
        rb = None
        if version:
            city, pin = rbs.parse_version(version)
            rb = rbs.resolve(city, None, pin)
        for rid, pts in zip(rule_ids, rule_points, strict=True):
            rule = next((r for r in rb.rules if r.id == rid), None) if rb else None
            rules.append(
                {
                    "id": rid,
                    "points": pts,
                    "when": rule.when if rule else None,
                    "label": rule.label if rule else None,
                    "source": rule.source if rule else None,
                }
            )
        item: dict[str, Any] = {
            "source": source,
            "points": points,
            "valid_from": vf,
            "valid_to": vt,
            "rulebook_version": version,
            "rules": rules,
        }
        if source == "record" and points != uncapped and (cap := _cap(rb, behaviour, uncapped)) is not None:
            item["cap"] = cap
        if source == "record":
            item["record"] = {
                "record_id": record_id,
                "agency": agency,
                "behaviour": behaviour,
                "occurred_at": occurred,
                "attributes": _attributes(store, rkey, behaviour),
            }
        else:
            item["characteristic"] = characteristic
            if record_id:
                item["set_by_record"] = {"record_id": record_id, "agency": agency, "behaviour": behaviour}
        entries.append(item)
    rb_now = rulebook_at(store, st.city, at)
    rb_asked = decider(store).rulebook(st.city, at)  # the version the standing was read under (a replay's pin)
    running = st.running_score
    return Explanation(
        jsonable(
            {
                "citizen_id": st.citizen_id,
                "name": st.name,
                "city": st.city,
                "as_of": at,
                "clock": st.clock,
                "rulebook_version": st.rulebook_version,
                "score": {
                    # the running score the entries below add up to; the published one is the last assessment's
                    "value": running,
                    "grade": rb_asked.grade_of(running) if rb_asked and running is not None else None,
                    "published": st.score,
                    "published_grade": st.grade,
                    "assessed_at": st.assessed_at,
                    "base": rb_now.scale.base if rb_now else None,
                    "scale": [rb_now.scale.min, rb_now.scale.max] if rb_now else None,
                    "sum_of_entries": sum(e["points"] for e in entries),
                },
                "ledger": entries,
                "list_entries": st.list_entries,
                "measures": [asdict(m) for m in st.measures],
            }
        )
    )


def _attributes(store: Store, rkey: int | None, behaviour: str | None) -> dict[str, Any]:
    if rkey is None or behaviour is None:
        return {}
    names = store.catalog.behaviours[behaviour].attributes
    if not names:
        return {}
    query = exp.select(*[exp.column(n, quoted=True) for n in names]).from_("records").where("rkey = ?")
    row = store.con.execute(query.sql("duckdb"), [rkey]).fetchall()[0]
    return {n: v for n, v in zip(names, row, strict=True) if v is not None}


def _cap(rb: Rulebook | None, behaviour: str | None, uncapped: int) -> dict[str, Any] | None:
    """The cap that took points from a record's entry: the one on its behaviour in the rulebook of the entry's
    time (the ledger's running sum per cap period is the only thing that makes an entry's points differ from
    its rules' sum), with the points the rules gave before it."""
    cap = next((c for c in rb.caps if c.behaviour == behaviour), None) if rb else None
    if cap is None:
        return None
    return {"id": cap.id, "per": cap.per, "max": cap.max, "min": cap.min, "points_before_cap": uncapped}
