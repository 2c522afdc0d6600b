"""The generated population: valid resident IDs, consistent households, a sane contact graph,
determinism by seed, the bulk store path (accept whole, reject whole) and the CLI command."""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from conftest import SLOW_SCALE
from socialcredit import ids
from socialcredit.avatar import HAIR_GREY, HAIR_WHITE, avatar_svg, face
from socialcredit.cli import app
from socialcredit.sample import REGION
from socialcredit.simulate import Population, generate_population
from socialcredit.simulate.population import _resident_ids
from socialcredit.store import BatchRejected, Store
from socialcredit.yamlio import LocatedError

START = dt.date(2025, 1, 1)
SMALL = {"rongcheng": 3000, "shanghai": 9000}
runner = CliRunner()


@pytest.fixture(scope="module")
def pop() -> Population:
    return generate_population(SMALL, seed=7, start=START)


def col(table: pa.Table, name: str) -> np.ndarray:
    return table[name].to_numpy(zero_copy_only=False)


def age_years(table: pa.Table, on: dt.date = START) -> np.ndarray:
    """Whole calendar years of age on `on`, as a person counts them."""
    born = col(table, "birth_date").astype("datetime64[D]")
    year = born.astype("datetime64[Y]").astype(np.int64) + 1970
    month = born.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (born - born.astype("datetime64[M]")).astype(np.int64) + 1
    return on.year - year - (month * 100 + day > on.month * 100 + on.day)


def edges(p: Population, kind: str) -> tuple[np.ndarray, np.ndarray]:
    mine = col(p.relations, "kind") == kind
    return col(p.relations, "ckey")[mine], col(p.relations, "other")[mine]


# --------------------------------------------------------------------------- resident IDs


def test_every_id_is_valid_unique_and_carries_the_citizen(pop):
    c = pop.citizens
    rid = c["citizen_id"].to_pylist()
    assert [r for r in rid if ids.problem(r) is not None] == []
    assert all(ids.check_char(r[:17]) == r[17] for r in rid)
    assert len(set(rid)) == len(rid) == sum(SMALL.values())
    assert [ids.birth_date_of(r) for r in rid] == c["birth_date"].to_pylist()
    assert [ids.sex_of(r) for r in rid] == c["sex"].to_pylist()
    assert all(r[:6] == REGION[city] for r, city in zip(rid, c["city"].to_pylist(), strict=True))
    assert c["ckey"].to_pylist() == list(range(len(pop)))


def test_sequences_fill_up_to_the_limit_then_refuse():
    day = np.full(500, 7000)
    made = _resident_ids(np.full(500, 371082), day, np.zeros(500, bool), 1, ())
    seqs = {int(r[14:17]) for r in made.to_pylist()}
    assert len(seqs) == 500 and all(s % 2 == 0 for s in seqs)
    with pytest.raises(LocatedError, match="more than 500 women born on 1989-03-02"):
        _resident_ids(np.full(501, 371082), np.full(501, 7000), np.zeros(501, bool), 1, ())


def test_reserved_ids_are_avoided(pop):
    again = generate_population(SMALL, seed=7, start=START, reserved=pop.citizens["citizen_id"])
    old, new = set(pop.citizens["citizen_id"].to_pylist()), again.citizens["citizen_id"].to_pylist()
    assert old.isdisjoint(new) and len(set(new)) == len(new)
    assert all(ids.problem(r) is None for r in new)
    # everything but the sequence is the same population
    assert again.citizens.drop_columns(["citizen_id"]).equals(pop.citizens.drop_columns(["citizen_id"]))


# --------------------------------------------------------------------------- people and households


def test_sex_age_names_and_income(pop):
    c = pop.citizens
    age = age_years(c)
    assert 0.48 < (col(c, "sex") == "M").mean() < 0.54
    assert age.min() >= 0 and age.max() <= 90
    assert 0.15 < (age < 18).mean() < 0.30
    assert 0.08 < (age >= 65).mean() < 0.20
    names, latin = c["name"].to_pylist(), c["name_latin"].to_pylist()
    assert all(re.fullmatch(r"[\u4e00-\u9fff]{2,5}", n) for n in names)
    assert all(re.fullmatch(r"[A-Z][a-zü]+ [A-Z][a-z']+", n) for n in latin)
    surname_share = sum(n.startswith("王") for n in names) / len(names)
    assert 0.05 < surname_share < 0.11  # 王 is about 7% of the population
    decile = c["income_decile"].to_pylist()
    assert all((d is None) == (a < 18) for d, a in zip(decile, age, strict=True))
    adult = age >= 18
    d = np.array([x or 0 for x in decile])
    assert d[adult & (age >= 35) & (age < 55)].mean() > d[adult & (age >= 75)].mean() + 1
    occupation = col(c, "occupation")
    assert set(occupation[~adult]) <= {"child", "student"}
    assert "retired" in set(occupation[age >= 65])
    seeds = col(c, "avatar_seed")
    assert seeds.min() >= 0 and len(np.unique(seeds)) > 0.999 * len(seeds)


