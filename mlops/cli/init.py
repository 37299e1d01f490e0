"""``mlops init DIR``: a new model repository from the template shipped with the package.

The template (``mlops/scaffold/``, package data) is a working repository: ``mlops.yaml``
with the model's name and label column, ``train.py`` with ``build_model(params)``,
``requirements.txt``, its own unit tests, a ``.gitignore`` and a GitHub Actions
workflow that trains, gates and releases the model on every push. Hidden files are
stored without their dot (``gitignore``, ``github/``) so they do not act on this
project's own checkout.

The template lives outside ``mlops/recipes/`` so ``builtin:<name>`` can never pick it.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess  # nosec B404 - runs git with a fixed argv
from pathlib import Path
from typing import Any

from mlops.core.errors import EXIT_OK, MlopsError, UsageError

logger = logging.getLogger(__name__)

#: Package-data folder of the template, below the ``mlops`` package.
SCAFFOLD = "scaffold"
#: Template names of the files that are hidden in a repository.
HIDDEN = {"gitignore": ".gitignore", "github": ".github"}
#: The placeholders of the template's ``mlops.yaml``.
NAME_PLACEHOLDER = "__NAME__"
TARGET_PLACEHOLDER = "__TARGET__"
DEFAULT_TARGET = "label"
COMMIT_MESSAGE = "Model repository from mlops init"
GIT_TIMEOUT_SECONDS = 60


def template_files() -> dict[str, bytes]:
    """The template's files by their path in a new repository (``.gitignore``, ``.github/...``)."""
    from importlib.resources import files

    root = files("mlops").joinpath(SCAFFOLD)
    found: dict[str, bytes] = {}
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        for entry in folder.iterdir():
            if entry.name == "__pycache__" or entry.name.endswith(".pyc"):
                continue
            name = HIDDEN.get(entry.name, entry.name) if not prefix else entry.name
            if entry.is_dir():
                pending.append((entry, f"{prefix}{name}/"))
            else:
                found[f"{prefix}{name}"] = entry.read_bytes()
    if "mlops.yaml" not in found:
        raise MlopsError(f"the package's repository template ({SCAFFOLD}/) is incomplete")
    return found


def render_config(template: str, name: str, target: str) -> str:
    """The template's ``mlops.yaml`` with the model name and label column filled in.

    Both are written as JSON strings, which YAML reads back as the same text whatever
    they hold (``yes``, ``1``, ``a: b`` would otherwise change meaning).
    """
    return template.replace(NAME_PLACEHOLDER, json.dumps(name)).replace(
        TARGET_PLACEHOLDER, json.dumps(target)
    )


