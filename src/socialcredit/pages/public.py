"""The public pages: dashboard, register, blacklist billboards and train-station monitors (SPEC §3 item 6).

What the public sees is decided by each city's rulebook in force today, never by the page: scores only
where `disclosure.publish_scores`, billboards only where `billboard`, monitors only where
`station_monitor`, and never a list marked `public: false`. Published or not, showing citizens' data is
a read of it, so a search, a billboard and each monitor refresh append one audit entry (who looked, which
city or query, how many were shown), as the API's public routes do; the dashboard shows only counts.

Faces on boards are embedded as inline SVG rather than linked by resident ID, so a public board never
puts a full resident ID in a URL while it prints the ID masked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from socialcredit import standings
from socialcredit.api.service import Service
from socialcredit.avatar import avatar_svg
from socialcredit.pages import queries
from socialcredit.pages.render import HEADERS, cst, fresh, get_service, masked, message, now, render, viewer
from socialcredit.rulebook import Rulebook

router = APIRouter()
BOARD_LIMIT = 300  # a billboard shows the newest stays first; the rest are counted, not drawn
OUTCOMES = ("deny", "throttle", "deprioritise", "allow", "priority", "discount", "waive_deposit")


def rulebook_today(svc: Service, city: str, at: dt.datetime) -> Rulebook | None:
    """The city's rulebook in force on today's CST date, as the service's decider (and so the HTTP API) reads it;
    None for an unknown city."""
    if city not in svc.store.rulebooks().cities:
        return None
    return svc.decider.rulebook(city, at)


def age(born: dt.date, at: dt.datetime) -> int:
    return at.year - born.year - ((at.month, at.day) < (born.month, born.day))


def reason(svc: Service, rb: Rulebook, row: dict[str, Any]) -> str:
    """Why someone is on a list, in words: the list's label and what put them there."""
    cat = svc.store.catalog
    label = next((x.label for x in rb.lists if x.id == row["list_id"]), row["list_id"])
    if row["cause"] == "grade":
        why = f"grade {row['grade']} at a monthly assessment"
    elif row["characteristic"]:
        ch = cat.characteristics.get(row["characteristic"])
        why = ch.label if ch else row["characteristic"]
    elif row["behaviour"]:
        b = cat.behaviours.get(row["behaviour"])
        why = b.label if b else row["behaviour"]
    else:
        why = row["cause"] or ""
    return f"{label}: {why}" if why else label


def board(svc: Service, city: str, rb: Rulebook, at: dt.datetime) -> tuple[list[dict[str, Any]], int]:
    """The city's blacklisted citizens (public lists only) with every reason and the labels of the lists
    they are on (in the rulebook's order), newest stay first, at most `BOARD_LIMIT` of them with their faces
    drawn; and how many there are in all."""
    public = standings.public_lists(rb, "blacklist")
    labels = {x.id: x.label for x in rb.lists}
    people: dict[str, dict[str, Any]] = {}
    for row in standings.board(svc.store, city, rb, "blacklist", at):
        p = people.get(row["citizen_id"])
        if p is None:
            p = people[row["citizen_id"]] = {
                "id": masked(row["citizen_id"]),
                "name": row["name"],
                "name_latin": row["name_latin"],
                "since": row["start"],
                "reasons": [],
                "lists": [],
                "face": (row["avatar_seed"], row["sex"], age(row["birth_date"], at)),
            }
        p["since"] = min(p["since"], row["start"])
        text = reason(svc, rb, row)
        if text not in p["reasons"]:
            p["reasons"].append(text)
        if row["list_id"] not in p["lists"]:
            p["lists"].append(row["list_id"])
    shown = list(people.values())[:BOARD_LIMIT]
    for p in shown:
        p["avatar"] = avatar_svg(*p.pop("face"))
        p["lists"] = [labels[i] for i in public if i in p["lists"]]
    return shown, len(people)