def test_households_are_consistent(pop):
    c = pop.citizens
    age, sex, household, city = age_years(c), col(c, "sex"), col(c, "household"), col(c, "city")
    born = c["birth_date"].to_pylist()
    a, b = edges(pop, "spouse")
    assert len(np.unique(a)) == len(a)  # one spouse each
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == set(zip(b.tolist(), a.tolist(), strict=True))
    assert (sex[a] != sex[b]).all() and (age[a] >= 20).all() and (household[a] == household[b]).all()
    child, parent = edges(pop, "parent")
    p2, c2 = edges(pop, "child")
    assert sorted(zip(child.tolist(), parent.tolist(), strict=True)) == sorted(
        zip(c2.tolist(), p2.tolist(), strict=True)
    )
    for k, p in zip(child.tolist(), parent.tolist(), strict=True):
        older = born[p]
        assert dt.date(older.year + 16, older.month, min(older.day, 28)) <= born[k]
    assert (city[child] == city[parent]).all()
    per_child = np.bincount(child, minlength=len(pop))
    assert per_child.max() <= 2
    minors = np.flatnonzero(age < 18)
    assert (per_child[minors] >= 1).all()  # every child lives with a parent
    same_house = household[child] == household[parent]
    assert (same_house | (age[child] >= 18)).all()
    # grandparents: some adults are linked to their own parents, who are themselves in the registry
    assert 0.15 < (per_child[age >= 18] > 0).mean() < 0.7
    assert (np.bincount(parent, minlength=len(pop))[age >= 18] <= 7).all()


def check_contacts(p: Population, within: float) -> None:
    a, b = edges(p, "contact")
    assert (a != b).all()
    pairs = np.sort(a.astype(np.int64) << 32 | b)
    assert (np.diff(pairs) > 0).all()  # no duplicates
    assert np.array_equal(pairs, np.sort(b.astype(np.int64) << 32 | a))  # symmetric
    age = age_years(p.citizens)
    degree = np.bincount(a, minlength=len(p))
    assert (degree[age < 18] == 0).all()
    adult_degree = degree[age >= 18]
    assert 10 <= adult_degree.mean() <= 20
    # roughly log-normal: right-skewed, log-degree spread like the drawn sigma
    assert np.median(adult_degree) < adult_degree.mean()
    assert 0.35 < np.log(np.maximum(adult_degree, 1)).std() < 0.9
    city = col(p.citizens, "city")
    share = (city[a] == city[b]).mean()
    assert within < share < 1.0


def test_contact_graph(pop):
    check_contacts(pop, within=0.85)


def test_two_hundred_thousand_citizens():
    big = generate_population({"rongcheng": 50_000, "shanghai": 150_000}, seed=11, start=START)
    rid = big.citizens["citizen_id"].to_pylist()
    assert len(set(rid)) == len(rid) == 200_000
    assert all(ids.problem(r) is None for r in rid)
    check_contacts(big, within=0.85)
    summary = {s["city"]: s for s in big.summary()}
    assert summary["shanghai"]["citizens"] == 150_000 and summary["rongcheng"]["citizens"] == 50_000


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_tables_other_seed_other_tables(pop):
    again = generate_population({"shanghai": 9000, "rongcheng": 3000}, seed=7, start=START)
    assert again.citizens.equals(pop.citizens) and again.relations.equals(pop.relations)
    other = generate_population(SMALL, seed=8, start=START)
    assert not other.citizens["citizen_id"].equals(pop.citizens["citizen_id"])
    assert not other.relations.equals(pop.relations)


