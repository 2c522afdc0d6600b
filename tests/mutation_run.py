"""`make mutation`: mutmut over the behaviour-bearing core, one module group at a time, a score for each.

Each group runs in its own copy of the committed tree (git archive HEAD) with its own `[tool.mutmut]`, so a
mutant is checked only by the tests that are about it (the whole suite per mutant would take days on two
cores). `--sample N` (or the environment's MUTATION_SAMPLE=N, so CI can stay small) runs N mutants per
group, drawn with a fixed seed from all of them, and says so; the same N on the same source draws the same
mutants, so a before/after comparison runs the same ones.

    python tests/mutation_run.py                  # every mutant (hours)
    python tests/mutation_run.py --sample 40      # 40 per group, labelled as sampled
    MUTATION_SAMPLE=5 python tests/mutation_run.py --only audit     # one group, 5 mutants
    python tests/mutation_run.py --json out.json  # also every judged mutant's status, for comparing runs

The table gives a score per module (per source file, and per group) and overall. A mutant none of the
group's tests reaches ("no tests") counts as not killed: it is a change no test notices.

Not part of the test suite (pytest collects test_*.py only) and not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The one place that says what is mutated and by which tests (mutmut takes a directory too).
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    # the oracle test (tests/oracle/test_oracle.py) is left out: forty engine runs per mutant do not fit
    "engine": (
        ["src/socialcredit/engine", "src/socialcredit/sqltemplates.py"],
        [
            "tests/test_engine.py",
            "tests/test_survivors.py",
            "tests/oracle/test_known.py",
            # what bringing the record ledger up to date reports (entries.update's LedgerUpdate)
            "tests/test_ledger.py::test_each_record_is_scored_once",
        ],
    ),
    # test_frames: what a notebook shows of the answers (decisions.py's HTML and tables)
    "decisions": (
        ["src/socialcredit/decisions.py", "src/socialcredit/explanations.py"],
        ["tests/test_decisions.py", "tests/test_survivors.py", "tests/oracle/test_known.py", "tests/test_frames.py"],
    ),
    "ingest+store": (
        [
            "src/socialcredit/store/ingest.py",
            "src/socialcredit/store/__init__.py",
            "src/socialcredit/store/population.py",
            "src/socialcredit/store/relations.py",
        ],
        [
            "tests/test_store.py",
            "tests/test_survivors.py",
            "tests/test_retractions.py",
            # the store's refusals of a relation change (relations.change_relations): one cheap test
            "tests/test_relations.py::test_the_store_refuses_a_change_that_does_not_fit_and_writes_nothing",
            # and of a bulk population (population.add_population, _problems): one small batch
            "tests/simulate/test_population.py::test_a_required_value_left_empty_is_named_missing",
        ],
    ),
    "audit": (["src/socialcredit/audit.py"], ["tests/api/test_audit.py", "tests/test_survivors.py"]),
    # ownership (own_citizen) and roles (require) are checked here; routes only call them
    "api authorization": (["src/socialcredit/api/auth.py"], ["tests/api/test_survivors_api.py"]),
}
# Survivors judged equivalent (no test can tell them from the original), each with the mutated line as
# `mutmut show` prints it (a judgement holds only while that is still the mutant's change: the numbering
# follows the function's source) and why. They are listed apart and left out of the net score.
EQUIVALENT: dict[str, tuple[str, str]] = {
    "socialcredit.engine.characteristics.x_intervals__mutmut_88": (
        "(exp.column(exp.to_identifier(a.name, quoted=True), )",
        "the attribute column loses its `s.` qualifier; the SELECT's only FROM table is `recs AS s` (the "
        "correlated subquery has its own scope), so the unqualified name resolves to the same column",
    ),
    "socialcredit.engine.characteristics.x_intervals__mutmut_110": (
        "head.select(*cols, copy=None)",
        "sqlglot tests `copy` for truth: None is False",
    ),
    "socialcredit.engine.sql.x_case_by_jkey__mutmut_13": (
        'if ("." in col) and False else None',
        "the qualifier of `a.jkey` dropped: its one caller (scores_query) joins `a` only with `s`, which has no "
        "jkey, so the bare name is the same column",
    ),
    "socialcredit.engine.grades.x_entered_grade_lists__mutmut_12": (
        'who=_who(everyone, "C")',
        "unquoted SQL identifiers are case-insensitive: alias C is alias c",
    ),
    "socialcredit.engine.grades.x_network_rules__mutmut_45": (
        '"jkey": pa.array(cols[0], ), "epoch"',
        "net_rules.jkey as BIGINT, not SMALLINT: only joined by value to share_t.jkey (the output takes s.jkey), "
        "and a jkey is a SMALLINT in the store, so every value fits both",
    ),
    "socialcredit.engine.assessments.x_periods_table__mutmut_5": (
        "pa.array(range(len(periods)), None)",
        "dead code: nothing calls periods_table",
    ),
    "socialcredit.decisions.xǁDeciderǁplan__mutmut_4": (
        "plan = self._plans.get(id(None))",
        "a cache that always misses: the same plan is built again (time only)",
    ),
    "socialcredit.decisions.xǁDeciderǁ_record__mutmut_9": (
        '"SELECT COALESCE(MAX(DECISION_ID), 0) + 1 FROM DECISIONS"',
        "SQL keywords and unquoted SQL identifiers are case-insensitive",
    ),
    "socialcredit.decisions.x_explain__mutmut_54": (
        '"label": rule.label if (rule) or True else None',
        "differs only when no rule has the id; an entry's rule ids are those of the pieces the version that "
        "scored it compiled, and explain resolves that same version, so the rule is always found",
    ),
    "socialcredit.store.ingest.x__stage_jsonl__mutmut_24": (
        'con.execute("DROP TABLE _RAW")',
        "unquoted SQL identifiers are case-insensitive",
    ),
    "socialcredit.store.ingest.x_validate_stage__mutmut_66": (
        'trimmed("REPORTED_BY")',
        'DuckDB resolves identifiers case-insensitively even quoted: s."REPORTED_BY" '
        'is s."reported_by" (and s."given REPORTED_BY" its given text)',
    ),
    "socialcredit.store.ingest.x_stage_batch__mutmut_70": (
        "create temp table _raw as select * from read_parquet(?)",
        "SQL keywords and identifiers: any case",
    ),
    "socialcredit.store.xǁStoreǁ_append_stage__mutmut_23": (
        "select distinct citizen_id from _typed where not duplicate order by 1 limit 1000",
        "SQL keywords and identifiers: any case",
    ),
    "socialcredit.store.xǁStoreǁadd_population__mutmut_77": (
        '"_POP_R"',
        "DROP TABLE IF EXISTS of an unquoted name: case-insensitive",
    ),
    "socialcredit.store.xǁStoreǁadd_citizens__mutmut_318": (
        '"CITIZEN_ID": [r["citizen_id"] for r in rows]',
        "the Arrow column's name is never read: INSERT INTO citizens SELECT * takes the columns by position",
    ),
    "socialcredit.api.auth.x_principal__mutmut_7": (
        'request.headers.get("AUTHORIZATION", "")',
        "Starlette's headers are case-insensitive",
    ),
    "socialcredit.api.auth.x_principal__mutmut_8": (
        'request.headers.get("authorization", "XXXX")',
        "without the header, XXXX does not start with `bearer ` either: the cookie is read as before",
    ),
    "socialcredit.audit.xǁAuditTrailǁ_write__mutmut_10": (
        'con.register("_AUDIT_ROWS", rows)',
        "a registered view's unquoted name is case-insensitive in SQL",
    ),
    "socialcredit.audit.xǁAuditTrailǁentries__mutmut_10": ('where += " and citizen_id = ?"', "SQL keywords: any case"),
}
PYTHON = sys.executable
MUTMUT = [PYTHON, "-m", "mutmut"]
STATUS = re.compile(r"^\s*(\S+): (.+)$")


def config(paths: list[str], tests: list[str]) -> str:
    def arr(xs: list[str]) -> str:
        return "[" + ", ".join(f'"{x}"' for x in xs) + "]"

    only = [p if p.endswith(".py") else p.rstrip("/") + "/*" for p in paths]
    return (
        f'\n[tool.mutmut]\nsource_paths = ["src"]\nonly_mutate = {arr(only)}\n'
        f"pytest_add_cli_args_test_selection = {arr(tests)}\n"
        f'pytest_add_cli_args = ["-q", "-x", "-p", "no:cacheprovider"]\n'
        # each mutant's tests in a process forked before any test ran: forked from mutmut's own process (the
        # default), module-level caches the stats run filled (Store.rulebooks' parsed sets) hid mutants
        f'process_isolation = "forkserver"\n'
        f'also_copy = ["tests", "scenarios", "docs", "README.md"]\n'
    )


def module_of(mutant: str) -> str:
    """The source file a mutant is in, from its name (`socialcredit.engine.sql.x_fill__mutmut_3`)."""
    dotted = mutant.split("__mutmut_")[0].rsplit(".", 1)[0]
    return "src/" + dotted.replace(".", "/") + ".py"


def mutmut(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MUTMUT, *args], cwd=work, env={**os.environ, "PYTHONPATH": ""}, capture_output=True, text=True
    )


FRESH = "killed in a fresh process"


def fresh_kill(work: Path, mutant: str, tests: list[str]) -> bool:
    """Whether the group's tests fail in a fresh process over the source with the mutant written in.

    mutmut switches mutants inside processes forked after the tests were imported, so a function that runs
    at import (`api.auth.require`, called as the routes are declared) keeps its original, and a survivor
    there says nothing about the tests; this asks them directly (a copy: the file is put back after)."""
    path = work / module_of(mutant)
    original = path.read_bytes()
    try:
        if mutmut(work, "apply", mutant).returncode != 0:
            return False
        r = subprocess.run(
            [PYTHON, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
            cwd=work,
            env={**os.environ, "PYTHONPATH": str(work / "src")},
            capture_output=True,
            timeout=1800,
        )
        return r.returncode not in (0, 5)
    except subprocess.TimeoutExpired:
        return False
    finally:
        path.write_bytes(original)


def run_group(
    name: str,
    paths: list[str],
    tests: list[str],
    sample: int | None,
    children: int,
    only: list[str] | None = None,
    rev: str = "HEAD",
) -> dict[str, str]:
    """Every judged mutant's status (`killed`, `survived`, `no tests`, `timeout`, …), survivors printed;
    with `only`, just those mutants (no sampling). The tree is commit `rev`'s (committed work only)."""
    work = Path(tempfile.mkdtemp(prefix=f"mutation-{name.replace(' ', '_').replace('+', '_')}-"))
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
        with (work / "pyproject.toml").open("a", encoding="utf-8") as f:
            f.write(config(paths, tests))
        names: list[str] = sorted(only or [])
        if sample is not None and not names:
            # generate the mutants (no test runs) to draw the sample from
            mutmut(work, "run", "--max-children", str(children), "__none__")
            listed = mutmut(work, "results", "--all", "true").stdout
            every = [m.group(1) for line in listed.splitlines() if (m := STATUS.match(line))]
            names = sorted(random.Random(18).sample(every, min(sample, len(every))))
            print(f"{name}: {len(every)} mutants, sampled {len(names)}", flush=True)
        out = mutmut(work, "run", "--max-children", str(children), *names)
        listed = mutmut(work, "results", "--all", "true").stdout
        status: dict[str, str] = {}
        for line in listed.splitlines():
            if (m := STATUS.match(line)) and (not names or m.group(1) in names):
                status[m.group(1)] = m.group(2)
                if m.group(2) in ("survived", "no tests"):
                    diff = mutmut(work, "show", m.group(1)).stdout
                    body = [x for x in diff.splitlines()[1:] if x.startswith(("@@", "-", "+")) or x.strip()]
                    line, why = EQUIVALENT.get(m.group(1), ("", ""))
                    if line and any(x.startswith("+") and line in x for x in body):
                        status[m.group(1)] = "equivalent"
                        print(f"  equivalent ({m.group(2)}): {m.group(1)}: {why}", flush=True)
                        continue
                    if line:
                        print(f"  (the equivalence judged for {m.group(1)} is stale: its change is another now)")
                    if fresh_kill(work, m.group(1), tests):
                        status[m.group(1)] = FRESH
                        print(f"  {FRESH} ({m.group(2)} under mutmut): {m.group(1)}", flush=True)
                        continue
                    print(f"  {m.group(2)}: {m.group(1)}\n" + "\n".join("    " + x for x in body), flush=True)
        if not status:
            print(out.stdout[-3000:], out.stderr[-3000:], sep="\n")
        return status
    finally:
        shutil.rmtree(work, ignore_errors=True)


