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


def exit_code_for_error_name(name: str) -> int:
    """The exit code of the error class named ``name``, as a traceback prints it.

    A failed pipeline task reports its exception only as text (the last line of
    the traceback in its log); this maps that name back to the exit code the
    CLI would have returned had the error been raised in-process.

    Args:
        name: ``mlops.core.errors.DataError`` or plain ``DataError``.

    Returns:
        The class's ``exit_code`` when ``name`` is an :class:`MlopsError` (sub)class
        (a qualified name must match its module too), otherwise :data:`EXIT_SYSTEM`.
    """
    module, _, bare = name.rpartition(".")
    pending: list[type[MlopsError]] = [MlopsError]
    while pending:
        cls = pending.pop()
        if cls.__name__ == bare and module in ("", cls.__module__):
            return cls.exit_code
        pending.extend(cls.__subclasses__())
    return EXIT_SYSTEM


def error_from_name(type_name: str, message: str) -> MlopsError:
    """The project error a child process reported by class name (a UsageError, a DataError...).

    A name that is not one of this module's :class:`MlopsError` classes becomes a
    plain :class:`MlopsError` (exit 1): a child never picks what the parent raises.
    """
    cls = globals().get(type_name)
    if isinstance(cls, type) and issubclass(cls, MlopsError):
        return cls(message)
    return MlopsError(message)
