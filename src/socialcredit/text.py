"""Text from outside (names, IDs, reasons, command-line arguments): valid Unicode, of bounded length.

Python can hold strings no UTF-8 encoder accepts — a lone surrogate from a JSON escape (`"\\ud800"`) or
from an undecodable command-line byte — and they fail wherever the text is next written (the store, a
response, a terminal). Every door checks its text here before any work, and names the field.

And text for people: `plain` writes a value from the core (a record's attributes, a rulebook's field) the
way a rulebook author writes it, not as Python prints it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def problem(value: Any, max_length: int | None = None) -> str | None:
    """Why `value` is not acceptable text, or None."""
    if not isinstance(value, str):
        return f"not text: {value!r}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid Unicode text (a lone surrogate or an undecodable byte)"
    if max_length is not None and len(value) > max_length:
        return f"longer than {max_length} characters"
    return None


def plain(value: Any, nested: bool = False) -> str:
    """`value` as a person reads it: mappings as `key=value` (unset keys left out), lists comma-separated,
    true/false and dates as YAML writes them, nothing as `—`; a text with spaces inside a mapping is quoted
    so `when="days_late >= 90"` reads as one value."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        inner = " ".join(f"{k}={plain(v, True)}" for k, v in value.items() if v is not None)
        return f"({inner})" if nested else inner
    if isinstance(value, (list, tuple)):
        if not value:
            return "none"
        inner = ", ".join(plain(v, True) for v in value)
        return f"[{inner}]" if nested else inner
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # an attribute stored as a number: 1, not 1.0, as the record said
    text = str(value)
    return f'"{text}"' if not text or (nested and any(c.isspace() for c in text)) else text