KILLED = ("killed", "timeout", FRESH)
JUDGED = (*KILLED, "survived", "no tests", "equivalent")


def score(statuses: list[str], net: bool = False) -> tuple[str, int, int]:
    """killed / judged; `net` leaves the survivors judged equivalent out of the judged."""
    killed = sum(s in KILLED for s in statuses)
    judged = sum(s in JUDGED and not (net and s == "equivalent") for s in statuses)
    return (f"{100 * killed / judged:.1f}%" if judged else "n/a"), killed, judged


def table(results: dict[str, dict[str, str]], seconds: dict[str, float]) -> list[str]:
    """One row per group, then one per source file in it, then the overall score."""
    head = (
        f"  {'module':<40} {'score':>7} {'net':>7} {'killed':>7} {'survived':>9} {'no tests':>9} "
        f"{'equiv.':>7} {'other':>6}"
    )
    lines = [head, "  " + "-" * (len(head) - 2)]

    def row(label: str, statuses: list[str], extra: str = "") -> str:
        pct, killed, _ = score(statuses)
        net, _, _ = score(statuses, net=True)
        other = sum(s not in JUDGED for s in statuses)
        return (
            f"  {label:<40} {pct:>7} {net:>7} {killed:>7} {statuses.count('survived'):>9} "
            f"{statuses.count('no tests'):>9} {statuses.count('equivalent'):>7} {other:>6}{extra}"
        )

    for group, status in results.items():
        lines.append(row(group, list(status.values()), f"   ({seconds[group]:.0f} s)"))
        by_module: dict[str, list[str]] = {}
        for mutant, st in status.items():
            by_module.setdefault(module_of(mutant), []).append(st)
        if len(by_module) > 1:
            lines += [row("  " + m.removeprefix("src/socialcredit/"), sts) for m, sts in sorted(by_module.items())]
    lines.append(row("overall", [s for status in results.values() for s in status.values()]))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env_sample = os.environ.get("MUTATION_SAMPLE")
    ap.add_argument(
        "--sample",
        type=int,
        default=int(env_sample) if env_sample else None,
        help="mutants per group, drawn with a fixed seed (default: $MUTATION_SAMPLE, else every mutant)",
    )
    ap.add_argument("--only", action="append", choices=sorted(GROUPS), help="run only this group (repeatable)")
    ap.add_argument("--children", type=int, default=2, help="parallel mutant runs")
    ap.add_argument("--json", type=Path, help="write every judged mutant's status here")
    ap.add_argument("--rev", default="HEAD", help="the commit whose source and tests are mutated (default HEAD)")
    ap.add_argument(
        "--rerun",
        type=Path,
        help="a --json file of an earlier run on the same source: run again only its mutants that were "
        "not killed (tests only added since: a killed mutant stays killed) and report them all",
    )
    args = ap.parse_args()
    earlier: dict[str, dict[str, str]] = json.loads(args.rerun.read_text("utf-8")) if args.rerun else {}
    results: dict[str, dict[str, str]] = {}
    seconds: dict[str, float] = {}
    for name, (paths, tests) in GROUPS.items():
        if (args.only and name not in args.only) or (args.rerun and name not in earlier):
            continue
        start = time.monotonic()
        if args.rerun:
            again = [m for m, st in earlier[name].items() if st not in KILLED]
            print(
                f"{name}: {len(earlier[name])} mutants from {args.rerun}, running again the {len(again)} not killed",
                flush=True,
            )
            results[name] = {
                **earlier[name],
                **(run_group(name, paths, tests, None, args.children, again, args.rev) if again else {}),
            }
        else:
            results[name] = run_group(name, paths, tests, args.sample, args.children, rev=args.rev)
        seconds[name] = time.monotonic() - start
        pct, killed, judged = score(list(results[name].values()))
        print(f"{name}: {pct} killed ({killed}/{judged}) in {seconds[name]:.0f} s", flush=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    label = f"sampled, {args.sample} mutants per group (seed 18)" if args.sample else "every mutant"
    if args.rerun:
        label = f"the mutants of {args.rerun}, those not killed then run again"
    print(
        f"\nmutation score per module ({label}; timeouts and survivors killed in a fresh process count as killed, "
        "`no tests` as not; net: without "
        "the survivors judged equivalent, EQUIVALENT in tests/mutation_run.py):"
    )
    print("\n".join(table(results, seconds)))


if __name__ == "__main__":
    main()