def test_unknown_city_and_empty_city():
    with pytest.raises(LocatedError, match="atlantis"):
        generate_population({"atlantis": 10}, seed=1)
    with pytest.raises(LocatedError, match="at least 1"):
        generate_population({"rongcheng": 0}, seed=1)
    tiny = generate_population({"rongcheng": 1}, seed=1)
    assert len(tiny) == 1 and tiny.relations.num_rows == 0


# --------------------------------------------------------------------------- the bulk store path


def small_pop(seed: int = 3, n: int = 400, reserved: object = ()) -> Population:
    return generate_population({"testcity": n}, seed=seed, start=START, regions={"testcity": "371082"},
                               reserved=reserved)  # type: ignore[arg-type]  # fmt: skip


def snapshot(store: Store) -> dict[str, object]:
    tables = ("citizens", "relations", "citizen_profiles")
    return {t: store.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}


def test_store_accepts_a_population_after_existing_citizens(store, make_citizens):
    existing = make_citizens(store, 3, contacts={0: [1]})
    p = small_pop(reserved=existing)
    assert store.add_population(p.citizens, p.relations, "pop") == len(p)
    con = store.con
    keys = [k for (k,) in con.execute("SELECT ckey FROM citizens WHERE ckey >= 3 ORDER BY ckey").fetchall()]
    assert keys == list(range(3, 3 + len(p)))
    got = con.execute("SELECT citizen_id, name, sex, birth_date, avatar_seed FROM citizens WHERE ckey >= 3 "
                      "ORDER BY ckey").fetchall()  # fmt: skip
    want = p.citizens.select(["citizen_id", "name", "sex", "birth_date", "avatar_seed"]).to_pylist()
    assert [tuple(w.values()) for w in want] == got
    jkey = con.execute("SELECT jkey FROM jurisdictions WHERE code = 'testcity'").fetchall()[0][0]
    assert con.execute("SELECT DISTINCT jkey FROM citizens").fetchall() == [(jkey,)]
    assert con.execute("SELECT count(*) FROM relations WHERE ckey >= 3").fetchall()[0][0] == p.relations.num_rows
    # relations keep their meaning under the new keys, and still go both ways
    assert (
        con.execute("""SELECT count(*) FROM relations r WHERE NOT EXISTS (SELECT 1 FROM relations m
        WHERE m.ckey = r.other AND m.other = r.ckey)""").fetchall()[0][0]
        == 0
    )
    first = p.relations.slice(0, 1).to_pylist()[0]
    assert con.execute("SELECT count(*) FROM relations WHERE ckey = ? AND other = ? AND kind = ?",
                       [first["ckey"] + 3, first["other"] + 3, first["kind"]]).fetchall()[0][0] == 1  # fmt: skip
    profiles = con.execute("SELECT ckey, income_decile, occupation, household FROM citizen_profiles ORDER BY ckey")
    rows = profiles.fetchall()
    assert [r[0] for r in rows] == keys
    assert [r[1] for r in rows] == p.citizens["income_decile"].to_pylist()
    # a second population continues the keys and the household numbers
    q = small_pop(seed=4, n=50, reserved=[r for (r,) in con.execute("SELECT citizen_id FROM citizens").fetchall()])
    store.add_population(q.citizens, q.relations, "second")
    assert con.execute("SELECT min(ckey), max(ckey) FROM citizens WHERE ckey >= 3 + ?", [len(p)]).fetchall() == [
        (3 + len(p), 2 + len(p) + len(q))
    ]
    assert con.execute("SELECT count(DISTINCT household) FROM citizen_profiles").fetchall()[0][0] == (
        len(set(p.citizens["household"].to_pylist())) + len(set(q.citizens["household"].to_pylist()))
    )


def set_value(table: pa.Table, name: str, row: int, value: object) -> pa.Table:
    values = table[name].to_pylist()
    values[row] = value
    return table.set_column(table.column_names.index(name), name, pa.array(values, table.schema.field(name).type))


def flip_check(cid: str) -> str:
    return cid[:17] + ("0" if cid[17] != "0" else "1")


def test_corrupted_population_is_rejected_whole_with_the_row_named(store, make_citizens):
    make_citizens(store, 2)
    p = small_pop()
    before = snapshot(store)
    bad = set_value(p.citizens, "citizen_id", 41, flip_check(p.citizens["citizen_id"][41].as_py()))
    with pytest.raises(BatchRejected) as e:
        store.add_population(bad, p.relations, "corrupt.parquet")
    assert [(x.row, x.field) for x in e.value.problems] == [(42, "citizen_id")]
    assert "wrong check character (expected" in e.value.problems[0].message
    assert "corrupt.parquet: row 42, citizen_id" in str(e.value)
    assert snapshot(store) == before
    assert store.add_population(p.citizens, p.relations, "pop") == len(p)  # the good one still goes in


