"""The bundled sample: a few synthetic citizens per city and hand-written records.

Each citizen is there to show one part of the seed working: a court defaulter whose child is turned
away by a private school, a guarantor who loses points in Rongcheng but would not in Shanghai, a
model citizen on the honour roll, passengers banned from trains and flights, a jaywalker caught by a
camera network, a contact of blacklisted people hit by the network rule. Names are invented.
"""

from __future__ import annotations

import datetime as dt

from socialcredit.ids import make_id
from socialcredit.store import IngestReport, Store

REGION = {
    "rongcheng": "371082",
    "shanghai": "310101",
    "beijing": "110101",
    "qingzhen": "520181",
    "guangzhou": "440106",
    "shenzhen": "440304",
}

# key, name, latin name, sex, birth date, city, parents, spouse, contacts
PEOPLE = [
    ("zhang_wei", "张伟", "Zhang Wei", "M", "1978-04-12", "rongcheng", [], "li_xia", ["liu_yang", "chen_jing"]),
    ("li_xia", "李霞", "Li Xia", "F", "1980-09-03", "rongcheng", [], "zhang_wei", []),
    ("zhang_xiaoming", "张小明", "Zhang Xiaoming", "M", "2013-06-21", "rongcheng", ["zhang_wei", "li_xia"], None, []),
    ("liu_yang", "刘洋", "Liu Yang", "M", "1975-01-30", "rongcheng", [], None, ["zhang_wei"]),
    ("chen_jing", "陈静", "Chen Jing", "F", "1986-11-08", "rongcheng", [], None, ["zhang_wei"]),
    ("li_na", "李娜", "Li Na", "F", "1969-02-14", "shanghai", [], None, []),
    ("wang_fang", "王芳", "Wang Fang", "F", "1990-07-19", "shanghai", [], None, []),
    ("zhao_lei", "赵磊", "Zhao Lei", "M", "1984-03-05", "shanghai", [], None, ["hu_yan"]),
    ("sun_li", "孙丽", "Sun Li", "F", "1972-12-01", "beijing", [], None, []),
    ("zhou_jie", "周杰", "Zhou Jie", "M", "1992-05-27", "beijing", [], None, []),
    ("wu_min", "吴敏", "Wu Min", "F", "2001-08-15", "qingzhen", [], None, []),
    ("xu_hui", "徐辉", "Xu Hui", "M", "1965-10-10", "qingzhen", [], None, []),
    ("ma_chao", "马超", "Ma Chao", "M", "1988-01-22", "guangzhou", [], None, []),
    ("hu_yan", "胡燕", "Hu Yan", "F", "1995-04-04", "guangzhou", [], None, ["zhao_lei", "lin_mei"]),
    ("guo_qiang", "郭强", "Guo Qiang", "M", "1999-09-09", "shenzhen", [], None, ["lin_mei"]),
    ("lin_mei", "林梅", "Lin Mei", "F", "1993-06-30", "shenzhen", [], None, ["guo_qiang", "hu_yan", "zhang_wei"]),
]

