"""Synthetic 18-character resident IDs: region code, birth date, sequence and check character.

The check character is ISO 7064 MOD 11-2, as on real IDs, so malformed IDs are caught at the door.
The IDs are generated for synthetic citizens only; nothing here looks anyone up.
"""

from __future__ import annotations

import datetime as dt
import re

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"
PATTERN = re.compile(r"^[1-8][0-9]{5}(19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9X]$")


def check_char(first17: str) -> str:
    return CHECK[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


def make_id(region_code: str, birth_date: dt.date, sequence: int) -> str:
    """Sequence 0–999; odd for men, even for women, as on real IDs."""
    body = f"{region_code}{birth_date:%Y%m%d}{sequence:03d}"
    return body + check_char(body)


def problem(resident_id: str) -> str | None:
    """Why this is not a well-formed resident ID, or None if it is."""
    if not isinstance(resident_id, str) or len(resident_id) != 18:
        return "a resident ID has 18 characters"
    if not PATTERN.match(resident_id):
        return "a resident ID is 6-digit region, 8-digit birth date, 3-digit sequence, check character"
    try:
        dt.date(int(resident_id[6:10]), int(resident_id[10:12]), int(resident_id[12:14]))
    except ValueError:
        return "the birth date inside the resident ID does not exist"
    if check_char(resident_id[:17]) != resident_id[17]:
        return f"wrong check character (expected {check_char(resident_id[:17])})"
    return None


def birth_date_of(resident_id: str) -> dt.date:
    return dt.date(int(resident_id[6:10]), int(resident_id[10:12]), int(resident_id[12:14]))


def sex_of(resident_id: str) -> str:
    return "M" if int(resident_id[16]) % 2 else "F"
