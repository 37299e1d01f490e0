"""Saving and loading sklearn models with skops and an explicit type allow-list.

The load path never touches pickle or joblib: a ``.skops`` file is a zip of JSON
descriptions, and skops only reconstructs the types it is told to trust. Before
loading, every type skops does not trust by default is vetted against
:data:`TRUSTED_TYPE_PREFIXES` / :data:`TRUSTED_TYPES`; anything else makes the
load fail with :class:`~mlops.core.errors.VerificationError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mlops.core.errors import UsageError, VerificationError

logger = logging.getLogger(__name__)

#: Module prefixes whose types may be reconstructed from a ``.skops`` file.
#: A prefix ends with a dot so that ``sklearn.`` does not match ``sklearnx``.
TRUSTED_TYPE_PREFIXES: tuple[str, ...] = (
    "sklearn.",
    "numpy.",
    "scipy.sparse.",
)

#: Individual fully qualified type names trusted in addition to the prefixes.
#: Only plain containers with no side effects on construction belong here.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "builtins.slice",
        "collections.OrderedDict",
        "collections.defaultdict",
    }
)

#: Prefixes refused even though a broader trusted prefix matches them: modules
#: that compile, run or fetch code, or exist only for testing.
DENIED_TYPE_PREFIXES: tuple[str, ...] = (
    "numpy.f2py",
    "numpy.distutils",
    "numpy.testing",
    "numpy.ctypeslib",
    "numpy.lib.npyio",
    "sklearn.utils._testing",
    "sklearn.externals",
    "sklearn.datasets",
)


def is_trusted_type(name: str, extra_trusted: Iterable[str] = ()) -> bool:
    """Tells whether a fully qualified type name is on the allow-list.

    Args:
        name: Fully qualified type name as reported by skops, e.g.
            ``"sklearn.tree._tree.Tree"``.
        extra_trusted: Exact type names the caller additionally trusts.

    Returns:
        True when the type may be reconstructed.
    """
    if name in set(extra_trusted):
        return True
    if name.startswith(DENIED_TYPE_PREFIXES):
        return False
    if name in TRUSTED_TYPES:
        return True
    return name.startswith(TRUSTED_TYPE_PREFIXES)


def untrusted_types(path: Path, extra_trusted: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """Lists the types in a skops file, split into vetted and refused ones.

    Only types skops itself does not trust by default are reported (skops
    always trusts plain builtins and numpy arrays).

    Args:
        path: The ``.skops`` file.
        extra_trusted: Exact type names the caller additionally trusts.

    Returns:
        ``(vetted, refused)``: sorted type names on / off the allow-list.

    Raises:
        UsageError: The file does not exist.
        VerificationError: The file is not a readable skops archive.
    """
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"model file not found: {path}")
    try:
        found = sio.get_untrusted_types(file=path)
    except Exception as exc:  # zipfile.BadZipFile, JSON errors, KeyError...
        raise VerificationError(f"{path} is not a valid skops file: {exc}") from exc
    extra = set(extra_trusted)
    vetted: list[str] = []
    refused: list[str] = []
    for name in sorted(found):
        (vetted if is_trusted_type(name, extra) else refused).append(name)
    return vetted, refused


def save_model(model: Any, path: Path) -> None:
    """Saves a fitted model with ``skops.io.dump``.

    Args:
        model: The fitted estimator (typically an sklearn ``Pipeline``).
        path: Destination ``.skops`` file; parent folders are created.
    """
    import skops.io as sio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path)
    logger.info("saved model to %s", path)


def load_model(path: Path, extra_trusted: Sequence[str] = ()) -> Any:
    """Loads a skops model after vetting every type it would reconstruct.

    Args:
        path: The ``.skops`` file.
        extra_trusted: Exact, fully qualified type names to trust on top of the
            module allow-list (for a deliberately reviewed custom class).

    Returns:
        The reconstructed model.

    Raises:
        UsageError: The file does not exist.
        VerificationError: The file holds types outside the allow-list, or is not
            a valid skops file.
    """
    import skops.io as sio

    path = Path(path)
    vetted, refused = untrusted_types(path, extra_trusted)
    if refused:
        raise VerificationError(f"refusing to load {path}: untrusted type(s) {', '.join(refused)}")
    if vetted:
        logger.debug("trusting vetted types for %s: %s", path, vetted)
    try:
        return sio.load(path, trusted=vetted)
    except Exception as exc:
        raise VerificationError(f"could not load {path} with skops: {exc}") from exc
