"""Text from untrusted places made inert for every place it is shown.

A bundle's label, note, tags and fingerprint values reach terminals (where
ESC and OSC sequences recolour, retitle or hide output), JUnit XML (where C0
controls make the file invalid) and CSV and HTML exports. Control characters,
lone surrogates and the two non-characters are replaced by their visible
escape (``\\x1b``), once, where the text enters; ``\\n`` and ``\\t`` stay.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def inert(text: str) -> str:
    """``text`` with every control character (but newline and tab) shown as its escape."""
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def json_text_is_inert(text: str) -> bool:
    """Whether every string strict ``json.loads`` decodes from ``text`` is inert already, so a reader may
    skip ``inert``: no ``\\u`` escape (the only way to write a surrogate or, inside a string, a C0 control)
    and no other unsafe character written as itself. (Strict parsing refuses raw C0 controls in strings.)"""
    if "\\u" in text:
        return False
    if text.isascii():  # O(1) in CPython; DEL is then the one unsafe character a string may hold raw
        return "\x7f" not in text
    return not _UNSAFE.search(text)


def one_line(text: str, limit: int = 160) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...), @SUM(...)).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A text cell for CSV export that a spreadsheet shows rather than runs (numbers pass unchanged)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
