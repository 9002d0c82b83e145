"""Errors a user can cause, each with a one-line message.

The CLI prints ``str(err)`` and exits non-zero; the dashboard shows it with
``st.error``. Anything that is not a ``DriftboardError`` is a bug and keeps its
traceback.
"""

from __future__ import annotations


class DriftboardError(Exception):
    """Base of every error caused by input, configuration or environment."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        # One line, always: the CLI and the dashboard show it as is.
        super().__init__(" ".join(str(message).split()))


class BundleError(DriftboardError):
    """A run bundle is not valid; the message names the field and what was expected."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"invalid bundle: {field}: {problem}")


class BundleTooLargeError(BundleError):
    """A bundle (or a part of it) exceeds a size bound, compressed or not."""


class BundleVersionError(BundleError):
    """A bundle's schema_version is unknown or newer than this driftboard."""


class BundleIntegrityError(BundleError):
    """Bytes do not match their declared sha256, dtype or shape."""


class PolicyError(DriftboardError):
    """A tolerance policy string cannot be parsed."""


class ReportParseError(DriftboardError):
    """Text is not a ``collect_env`` report."""


class StoreError(DriftboardError):
    """The database refused an operation or cannot be used."""


class SchemaOutOfDateError(StoreError):
    """The database is at an older or unknown migration revision."""


class NotFoundError(DriftboardError):
    """A run, machine or golden asked for does not exist."""


class ExplanationError(DriftboardError):
    """A ``driftboard.explanation`` document sent to be kept is not one: not JSON, or not matching its schema."""


class CaseError(DriftboardError):
    """A case of the team's own models is declared with something driftboard cannot use."""


class CasesFileError(DriftboardError):
    """A cases file or a ``--model`` factory cannot be found or imported; the message names the file and line."""


class OutputError(DriftboardError):
    """A file driftboard was asked to write cannot be written (read-only place, full disk, a directory)."""

    def __init__(self, path: object, exc: OSError) -> None:
        reason = exc.strerror or type(exc).__name__
        super().__init__(f"cannot write {path}: {reason}")