def _mutations(p: Population) -> dict[str, tuple[pa.Table, pa.Table, set[tuple[int, str]]]]:
    c, r = p.citizens, p.relations
    cid = c["citizen_id"].to_pylist()
    sex = c["sex"].to_pylist()
    born = c["birth_date"].to_pylist()
    rel = r.to_pylist()
    contact = next(i for i, x in enumerate(rel) if x["kind"] == "contact")
    spouse = next(i for i, x in enumerate(rel) if x["kind"] == "spouse")
    parent = next(i for i, x in enumerate(rel) if x["kind"] == "parent")

    def rel_table(rows: list[dict[str, object]]) -> pa.Table:
        return pa.Table.from_pylist(rows, schema=pa.schema([("ckey", pa.int32()), ("other", pa.int32()),
                                                             ("kind", pa.string())]))  # fmt: skip

    unknown = [dict(x) for x in rel]
    unknown[contact]["other"] = len(p) + 5
    without_mirror = [x for i, x in enumerate(rel) if i != parent]
    # the mirror of the removed parent edge (a child edge) has no partner any more; it sits later or earlier
    child_row = next(
        i
        for i, x in enumerate(without_mirror, start=1)
        if x["kind"] == "child" and x["ckey"] == rel[parent]["other"] and x["other"] == rel[parent]["ckey"]
    )
    self_loop = [dict(x) for x in rel]
    self_loop[spouse]["other"] = self_loop[spouse]["ckey"]
    return {
        "unknown city": (set_value(c, "city", 7, "atlantis"), r, {(8, "city")}),
        "sex against ID": (set_value(c, "sex", 9, "M" if sex[9] == "F" else "F"), r, {(10, "sex")}),
        "birth date against ID": (
            set_value(c, "birth_date", 11, born[11] + dt.timedelta(days=1)),
            r,
            {(12, "birth_date")},
        ),
        "duplicate ID": (set_value(c, "citizen_id", 13, cid[12]), r, {(14, "citizen_id")}),
        "malformed ID": (set_value(c, "citizen_id", 3, "37108219800230001X"), r, {(4, "citizen_id")}),
        "duplicate ckey": (set_value(c, "ckey", 5, 4), r, {(6, "ckey")}),
        "relation to unknown citizen": (
            c,
            rel_table(unknown),
            {(contact + 1, "relations.other"), (contact + 1, "relations.kind")},
        ),
        "relation without its mirror": (c, rel_table(without_mirror), {(child_row, "relations.kind")}),
        "self relation": (c, rel_table(self_loop), {(spouse + 1, "relations.other")}),
        "repeated relation": (c, rel_table([*rel, rel[contact]]), {(len(rel) + 1, "relations.kind")}),
        "unknown kind": (
            c,
            rel_table([{**x, "kind": "cousin"} if i == contact else x for i, x in enumerate(rel)]),
            {(contact + 1, "relations.kind")},
        ),
    }


@pytest.mark.parametrize(
    "case",
    ["unknown city", "sex against ID", "birth date against ID", "duplicate ID", "malformed ID", "duplicate ckey",
     "relation to unknown citizen", "relation without its mirror", "self relation", "repeated relation",
     "unknown kind"],
)  # fmt: skip
def test_each_kind_of_problem_is_named_by_row_and_field(store, case):
    p = small_pop()
    citizens, relations, want = _mutations(p)[case]
    before = snapshot(store)
    with pytest.raises(BatchRejected) as e:
        store.add_population(citizens, relations, case)
    got = {(x.row, x.field) for x in e.value.problems}
    assert want <= got, e.value
    assert snapshot(store) == before


@pytest.mark.parametrize("bad", ["11010519491231002", "110105194912310021", "11010519490231002X", "A1010519491231002X"])
def test_sql_id_messages_are_the_python_ones(store, bad):
    p = small_pop(n=20)
    with pytest.raises(BatchRejected) as e:
        store.add_population(set_value(p.citizens, "citizen_id", 0, bad), p.relations, "ids")
    assert e.value.problems[0].message == f"{bad!r}: {ids.problem(bad)}"


