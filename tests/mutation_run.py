"""`make mutation`: mutmut over the behaviour-bearing core, one module group at a time, a score for each.

Each group runs in its own copy of the committed tree (git archive HEAD) with its own `[tool.mutmut]`, so a
mutant is checked only by the tests that are about it (the whole suite per mutant would take days on two
cores). `--sample N` runs N mutants per group, drawn with a fixed seed from all of them, and says so.

    python tests/mutation_run.py                  # every mutant (hours)
    python tests/mutation_run.py --sample 40      # 40 per group, labelled as sampled
    python tests/mutation_run.py --only audit     # one group

Not part of the test suite (pytest collects test_*.py only) and not run in CI.
"""

from __future__ import annotations

import argparse
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
    "engine": (["src/socialcredit/engine"],
               ["tests/test_engine.py", "tests/test_survivors.py", "tests/oracle/test_known.py"]),
    "decisions": (["src/socialcredit/decisions.py"],
                  ["tests/test_decisions.py", "tests/test_survivors.py", "tests/oracle/test_known.py"]),
    "ingest+store": (["src/socialcredit/ingest.py", "src/socialcredit/store.py"],
                     ["tests/test_store.py", "tests/test_survivors.py", "tests/test_retractions.py"]),
    "audit": (["src/socialcredit/audit.py"], ["tests/api/test_audit.py", "tests/test_survivors.py"]),
    # ownership (own_citizen) and roles (require) are checked here; routes only call them
    "api authorization": (["src/socialcredit/api/auth.py"], ["tests/api/test_survivors_api.py"]),
}
PYTHON = sys.executable
MUTMUT = [PYTHON, "-m", "mutmut"]
STATUS = re.compile(r"^\s*(\S+): (.+)$")


def config(paths: list[str], tests: list[str]) -> str:
    def arr(xs: list[str]) -> str:
        return "[" + ", ".join(f'"{x}"' for x in xs) + "]"

    only = [p if p.endswith(".py") else p.rstrip("/") + "/*" for p in paths]
    return (f"\n[tool.mutmut]\nsource_paths = [\"src\"]\nonly_mutate = {arr(only)}\n"
            f"tests_dir = {arr(tests)}\npytest_add_cli_args = [\"-q\", \"-x\", \"-p\", \"no:cacheprovider\"]\n"
            f"also_copy = [\"tests\", \"scenarios\", \"docs\", \"README.md\"]\n")


def run_group(name: str, paths: list[str], tests: list[str], sample: int | None, children: int) -> dict[str, int]:
    work = Path(tempfile.mkdtemp(prefix=f"mutation-{name.replace(' ', '_').replace('+', '_')}-"))
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
        with (work / "pyproject.toml").open("a", encoding="utf-8") as f:
            f.write(config(paths, tests))
        env = {**os.environ, "PYTHONPATH": ""}
        names: list[str] = []
        if sample is not None:
            # generate the mutants (no test runs) to draw the sample from
            subprocess.run([*MUTMUT, "run", "--max-children", str(children), "__none__"], cwd=work, env=env,
                           capture_output=True, text=True)
            listed = subprocess.run([*MUTMUT, "results", "--all", "true"], cwd=work, env=env, capture_output=True,
                                    text=True).stdout
            every = [m.group(1) for line in listed.splitlines() if (m := STATUS.match(line))]
            names = sorted(random.Random(18).sample(every, min(sample, len(every))))
            print(f"{name}: {len(every)} mutants, sampled {len(names)}", flush=True)
        out = subprocess.run([*MUTMUT, "run", "--max-children", str(children), *names], cwd=work, env=env,
                             capture_output=True, text=True)
        listed = subprocess.run([*MUTMUT, "results", "--all", "true"], cwd=work, env=env, capture_output=True,
                                text=True).stdout
        counts: dict[str, int] = {}
        for line in listed.splitlines():
            if (m := STATUS.match(line)) and (not names or m.group(1) in names):
                counts[m.group(2)] = counts.get(m.group(2), 0) + 1
                if m.group(2) == "survived":
                    diff = subprocess.run([*MUTMUT, "show", m.group(1)], cwd=work, env=env, capture_output=True,
                                          text=True).stdout
                    print(f"  survived: {m.group(1)}\n" + "\n".join("    " + x for x in diff.splitlines()[-8:]),
                          flush=True)
        if not counts:
            print(out.stdout[-3000:], out.stderr[-3000:], sep="\n")
        return counts
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=None, help="mutants per group, drawn with a fixed seed")
    ap.add_argument("--only", action="append", choices=sorted(GROUPS), help="run only this group (repeatable)")
    ap.add_argument("--children", type=int, default=2, help="parallel mutant runs")
    args = ap.parse_args()
    rows = []
    for name, (paths, tests) in GROUPS.items():
        if args.only and name not in args.only:
            continue
        start = time.monotonic()
        counts = run_group(name, paths, tests, args.sample, args.children)
        judged = counts.get("killed", 0) + counts.get("survived", 0) + counts.get("timeout", 0)
        killed = counts.get("killed", 0) + counts.get("timeout", 0)
        score = f"{100 * killed / judged:.1f}%" if judged else "n/a"
        rows.append((name, score, killed, judged, counts, time.monotonic() - start))
        print(f"{name}: {score} killed ({killed}/{judged}) {counts} in {time.monotonic() - start:.0f} s", flush=True)
    label = f"sampled, {args.sample} mutants per group (seed 18)" if args.sample else "every mutant"
    print(f"\nmutation score per module ({label}):")
    for name, score, killed, judged, counts, secs in rows:
        other = {k: v for k, v in counts.items() if k not in ("killed", "survived", "timeout")}
        print(f"  {name:<18} {score:>6}  ({killed}/{judged} killed{', not run: ' + str(other) if other else ''}; "
              f"{secs:.0f} s)")


if __name__ == "__main__":
    main()
