"""The rulebooks the oracle test runs: small, but with every feature the model covers.

A national layer; `testcity` in two versions (the second, from 1 July 2022 CST, doubles a late payment's
points and gives volunteering more); `othercity` overrides one rule and removes another. Caps per CST
year, quarter and month; rules that add up with different terms; a court-listing characteristic with a term
that lists (trigger) and costs points; the network rule; grade lists with a minimum stay; a 180-day
behaviour trigger; a measure that lasts only a year from entry; measures that reach children; memory.
The base score (100, grade B) is on no list, so months before the first record change nothing.
"""

from __future__ import annotations

import datetime as dt

NATIONAL = """\
jurisdiction: national
name: Nation
level: national
version: 1
effective_from: 2020-01-01
source: illustrative
scale: {base: 100, min: 0, max: 200}
grades:
  - {grade: A, min: 120}
  - {grade: B, min: 60}
  - {grade: C, min: 30}
  - {grade: D, min: 0}
rules:
  - {id: late.mild, behaviour: late_bill_payment, when: "days_late >= 30 and days_late < 90", points: -10,
     valid_for: 1y, source: illustrative}
  - {id: late.severe, behaviour: late_bill_payment, when: "days_late >= 90", points: -40, valid_for: 1y,
     source: illustrative}
  - {id: late.flag, behaviour: late_bill_payment, points: -3, valid_for: 3m, source: illustrative}
  - {id: volunteer, behaviour: volunteer_work, points: 5, valid_for: 2y, source: illustrative}
  - {id: volunteer.long, behaviour: volunteer_work, when: "hours between 8 and 24", points: 2, valid_for: 2y,
     source: illustrative}
  - {id: donation, behaviour: charity_donation, when: "amount >= 100", points: 3, valid_for: 1y,
     source: illustrative}
  - {id: gaming, behaviour: excessive_gaming, when: "hours >= 3", points: -4, valid_for: 6m, source: illustrative}
  - {id: smoking, behaviour: smoking_on_train, points: -10, valid_for: 1y, source: illustrative}
  - {id: court_defaulter, characteristic: court_defaulter, points: -50, source: illustrative}
  - {id: court_defaulter.large, characteristic: court_defaulter, when: "amount >= 1000000", points: -20,
     source: illustrative}
  - {id: contacts.some, characteristic: blacklisted_contacts, when: "share >= 0.3 and share < 0.6", points: -4,
     source: illustrative}
  - {id: contacts.most, characteristic: blacklisted_contacts, when: "share >= 0.6", points: -9,
     source: illustrative}
caps:
  - {id: volunteer.cap, behaviour: volunteer_work, per: year, max: 14, source: illustrative}
  - {id: donation.cap, behaviour: charity_donation, per: month, max: 3, source: illustrative}
  - {id: gaming.cap, behaviour: excessive_gaming, per: quarter, min: -8, source: illustrative}
lists:
  - id: blacklist
    kind: blacklist
    label: Blacklist
    grades: [D]
    triggers:
      - {characteristic: court_defaulter, when: "ground in (1, 2)"}
    min_stay: 3m
    measures: [air_ban, {measure: rail_ban, for: 1m}, children_education_restriction]
    source: illustrative
  - id: rail_list
    kind: blacklist
    label: Rail ban
    triggers:
      - {behaviour: smoking_on_train, duration: 180d}
    measures: [rail_ban]
    source: illustrative
  - id: watch
    kind: blacklist
    label: Watch list
    grades: [C]
    measures: [job_deprioritised]
    source: illustrative
  - id: whitelist
    kind: whitelist
    label: Honour roll
    grades: [A]
    measures: [hospital_priority, private_school_access]
    source: illustrative
memory:
  - {id: once, after: blacklist, never_lists: [whitelist], measures: [gov_post_ban_permanent], source: illustrative}
"""

TESTCITY_1 = """\
jurisdiction: testcity
name: Test City
level: city
extends: national
region_code: "371082"
version: 1
effective_from: 2020-01-01
source: illustrative
"""

TESTCITY_2 = """\
jurisdiction: testcity
name: Test City
level: city
extends: national
region_code: "371082"
version: 2
effective_from: 2022-07-01
source: illustrative
rules:
  - {id: late.severe, behaviour: late_bill_payment, when: "days_late >= 90", points: -80, valid_for: 1y,
     source: illustrative}
  - {id: volunteer, behaviour: volunteer_work, points: 7, valid_for: 1y, source: illustrative}
"""

OTHERCITY = """\
jurisdiction: othercity
name: Other City
level: city
extends: national
region_code: "371083"
version: 1
effective_from: 2020-01-01
source: illustrative
rules:
  - {id: late.mild, behaviour: late_bill_payment, when: "days_late >= 30 and days_late < 90", points: -15,
     valid_for: 6m, source: illustrative}
remove:
  rules: [late.flag]
"""

LAYERS = (NATIONAL, TESTCITY_1, TESTCITY_2, OTHERCITY)
CHANGE = dt.date(2022, 7, 1)
