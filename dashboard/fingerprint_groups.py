"""A run's fingerprint in the groups the README's "The fingerprint" names, as tables for the run page.

Labels and whether a field can change numbers come from the one registry
(``core/fields.py``); values are written as people write them
(``format.fmt_setting``: yes/no, ``–``, cuDNN 9.10.2). The two raw text blocks
(``torch.__config__.show()`` and ``parallel_info()``) are kept apart: they
read as code, not as a table cell. No Streamlit here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from driftboard.core import fields
from driftboard.dashboard.format import MISSING, fmt_setting, safe_text

# (title, top-level sections of the fingerprint), in the README's order.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("OS", ("os",)),
    ("Python", ("python",)),
    ("torch and its build", ("torch",)),
    ("numpy and packages", ("numpy", "packages")),
    ("CPU", ("cpu",)),
    ("GPU", ("gpu",)),
    ("Numerics settings", ("numerics",)),
    ("Environment variables", ("env",)),
    ("Identity", ("identity", "fingerprint_version")),
    ("collect_env report", ("source", "collect_env")),  # an imported run's own record of the report
)
OTHER = "Other"
RAW_TEXT = {"torch.config": "torch.__config__.show()", "torch.parallel_info": "torch.__config__.parallel_info()"}
COLUMNS = ("field", "value", "can change numbers", "key")

_SECTION = re.compile(r"^[^.\[]+")
_INDEX = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class FingerprintGroup:
    title: str
    frame: pd.DataFrame  # one row per field: COLUMNS
    raw: tuple[tuple[str, str], ...] = ()  # (what it is, its text) of the raw text blocks in this group

    @property
    def numerics(self) -> int:
        """How many of its fields can change numbers."""
        return int((self.frame["can change numbers"] == "yes").sum())


def fingerprint_groups(fingerprint: dict[str, Any]) -> list[FingerprintGroup]:
    """The fingerprint's fields grouped and ordered as the registry lists them; empty groups left out."""
    rows: dict[str, list[tuple[int, str, dict[str, str]]]] = {}
    raw: dict[str, list[tuple[str, str]]] = {}
    for key, value in fields.flatten(fingerprint or {}).items():
        title = group_of(key)
        if key in RAW_TEXT and isinstance(value, str):
            raw.setdefault(title, []).append((RAW_TEXT[key], value))
            continue
        row = {"field": field_label(key), "value": field_value(key, value),
               "can change numbers": "yes" if fields.is_numerics(key) else "no", "key": safe_text(key, 160)}
        rows.setdefault(title, []).append((fields.rank(key), key, row))
    titles = [title for title, _ in GROUPS] + [OTHER]
    return [FingerprintGroup(title, pd.DataFrame([r for _, _, r in sorted(rows.get(title, []), key=_order)],
                                                 columns=list(COLUMNS)), tuple(raw.get(title, ())))
            for title in titles if rows.get(title) or raw.get(title)]


def _order(item: tuple[int, str, dict[str, str]]) -> tuple[int, tuple[Any, ...]]:
    rank, key, _ = item
    return rank, tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key))  # device 2 before 10


def group_of(key: str) -> str:
    match = _SECTION.match(key)
    section = match.group(0) if match else key
    return next((title for title, sections in GROUPS if section in sections), OTHER)


def field_label(key: str) -> str:
    """The registry's label, naming the child of a wildcard field (``instruction set avx2``) and the device."""
    if key == "error" or key.endswith(".error"):
        return f"{key.removesuffix('.error') or 'fingerprint'}: could not be read"
    field = fields.field_for(key)
    if field is None:
        return safe_text(key.removeprefix("collect_env."), 160)
    label = field.label
    if field.key.endswith(".*"):
        label = f"{label} {key[len(field.key) - 1:]}"
    index = _INDEX.search(key)
    if index:
        label = f"{label} (device {index.group(1)})"
    return safe_text(label, 160)


def field_value(key: str, value: Any) -> str:
    if isinstance(value, dict) and not value:
        return "none recorded"
    if value is None and key.startswith("env."):
        return "not set"  # an allowlisted variable is recorded as None when it is not set
    return fmt_setting(value, key) or MISSING
