"""Error types and the CLI exit codes they map to.

Every failure the project raises on purpose is an ``MlopsError`` carrying the
exit code the ``mlops`` CLI returns for it, so the mapping lives in one place.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SYSTEM = 1
EXIT_USAGE = 2
#: A release gate said no: an outcome, not an error (``mlops run`` returns it).
EXIT_REJECTED = 3
EXIT_INVALID = 4


class MlopsError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = EXIT_SYSTEM


class UsageError(MlopsError):
    """Bad input or usage: a missing column, an unreadable URI, a bad parameter."""

    exit_code = EXIT_USAGE


class DataError(UsageError):
    """The data given cannot be used (empty, missing target, single class...)."""


class StoreError(MlopsError):
    """The object store could not be reached or answered with an error."""

    exit_code = EXIT_SYSTEM


class WriteConflict(StoreError):
    """A conditional write lost: the object changed (or appeared) since it was read."""


class VerificationError(MlopsError):
    """A trust check failed: bad signature, vulnerable or unknown audit, unsafe file."""

    exit_code = EXIT_INVALID
