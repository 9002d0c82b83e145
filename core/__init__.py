"""driftboard core: fingerprint, reference suite, capture, bundle format, comparison.

Importing ``core`` or any module but the capture path never loads torch.
"""

__version__ = "0.1.0"
