"""The environment fingerprint: everything about a machine that can change PyTorch's numbers.

``collect_fingerprint()`` returns a nested JSON-ready dict whose dotted keys
are registered in ``core.fields``; ``fingerprint_digest()`` hashes its
numerics-relevant part so equal environments group together;
``redact_environment()`` is the allowlist and credential filter for
environment variables.

Importing this package never loads torch (collectors import it when called),
and ``fingerprint_digest`` never needs it. The three names load their modules
on first use (PEP 562): the NVML child process imports ``fingerprint.nvml``
alone, without every collector's imports (70 ms of its start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftboard.core.fingerprint.collect import collect_fingerprint
    from driftboard.core.fingerprint.digest import fingerprint_digest
    from driftboard.core.fingerprint.environment import redact_environment

__all__ = ["collect_fingerprint", "fingerprint_digest", "redact_environment"]
_MODULES = {"collect_fingerprint": "collect", "fingerprint_digest": "digest", "redact_environment": "environment"}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