def check_destination(dest: Path) -> None:
    """Refuses a destination that exists and is not an empty folder.

    Raises:
        UsageError: ``dest`` is a file, or a folder with anything in it.
    """
    if not dest.exists():
        return
    if not dest.is_dir():
        raise UsageError(f"{dest} exists and is not a folder")
    if any(dest.iterdir()):
        raise UsageError(f"{dest} is not empty; mlops init writes only into a new or empty folder")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(  # nosec B603 B607 - fixed argv, no shell; git from PATH
            ["git", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError:
        raise UsageError("--git: git is not installed (not found on PATH)") from None


def check_git_identity(cwd: Path) -> None:
    """Fails before anything is written when git could not make a commit.

    Raises:
        UsageError: git is missing, or it has no author identity (``user.name``/``user.email``).
    """
    done = _git(cwd, "var", "GIT_COMMITTER_IDENT")
    if done.returncode != 0:
        raise UsageError(
            "--git: git has no identity to commit with; set user.name and user.email "
            f"(git config --global ...): {done.stderr.strip()[:300]}"
        )


def commit_repository(repo: Path) -> str:
    """``git init`` on branch ``main``, add everything and commit; returns the commit's SHA.

    ``main`` because the workflow releases pushes to it (``symbolic-ref``, not
    ``init -b``, which git before 2.28 lacks).

    Raises:
        MlopsError: a git command failed (its message included).
    """
    for args in (
        ("init", "-q"),
        ("symbolic-ref", "HEAD", "refs/heads/main"),
        ("add", "-A"),
        ("commit", "-q", "--no-verify", "-m", COMMIT_MESSAGE),
        ("rev-parse", "HEAD"),
    ):
        done = _git(repo, *args)
        if done.returncode != 0:
            raise MlopsError(f"git {args[0]} failed in {repo}: {done.stderr.strip()[:500]}")
    return done.stdout.strip()


def write_repository(dest: Path, name: str, target: str) -> list[str]:
    """Writes the template into ``dest`` (new or empty); returns the paths written, sorted.

    A failure part-way removes what was written, so no half-made repository is left.

    Raises:
        UsageError: ``dest`` is not new or empty (see :func:`check_destination`).
    """
    check_destination(dest)
    files = template_files()
    files["mlops.yaml"] = render_config(files["mlops.yaml"].decode("utf-8"), name, target).encode()
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        for relative, content in files.items():
            path = dest / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    except BaseException:
        _remove_contents(dest, remove_folder=created)
        raise
    return sorted(files)


def _remove_contents(folder: Path, remove_folder: bool) -> None:
    """Removes what this command wrote into ``folder`` (it was new or empty)."""
    if remove_folder:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def cmd_init(args: argparse.Namespace) -> int:
    """Writes a new model repository into ``args.dir``; with ``--git``, commits it."""
    from mlops.model.registry import validate_model_name

    dest = Path(args.dir)
    name = args.name if args.name is not None else dest.resolve().name
    try:
        validate_model_name(name)
    except UsageError as exc:
        hint = "" if args.name is not None else " (the folder's name; give --name)"
        raise UsageError(f"--name: {exc}{hint}") from None
    target = args.target.strip()
    if not target:
        raise UsageError("--target must name the label column")
    check_destination(dest)
    if args.git:
        check_git_identity(_existing_parent(dest))
    written = write_repository(dest, name, target)
    commit = commit_repository(dest) if args.git else None
    logger.info("wrote %d files to %s", len(written), dest)
    _report(args, dest, name, target, written, commit)
    return EXIT_OK


def _report(
    args: argparse.Namespace,
    dest: Path,
    name: str,
    target: str,
    written: list[str],
    commit: str | None,
) -> None:
    if args.json:
        from mlops.cli.common import emit_json

        emit_json(
            {
                "status": "created",
                "path": str(dest),
                "name": name,
                "target": target,
                "files": written,
                "commit": commit,
            }
        )
        return
    print(f"model repository {name!r} (label column {target!r}) in {dest}:")
    for relative in written:
        print(f"  {relative}")
    if commit:
        print(f"committed {commit}")
    print(
        "next: edit train.py, run its tests (python -m pytest), then train it with\n"
        f"  mlops run training -p recipe_uri={dest} -p data_uri=DATA -p holdout_uri=HOLDOUT"
    )


def _existing_parent(path: Path) -> Path:
    """The nearest folder of ``path`` that exists (git runs there before ``path`` is made)."""
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return candidate
    return Path.cwd()


def register(subparsers: Any) -> None:
    """Adds ``init``."""
    init = subparsers.add_parser(
        "init", help="write a new model repository (mlops.yaml, train.py, tests, CI workflow)"
    )
    init.add_argument("dir", help="folder to create (must be new or empty)")
    init.add_argument(
        "--name", help="model name (lowercase letters, digits, '-'); default: the folder's name"
    )
    init.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        help=f"label column of the training data (default: {DEFAULT_TARGET})",
    )
    init.add_argument("--git", action="store_true", help="git init and commit the files")
    init.add_argument("--json", action="store_true", help="print one JSON object with the result")
    init.set_defaults(func=cmd_init, needs_store=False)
