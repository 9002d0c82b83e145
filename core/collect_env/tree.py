"""The fingerprint being built, and which report lines fed its registered keys."""

from __future__ import annotations

import re
from typing import Any

from driftboard.core.fields import field_for

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class Tree:
    """A nested fingerprint dict written by dotted key (``gpu.devices[0].name``).

    Every write names the report lines it came from; a line counts as mapped
    when it fed at least one key of the registry in ``core.fields``.
    """

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.mapped: set[int] = set()
        self.origin: dict[str, tuple[int, ...]] = {}

    def set(self, key: str, value: Any, *lines: int) -> None:
        parts = [m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _PART.finditer(key)]
        node: Any = self.root
        for part, after in zip(parts, parts[1:], strict=False):
            node = self._child(node, part, [] if isinstance(after, int) else {})
        last = parts[-1]
        if isinstance(last, int):
            node.extend([None] * (last + 1 - len(node)))
        node[last] = value
        if lines:
            self.origin[key] = lines
            if field_for(key) is not None:
                self.mapped.update(lines)

    def has(self, key: str) -> bool:
        return key in self.origin

    @staticmethod
    def _child(node: Any, part: str | int, empty: Any) -> Any:
        if isinstance(part, int):
            node.extend([None] * (part + 1 - len(node)))
            if node[part] is None:
                node[part] = empty
            return node[part]
        return node.setdefault(part, empty)
