"""``--anonymize`` beyond the identity section: the user and host names out of every path.

Hashing ``identity.user`` alone leaves ``/home/alice/.venv/bin/python`` in
``python.executable``, ``/tmp/torchinductor_alice`` in an allowlisted
variable and ``/home/alice/…`` in a collector's error. Every string of the
fingerprint that holds a path has each name, where it stands alone (bounded by
non-alphanumerics), replaced by the hash ``identity`` records for it, so the
path still reads as a path and one machine's paths still compare equal.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

# Windows compares user and machine names case-insensitively; POSIX does not.
_FLAGS = re.IGNORECASE if sys.platform == "win32" else 0


def anonymize_paths(value: Any, names: Mapping[str, str]) -> Any:
    """``value`` (a JSON-like fingerprint) with each key of ``names`` replaced by its value inside path strings."""
    names = {name: hashed for name, hashed in names.items() if name}
    if not names:
        return value
    by_name = {name.casefold() if _FLAGS else name: hashed for name, hashed in names.items()}
    alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", _FLAGS)

    def replace(match: re.Match[str]) -> str:
        return by_name[match[0].casefold() if _FLAGS else match[0]]

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return pattern.sub(replace, item) if "/" in item or "\\" in item else item
        if isinstance(item, dict):
            return {walk(k): walk(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return type(item)(walk(v) for v in item)
        return item

    return walk(value)