def test_a_required_value_left_empty_is_named_missing(store):
    """A required column present but empty in one row (a blank name, no sex) is that row's problem."""
    p = small_pop(n=20)
    citizens = set_value(set_value(p.citizens, "name", 2, ""), "sex", 5, None)
    with pytest.raises(BatchRejected) as e:
        store.add_population(citizens, p.relations, "blank")
    assert [str(x) for x in e.value.problems] == ["row 3, name: missing", "row 6, sex: missing"]
    assert store.con.execute("SELECT count(*) FROM citizens").fetchall() == [(0,)]


def test_missing_columns_and_unknown_citizens_in_an_existing_store(store):
    p = small_pop(n=30)
    with pytest.raises(BatchRejected, match="no column 'city'"):
        store.add_population(p.citizens.drop_columns(["city"]), p.relations, "x")
    store.add_population(p.citizens, p.relations, "x")
    with pytest.raises(BatchRejected, match="is already registered"):
        store.add_population(p.citizens, p.relations, "again")


# --------------------------------------------------------------------------- CLI


def test_cli_generate_stores_and_summarises(tmp_path):
    db = tmp_path / "pop.duckdb"
    args = ["population", "generate", "--city", "rongcheng=1500", "--city", "shanghai=500", "--seed", "7",
            "--db", str(db)]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    # the table is laid out to the terminal's width and may crop its cells; the summary line is never cut,
    # and the table's figures are checked through --json below
    assert "stored 2,000 citizens (ckeys 0–1,999) and " in r.stdout and f" relations in {db} in " in r.stdout
    r = runner.invoke(app, [*args, "--json"])  # the same seed again: new IDs around the stored ones
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["first_ckey"] == 2000 and {c["city"]: c["citizens"] for c in data["cities"]} == {
        "rongcheng": 1500,
        "shanghai": 500,
    }
    assert 10 <= data["cities"][0]["mean_contacts"] <= 20
    with Store(db) as s:
        n, distinct = s.con.execute("SELECT count(*), count(DISTINCT citizen_id) FROM citizens").fetchall()[0]
        assert n == distinct == 4000
        assert s.con.execute("SELECT count(*) FROM citizen_profiles").fetchall()[0][0] == 4000


@pytest.mark.parametrize(
    ("city", "message"),
    [("atlantis=10", "unknown city 'atlantis'"), ("rongcheng", "CITY=COUNT"), ("rongcheng=-3", "positive count")],
)
def test_cli_rejects_bad_cities(tmp_path, city, message):
    r = runner.invoke(app, ["population", "generate", "--city", city, "--db", str(tmp_path / "x.duckdb")])
    assert r.exit_code == 2
    assert message in r.stderr


# --------------------------------------------------------------------------- avatars


def test_avatar_is_deterministic_self_contained_svg():
    svg = avatar_svg(123456789)
    assert svg == avatar_svg(123456789)
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "href" not in svg and svg.count("http") == 1  # only the namespace: no links, no fonts, no CDN
    assert len({avatar_svg(s) for s in range(200)}) == 200
    assert face(5, sex="F").sex == "F" and face(5, sex="M").sex == "M"
    assert face(42, age=85).hair == HAIR_WHITE
    assert {face(s, age=65).hair for s in range(100)} >= {HAIR_GREY}
    for s in range(50):  # any seed, sex and age draws
        ET.fromstring(avatar_svg(s * 7919, sex="MF"[s % 2], age=18 + s))


# --------------------------------------------------------------------------- a million


@pytest.mark.slow
def test_a_million_citizens_generate_and_store(tmp_path):
    scale = SLOW_SCALE
    n = max(1000, int(1_000_000 * scale))
    big = generate_population({"rongcheng": n // 5, "shanghai": n - n // 5}, seed=1, start=START)
    assert len(big) == n
    assert pc.count_distinct(big.citizens["citizen_id"]).as_py() == n
    with Store(tmp_path / "m.duckdb") as s:
        s.init()
        s.add_population(big.citizens, big.relations, "million")
        assert s.con.execute("SELECT count(*), max(ckey) FROM citizens").fetchall() == [(n, n - 1)]
        assert s.con.execute("SELECT count(*) FROM relations").fetchall()[0][0] == big.relations.num_rows
