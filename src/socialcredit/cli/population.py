"""`socialcredit population …`: generate a synthetic population and write it into a store.

A thin door: it parses the options, asks the store which cities exist (and their region codes),
calls `generate_population` and `Store.add_population`, and shows progress and a summary.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

import typer
from rich.table import Table

from socialcredit.cli.console import DbOpt, emit, fail, guarded, open_store, out, progress_bar

population_app = typer.Typer(help="Generate synthetic populations (synthetic people only).", no_args_is_help=True)


@population_app.command("generate")
def generate(
    city: Annotated[list[str], typer.Option("--city", help="CITY=COUNT, e.g. rongcheng=50000; repeat for more cities")],
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same population")] = 0,
    start: Annotated[
        str | None, typer.Option(help="the date ages are counted to, YYYY-MM-DD (default 2025-01-01)")
    ] = None,
    db: DbOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Generate citizens, households and contacts for some cities and store them."""

    @guarded
    def run() -> None:
        from socialcredit.simulate.population import DEFAULT_START, generate_population, regions_of

        sizes: dict[str, int] = {}
        for spec in city:
            name, sep, count = spec.partition("=")
            name = name.strip()
            try:
                size = int(count)
            except ValueError:
                size = 0
            if not sep or not name or size < 1:
                fail(f"--city {spec!r}: expected CITY=COUNT with a positive count, e.g. rongcheng=50000")
            if name in sizes:
                fail(f"--city {name!r} is given twice")
            sizes[name] = size
        try:
            day = dt.date.fromisoformat(start) if start else DEFAULT_START
        except ValueError:
            fail(f"--start {start!r} is not a date (YYYY-MM-DD)")

        store = open_store(db, must_exist=False)
        if not store.initialised:
            store.init()
        regions = regions_of(store.rulebooks())
        known = store.rulebooks().cities
        for name in sizes:
            if name not in known:
                fail(f"unknown city {name!r} (cities in {store.path}: {', '.join(known)})")
            if name not in regions:
                fail(f"city {name!r} has no region_code in its rulebook, so its citizens cannot have resident IDs")
        # IDs already in the store for these regions: the new citizens' sequences go round them
        reserved = store.con.sql(
            "SELECT citizen_id FROM citizens WHERE substr(citizen_id, 1, 6) IN (SELECT unnest($regions))",
            params={"regions": sorted({regions[c] for c in sizes})},
        ).to_arrow_table()["citizen_id"]

        began = time.perf_counter()
        with progress_bar() as bar:
            task = bar.add_task("generating", total=len(sizes) + 6)

            def step(label: str) -> None:
                bar.update(task, description=label, advance=1)

            pop = generate_population(sizes, seed, day, regions=regions, reserved=reserved, progress=step)
            step(f"validating and storing {len(pop):,} citizens")
            first = store.con.execute("SELECT coalesce(max(ckey) + 1, 0) FROM citizens").fetchall()[0][0]
            store.add_population(pop.citizens, pop.relations, source=f"population seed {seed}")
        seconds = time.perf_counter() - began
        summary = pop.summary()
        if json_out:
            emit({"db": str(store.path), "seed": seed, "start": day, "first_ckey": first, "cities": summary,
                  "relations": pop.relations.num_rows, "seconds": round(seconds, 2)})  # fmt: skip
            return
        t = Table("city", "citizens", "adults", "children", "households", "contacts per adult",
                  title=f"population seed {seed}, ages as of {day}")  # fmt: skip
        for row in summary:
            t.add_row(
                row["city"],
                f"{row['citizens']:,}",
                f"{row['adults']:,}",
                f"{row['children']:,}",
                f"{row['households']:,}",
                f"{row['mean_contacts']:.1f}",
            )
        out.print(t)
        out.print(
            f"stored {len(pop):,} citizens (ckeys {first:,}–{first + len(pop) - 1:,}) and "
            f"{pop.relations.num_rows:,} relations in {store.path} in {seconds:.1f}s"
        )

    run()
