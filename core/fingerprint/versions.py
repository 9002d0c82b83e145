"""Version numbers as people write them, for values libraries report as integers.

Pure functions: the fingerprint collectors, the ``collect_env`` importer and
every display of a fingerprint share them without loading the capture path.
"""

from __future__ import annotations


def cudnn_version(value: int) -> str:
    """torch.backends.cudnn.version() (90100, or 8902 before cuDNN 9) as "9.1.0"."""
    if value >= 90000:
        return f"{value // 10000}.{value % 10000 // 100}.{value % 100}"
    return f"{value // 1000}.{value % 1000 // 100}.{value % 100}"
