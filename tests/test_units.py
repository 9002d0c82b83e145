"""``core.units.fmt_bytes``: one way to show a size, never broken across lines."""

from __future__ import annotations

import pytest

from driftboard.core.bundle import DEFAULT_LIMITS, Limits
from driftboard.core.units import NBSP, fmt_bytes


@pytest.mark.parametrize(("n", "shown"), [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (85_197, "83.2 KiB"), (159_744, "156 KiB"),
    (1024 * 1024 - 1, "1.0 MiB"), (1_468_006, "1.4 MiB"), (64 * 2**20, "64.0 MiB"), (3 * 2**40, "3.0 TiB"),
])
def test_sizes_in_binary_units_with_a_no_break_space(n, shown):
    assert fmt_bytes(n) == shown.replace(" ", NBSP)
    assert " " not in fmt_bytes(n)  # an ordinary space is a place to wrap


def test_the_upload_cap_comes_from_the_bundle_limits():
    assert DEFAULT_LIMITS.upload_mb * 2**20 == DEFAULT_LIMITS.file_bytes
    assert Limits(file_bytes=1000).upload_mb == 1  # never 0: Streamlit would refuse every file
