"""Which files of a model repository count: everything but version control, caches and venvs.

One rule for copying a folder, hashing it and listing its code, so a folder's digest
is the digest of its copy and a ``.venv`` next to the recipe is never shipped or linted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

#: Directories that are tooling state, not the recipe: never copied, hashed or checked.
IGNORED_DIRS = frozenset(
    {
        ".git",
        "__pycache__",
        ".venv",
        "venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".ipynb_checkpoints",
    }
)
#: A directory holding this file is a virtual environment, whatever its name.
VENV_MARKER = "pyvenv.cfg"


def is_ignored_dir(path: Path) -> bool:
    """Whether the directory ``path`` is tooling state (see :data:`IGNORED_DIRS`)."""
    return path.name in IGNORED_DIRS or (path / VENV_MARKER).is_file()


def iter_entries(root: Path) -> Iterator[Path]:
    """Every file and symlink below ``root`` that counts, as paths relative to ``root``, sorted.

    Symlinks are yielded as they are (never followed, a linked directory included), so
    a link cannot pull content from outside the tree into a copy, a digest or a check.
    """
    found: list[Path] = []
    for current, dirs, files in os.walk(root, followlinks=False):
        here = Path(current)
        kept = []
        for name in dirs:
            path = here / name
            if path.is_symlink():
                found.append(path.relative_to(root))
            elif not is_ignored_dir(path):
                kept.append(name)
        dirs[:] = kept
        found += [(here / name).relative_to(root) for name in files]
    yield from sorted(found, key=lambda path: path.as_posix())


def links_leaving(root: Path) -> list[str]:
    """Relative paths of the symlinks below ``root`` that point outside it (or loop)."""
    base = root.resolve()
    leaving = []
    for relative in iter_entries(root):
        path = root / relative
        if not path.is_symlink():
            continue
        try:
            target = path.resolve(strict=False)
        except (OSError, RuntimeError):  # a symlink loop
            leaving.append(relative.as_posix())
            continue
        if not target.is_relative_to(base):
            leaving.append(relative.as_posix())
    return leaving
