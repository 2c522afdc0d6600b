"""Text from outside (names, IDs, reasons, command-line arguments): valid Unicode, of bounded length.

Python can hold strings no UTF-8 encoder accepts — a lone surrogate from a JSON escape (`"\\ud800"`) or
from an undecodable command-line byte — and they fail wherever the text is next written (the store, a
response, a terminal). Every door checks its text here before any work, and names the field.
"""

from __future__ import annotations

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


def is_unicode(value: str) -> bool:
    return problem(value) is None
