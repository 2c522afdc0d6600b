"""An analyst's session, as a script (run by tests/test_examples.py, so it cannot drift from the library).

    python examples/analyst.py OUT_DIR [CITIZENS_PER_CITY]

1. simulate a small society (or open any run directory: `Store(RUN_DIR / "store.duckdb", read_only=True)`);
2. query it through the readable views (resident IDs, cities, behaviour labels, CST-zoned times) with SQL,
   and as pandas DataFrames;
3. plot a figure with matplotlib (Agg: no display needed);
4. compare two policies: replay the same records under Shanghai's rulebook and compare the runs;
5. look at one citizen: standing, explanation and a what-if decision (nothing is written).

In Jupyter, evaluate `store`, `st`, `why` or `d` to see them as tables.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from socialcredit import Store, decisions, explanations
from socialcredit.report.compare import compare
from socialcredit.report.replay import replay
from socialcredit.simulate.run import run_scenario
from socialcredit.simulate.scenario import parse_scenario

SCENARIO = """\
name: analyst-example
seed: 3
start: 2025-01-01
months: 3
cities: {{rongcheng: {n}, shanghai: {n}}}
rates: {{scale: 2.0, multipliers: {{court_defaulter_listing: 100, smoking_on_train: 20}}}}
services: {{rail.ticket: 0.08, air.ticket: 0.04, school.private_admission: {{rate: 0.1, for: children}}}}
"""


def main(out: Path, per_city: int = 150) -> None:
    # 1. a run: one DuckDB store and the simulator's series, in a directory of its own
    run = out / "run"
    run_scenario(parse_scenario(SCENARIO.format(n=per_city), "analyst-example.yaml"), run)

    # 2. query it: read-only (the file cannot change under us), through the views over the integer keys
    with Store(run / "store.duckdb", read_only=True) as store:
        print(
            f"opened {store.path} read-only; last engine run (the store's clock): "
            f"{store.con.sql('SELECT max(as_of) FROM engine_run').fetchall()[0][0]} UTC"
        )
        top = store.con.sql("""
            SELECT behaviour_label, count(*) AS records, count(DISTINCT citizen_id) AS citizens
            FROM records_view GROUP BY ALL ORDER BY records DESC LIMIT 5""").fetchall()
        for label, n, people in top:
            print(f"  {label}: {n} records about {people} citizens")
        listed = store.to_pandas("list_entries")  # a pandas DataFrame, times zoned in China Standard Time
        print(f"list stays: {len(listed)}, of which blacklist {int((listed['kind'] == 'blacklist').sum())}")

        # 3. a figure: citizens on a blacklist at each month's start, per city
        months = (
            store.con.sql("""
            SELECT m.month, c.city, count(DISTINCT e.citizen_id) AS listed
            FROM (SELECT unnest(generate_series(TIMESTAMPTZ '2025-02-01 00:00+08', TIMESTAMPTZ '2025-04-01 00:00+08',
                                                INTERVAL 1 MONTH)) AS month) m
            CROSS JOIN (SELECT DISTINCT city FROM citizens_view) c
            LEFT JOIN list_entries_view e ON e.city = c.city AND e.kind = 'blacklist' AND e.start <= m.month
                 AND (e."end" IS NULL OR e."end" > m.month)
            GROUP BY ALL ORDER BY 2, 1""")
            .to_arrow_table()
            .to_pandas()
        )
        fig, ax = plt.subplots(figsize=(6, 3))
        for city, rows in months.groupby("city"):
            ax.plot(rows["month"].dt.strftime("%Y-%m"), rows["listed"], marker="o", label=city)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of people
        ax.set_ylabel("citizens on a blacklist")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "blacklisted.png")
        plt.close(fig)
        print(f"figure: {out / 'blacklisted.png'}")

        # 5. one citizen: standing, explanation, a what-if (record=False is the library's default)
        who = store.con.sql(
            "SELECT citizen_id FROM list_entries_view WHERE kind = 'blacklist' ORDER BY start, citizen_id LIMIT 1"
        ).fetchall()
        if who:
            st = decisions.standing(store, who[0][0])  # no time: the store's clock, never the wall clock
            why = explanations.explain(store, who[0][0])
            d = decisions.decide(store, who[0][0], "air.ticket")
            print(
                f"{st.citizen_id} as of {st.as_of} UTC ({st.clock}): score {st.score}, grade {st.grade}, "
                f"{len(why.to_pandas())} ledger entries; air.ticket → {d.outcome}"
            )

    # 4. two policies: the same records and service attempts under Shanghai's rules in every city
    other = replay(run, "shanghai@1", out / "under-shanghai")
    result = compare(run, other.out_dir, out / "compare.html")
    print(f"compared: {result.summary}")
    print(f"comparison page: {result.written[0]}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 150)