# key, behaviour, CST time, agency, attributes
RECORDS = [
    ("zhang_wei", "unpaid_debt", "2025-03-10 09:00", "commercial_banks", {"amount": 180000, "days_late": 200}),
    (
        "zhang_wei",
        "court_defaulter_listing",
        "2025-06-02 10:30",
        "local_peoples_court",
        {"ground": 1, "amount": 180000, "term_days": 0},
    ),
    ("liu_yang", "guarantee_default", "2025-06-20 15:00", "commercial_banks", {"amount": 180000}),
    ("chen_jing", "heroic_act", "2026-02-11 18:00", "neighbourhood_committee", {}),
    ("chen_jing", "blood_donation", "2026-03-01 10:00", "blood_donation_centre", {"volume_ml": 400}),
    ("chen_jing", "volunteer_work", "2026-04-05 09:00", "volunteer_association", {"hours": 8}),
    ("chen_jing", "volunteer_work", "2026-05-03 09:00", "volunteer_association", {"hours": 8}),
    ("chen_jing", "volunteer_work", "2026-06-07 09:00", "volunteer_association", {"hours": 8}),
    ("chen_jing", "charity_donation", "2026-07-01 12:00", "payment_platform", {"amount": 20000}),
    ("chen_jing", "party_loyalty", "2026-07-01 15:00", "party_committee", {}),
    ("chen_jing", "blood_donation", "2026-08-12 10:00", "blood_donation_centre", {"volume_ml": 400}),
    ("li_na", "neglecting_parents", "2026-01-15 11:00", "local_peoples_court", {}),
    ("wang_fang", "visiting_parents", "2026-02-01 10:00", "neighbourhood_committee", {}),
    ("wang_fang", "blood_donation", "2026-03-12 10:00", "blood_donation_centre", {"volume_ml": 400}),
    ("wang_fang", "volunteer_work", "2026-04-20 09:00", "volunteer_association", {"hours": 8}),
    ("wang_fang", "charity_donation", "2026-05-20 09:00", "payment_platform", {"amount": 12000}),
    ("wang_fang", "party_loyalty", "2026-07-01 15:00", "party_committee", {}),
    ("zhao_lei", "disruptive_flight_behaviour", "2026-05-18 20:40", "caac_airlines", {"severity": 4}),
    ("sun_li", "guarantee_default", "2026-01-09 10:00", "commercial_banks", {"amount": 50000}),
    ("zhou_jie", "late_bill_payment", "2026-01-20 08:00", "state_grid", {"amount": 640, "days_late": 95}),
    ("zhou_jie", "late_bill_payment", "2026-04-20 08:00", "state_grid", {"amount": 610, "days_late": 190}),
    ("zhou_jie", "late_cancellation", "2026-06-03 19:00", "reservation_platform", {"notice_hours": 1}),
    ("wu_min", "excessive_gaming", "2026-03-08 23:00", "gaming_platform", {"hours": 13}),
    (
        "wu_min",
        "undesirable_online_post",
        "2026-04-09 22:00",
        "cyberspace_administration",
        {"shares": 800, "views": 12000},
    ),
    ("xu_hui", "volunteer_work", "2026-05-01 09:00", "volunteer_association", {"hours": 4}),
    ("ma_chao", "littering", "2026-02-02 13:00", "neighbourhood_committee", {}),
    ("ma_chao", "illegal_rental", "2026-03-02 13:00", "neighbourhood_committee", {}),
    ("hu_yan", "smoking_on_train", "2026-08-08 14:10", "china_railway", {}),
    (
        "guo_qiang",
        "red_light_crossing",
        "2026-01-05 08:01",
        "traffic_camera_network",
        {"site": "SZ-FT-0107", "camera": "cam-0107-a"},
    ),
    (
        "guo_qiang",
        "red_light_crossing",
        "2026-02-16 08:03",
        "traffic_camera_network",
        {"site": "SZ-FT-0107", "camera": "cam-0107-b"},
    ),
    (
        "guo_qiang",
        "red_light_crossing",
        "2026-03-21 18:12",
        "traffic_camera_network",
        {"site": "SZ-FT-0212", "camera": "cam-0212-a"},
    ),
    ("guo_qiang", "drunk_driving", "2026-04-30 23:50", "traffic_police", {"severity": 3}),
    (
        "guo_qiang",
        "red_light_crossing",
        "2026-08-25 07:58",
        "traffic_camera_network",
        {"site": "SZ-FT-0107", "camera": "cam-0107-a"},
    ),
]


def citizen_ids() -> dict[str, str]:
    out = {}
    for n, (key, _name, _latin, sex, born, city, *_rest) in enumerate(PEOPLE):
        seq = 100 + 2 * n + (1 if sex == "M" else 0)
        out[key] = make_id(REGION[city], dt.date.fromisoformat(born), seq)
    return out


def citizens() -> list[dict[str, object]]:
    ids = citizen_ids()
    return [
        {
            "citizen_id": ids[k],
            "name": name,
            "name_latin": latin,
            "sex": sex,
            "birth_date": born,
            "city": city,
            "parents": [ids[p] for p in parents],
            "spouse": ids[spouse] if spouse else None,
            "contacts": [ids[c] for c in contacts],
        }
        for k, name, latin, sex, born, city, parents, spouse, contacts in PEOPLE
    ]


def records() -> list[dict[str, object]]:
    ids = citizen_ids()
    return [
        {
            "record_id": f"sample-{i:03d}",
            "citizen_id": ids[k],
            "behaviour": b,
            "occurred_at": f"{t}:00+08:00",
            "reported_by": agency,
            "attributes": attrs,
        }
        for i, (k, b, t, agency, attrs) in enumerate(RECORDS, start=1)
    ]


def load_sample(store: Store) -> tuple[int, IngestReport]:
    """Idempotent: citizens already registered are kept, records already stored are reported."""
    known = {c for (c,) in store.con.execute("SELECT citizen_id FROM citizens").fetchall()}
    fresh = [c for c in citizens() if c["citizen_id"] not in known]
    if fresh:
        # spouses and contacts point at each other, so the sample goes in as one batch
        store.add_citizens(fresh, source="sample")
    return len(PEOPLE), store.ingest(records(), name="sample records")
