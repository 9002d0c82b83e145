"""The environment fingerprint: everything about a machine that can change PyTorch's numbers.

``collect_fingerprint()`` returns a nested JSON-ready dict whose dotted keys
are registered in ``core.fields``; ``fingerprint_digest()`` hashes its
numerics-relevant part so equal environments group together;
``redact_environment()`` is the allowlist and credential filter for
environment variables.

Importing this package never loads torch (collectors import it when called),
and ``fingerprint_digest`` never needs it.
"""

from __future__ import annotations

from driftboard.core.fingerprint.collect import collect_fingerprint
from driftboard.core.fingerprint.digest import fingerprint_digest
from driftboard.core.fingerprint.environment import redact_environment

__all__ = ["collect_fingerprint", "fingerprint_digest", "redact_environment"]