def summary(
    city: str,
    population: int,
    rb: Rulebook | None,
    grades: dict[str, int],
    lists: list[dict[str, Any]],
    asked: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """One city's panel on the dashboard: grades in the rulebook's order, lists with their labels, decisions."""
    order = [g.grade for g in rb.grades] if rb else sorted(grades)
    assessed = sum(grades.values())
    defs = {x.id: x for x in rb.lists} if rb else {}
    seen = {o for outcomes in asked.values() for o in outcomes}
    return {
        "city": city,
        "name": rb.name if rb else city,
        "version": rb.version if rb else None,
        "disclosure": rb.disclosure if rb else None,
        "population": population,
        "assessed": assessed,
        "grades": [(g, grades.get(g, 0), 100 * grades.get(g, 0) / assessed if assessed else 0) for g in order],
        "lists": [
            {
                **x,
                "label": defs[x["list_id"]].label if x["list_id"] in defs else x["list_id"],
                "public": defs[x["list_id"]].public if x["list_id"] in defs else False,
            }
            for x in lists
        ],
        "outcomes": sorted(seen, key=lambda o: OUTCOMES.index(o) if o in OUTCOMES else len(OUTCOMES)),
        "services": asked,
    }


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def dashboard(request: Request) -> HTMLResponse:
    svc: Service = get_service(request)
    at = now(request)
    with svc.lock:
        fresh(svc, at)
        pop = queries.population(svc.store)
        grades = queries.grade_counts(svc.store, at)
        lists = queries.list_counts(svc.store, at)
        asked = queries.decision_counts(svc.store)
        on_blacklist = queries.blacklisted_citizens(svc.store, at)
        books = {city: rulebook_today(svc, city, at) for city in pop}
    cities: list[dict[str, Any]] = [
        summary(city, n, books[city], grades.get(city, {}), lists.get(city, []), asked.get(city, {}))
        for city, n in pop.items()
    ]
    total = {
        "population": sum(pop.values()),
        "blacklisted": on_blacklist,
        "decisions": sum(n for c in cities for s in c["services"].values() for n in s.values()),
    }
    services = svc.store.catalog.services
    return render(request, "dashboard.html", cities=cities, total=total, at=at, services=services)


@router.get("/register", response_class=HTMLResponse, include_in_schema=False)
def register(request: Request, q: str = "") -> HTMLResponse:
    svc: Service = get_service(request)
    at = now(request)
    q = q.strip()[:64]
    results: list[dict[str, Any]] = []
    if q:
        with svc.lock:
            fresh(svc, at)
            found = standings.register(svc.store, q, at, svc.decider.rulebook, limit=51)
            svc.audit.append(
                viewer_name(request), "page.register", None, q=q, shown=[r.citizen["citizen_id"] for r in found[:50]]
            )
        for r in found[:50]:
            results.append(
                {
                    **r.citizen,
                    "id": masked(r.citizen["citizen_id"]),
                    "city_name": r.rulebook.name if r.rulebook else r.citizen["city"],
                    "published": r.published,
                    "assessment": r.assessment,
                }
            )
        more = len(found) > 50
    else:
        more = False
    return render(request, "register.html", q=q, results=results, more=more, at=at)


@router.get("/blacklist/{city}", response_class=HTMLResponse, include_in_schema=False)
def billboard(request: Request, city: str) -> HTMLResponse:
    svc: Service = get_service(request)
    at = now(request)
    with svc.lock:
        rb = rulebook_today(svc, city, at)
        if rb is None:
            return message(request, "No such city", f"There is no city {city!r} in this system.", status=404)
        if not standings.publishes(rb, "billboard"):
            return message(
                request,
                f"{rb.name} does not publish a blacklist billboard",
                f"The rulebook in force in {rb.name} ({rb.version}) does not publish blacklisted "
                "citizens on billboards (its disclosure policy has no billboard).",
                title_class="not-published",
            )
        fresh(svc, at)
        shown, total = board(svc, city, rb, at)
        svc.audit.append(viewer_name(request), "page.blacklist", None, city=city, shown=len(shown))
    return render(request, "billboard.html", rb=rb, city=city, people=shown, hidden=total - len(shown), at=at)


def _station_data(request: Request, city: str, at: dt.datetime) -> tuple[Rulebook | None, list[dict[str, Any]]]:
    svc: Service = get_service(request)
    with svc.lock:
        rb = rulebook_today(svc, city, at)
        if rb is None or not standings.publishes(rb, "station_monitor"):
            return rb, []
        fresh(svc, at)
        people, _ = board(svc, city, rb, at)
        svc.audit.append(viewer_name(request), "page.station", None, city=city, shown=len(people))
    # a monitor shows one list after another, each slide titled by the lists its person is on
    order = [x.label for x in rb.lists]
    people.sort(key=lambda p: [order.index(label) for label in p["lists"]])
    return rb, people


def viewer_name(request: Request) -> str:
    who = viewer(request)
    return who.name if who else "public (unknown key)"


@router.get("/station/{city}.json", include_in_schema=False)
def station_feed(request: Request, city: str) -> JSONResponse:
    """The monitor's live feed; refused (404) wherever the page itself would not be shown."""
    at = now(request)
    rb, people = _station_data(request, city, at)
    if rb is None or not standings.publishes(rb, "station_monitor"):
        return JSONResponse({"error": f"{city} does not publish a station monitor"}, status_code=404, headers=HEADERS)
    entries = [{**p, "since": cst(p["since"], "%Y-%m-%d")} for p in people]
    return JSONResponse(
        {"city": city, "name": rb.name, "version": rb.version, "as_of": cst(at), "entries": entries},
        headers={**HEADERS, "Cache-Control": "no-store"},
    )


@router.get("/station/{city}", response_class=HTMLResponse, include_in_schema=False)
def station(request: Request, city: str, every: float = 6.0, refresh: float = 60.0) -> HTMLResponse:
    """The monitor: `every` seconds per person, the list re-read from the feed every `refresh` seconds."""
    at = now(request)
    rb, people = _station_data(request, city, at)
    if rb is None:
        return message(request, "No such city", f"There is no city {city!r} in this system.", status=404)
    if not standings.publishes(rb, "station_monitor"):
        return message(
            request,
            f"{rb.name} has no train-station monitor",
            f"The rulebook in force in {rb.name} ({rb.version}) does not show blacklisted citizens "
            "on train-station monitors (its disclosure policy has no station_monitor).",
            title_class="not-published",
        )
    every, refresh = min(max(every, 1.0), 120.0), min(max(refresh, 2.0), 3600.0)
    return render(request, "station.html", rb=rb, city=city, people=people, every=every, refresh=refresh, at=at)


@router.get("/avatars/{citizen_id}.svg", include_in_schema=False)
def avatar(request: Request, citizen_id: str) -> Response:
    """A citizen's generated face, for the citizen and for reviewers; public boards embed faces themselves."""
    svc: Service = get_service(request)
    who = viewer(request)
    if who is None or not (who.role == "admin" or (who.role == "citizen" and who.subject == citizen_id)):
        return Response("not found", status_code=404, media_type="text/plain", headers=HEADERS)
    at = now(request)
    with svc.lock:
        person = queries.citizen(svc.store, citizen_id)
        if person is None:
            return Response("not found", status_code=404, media_type="text/plain", headers=HEADERS)
        svc.audit.append(who.name, "page.avatar", citizen_id)
    svg = avatar_svg(person["avatar_seed"], person["sex"], age(person["birth_date"], at))
    return Response(svg, media_type="image/svg+xml", headers={**HEADERS, "Cache-Control": "private, max-age=3600"})
