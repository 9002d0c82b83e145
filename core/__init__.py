"""The core library: fingerprint, reference suite, capture, bundle format, comparison.

It imports nothing from ``driftboard.db``, ``driftboard.dashboard`` or
``driftboard.cli`` (checked in CI), and only the capture path loads torch.
"""
