"""Shared helpers for the training tests: real data, real keys, real artifacts, the real CLI.

Nothing here mocks the store or the pipeline: data comes from datasets that
ship inside scikit-learn, keys are generated with ``mlops.trust.signing``, KFP
artifacts are ``kfp.dsl`` objects whose ``uri`` is a local path (for a local
path, ``artifact.path`` is the ``uri`` itself), and the CLI runs as
``python -m mlops.cli`` in a subprocess of the test interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET = "diagnosis"
MODEL_NAME = "breast-cancer"

# Keys of the outcome JSON a `mlops run training --json` prints.
OUTCOME_KEYS = {
    "status",
    "model_name",
    "model_version",
    "model_uri",
    "metrics",
    "gates",
    "run_dir",
    "repository",
}
# The gates that read the repository without running it; a run that trained has all of GATE_NAMES.
STATIC_GATE_NAMES = {"code_quality", "dependency_audit", "repository_scan"}
GATE_NAMES = STATIC_GATE_NAMES | {"model_scan", "holdout_accuracy", "no_regression"}
PUBLISHED_FILES = {
    "model.skops",
    "metadata.json",
    "reference.parquet",
    "requirements.txt",
    "sbom.cdx.json",
    "release.json",
    "model.sig",
    "_COMPLETE",
}


# -- data ---------------------------------------------------------------------------------------
def demo_data(directory: Path) -> tuple[Path, Path]:
    """The breast-cancer demo split: (training.csv, holdout.csv), target ``diagnosis``."""
    from mlops.demo.data import write_breast_cancer

    return write_breast_cancer(Path(directory))


def iris_with_color(seed: int = 0) -> pd.DataFrame:
    """Iris (string species labels) plus a categorical ``color`` loosely tied to the class."""
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.data.copy()
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    target = bunch.target.to_numpy()
    rng = np.random.default_rng(seed)
    palette = np.array(["red", "green", "blue"], dtype=object)
    pick = np.where(rng.random(len(frame)) < 0.6, target, rng.integers(0, 3, len(frame)))
    frame["color"] = palette[pick]
    frame["species"] = pd.Series(target).map(dict(enumerate(bunch.target_names))).to_numpy()
    return frame


def breast_cancer() -> pd.DataFrame:
    from mlops.demo.data import breast_cancer_frame

    return breast_cancer_frame()


# -- keys ---------------------------------------------------------------------------------------
def make_keypair(directory: Path) -> tuple[Path, Path]:
    """A fresh ECDSA key pair in ``directory``: (private, public)."""
    from mlops.trust.signing import generate_keypair

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / "signing-key.pem", directory / "signing-key.pub.pem"
    if not private.exists():
        generate_keypair(private, public)
    return private, public


def use_signing_keys(monkeypatch, directory: Path) -> tuple[Path, Path]:
    """Generates a key pair and exports MLOPS_SIGNING_KEY / MLOPS_SIGNING_PUBLIC_KEY."""
    from mlops.core.settings import PUBLIC_KEY_VAR, SIGNING_KEY_VAR

    private, public = make_keypair(directory)
    monkeypatch.setenv(SIGNING_KEY_VAR, str(private))
    monkeypatch.setenv(PUBLIC_KEY_VAR, str(public))
    return private, public


# -- KFP artifacts ------------------------------------------------------------------------------
def artifact(kind: type, path: Path, name: str | None = None) -> Any:
    """A ``kfp.dsl`` artifact whose ``uri`` is a local path (so ``.path`` is that path)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    made = kind(name=name or path.name, uri=str(path), metadata={})
    assert made.path == str(path), "kfp maps a local uri to the same path"
    return made


# -- the CLI ------------------------------------------------------------------------------------
def cli_command(*args: str) -> list[str]:
    """``python -m mlops.cli ARGS`` with the interpreter running the tests."""
    return [sys.executable, "-m", "mlops.cli", *args]


def cli_env(home: Path, store=None, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: MLOPS_HOME in tmp and, given a store, its settings.

    Any MLOPS_* variable of the calling environment is dropped first, so a test
    never uses a developer's store or keys by accident.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env["MLOPS_HOME"] = str(home)
    if store is not None:
        env.update(store.settings.to_env())
    env.update(extra)
    return env


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli_command(*args),
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def training_args(
    data: Path | str,
    holdout: Path | str,
    *,
    model_name: str = MODEL_NAME,
    target: str = TARGET,
    **params: Any,
) -> list[str]:
    """``run training --json -p ...`` arguments."""
    args = [
        "run",
        "training",
        "--json",
        "-p",
        f"data_uri={data}",
        "-p",
        f"holdout_uri={holdout}",
        "-p",
        f"target_column={target}",
        "-p",
        f"model_name={model_name}",
    ]
    for name, value in params.items():
        args += ["-p", f"{name}={value}"]
    return args


def single_json(stdout: str) -> dict[str, Any]:
    """Parses stdout that must be exactly one JSON object (one line) and nothing else."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must be one JSON line, got {len(lines)}:\n{stdout[-2000:]}"
    payload = json.loads(lines[0])
    assert isinstance(payload, dict)
    return payload


# -- git repositories ---------------------------------------------------------------------------
#: Git without the developer's configuration or identity: what a test commits is the same anywhere.
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Data Scientist",
    "GIT_AUTHOR_EMAIL": "ds@example.com",
    "GIT_COMMITTER_NAME": "Data Scientist",
    "GIT_COMMITTER_EMAIL": "ds@example.com",
}


def git(repo: Path, *args: str) -> str:
    """Runs ``git ARGS`` in ``repo``; returns its stdout, stripped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | GIT_ENV
    result = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    """Writes ``files`` (relative path -> text or bytes) under ``root``."""
    for relative, content in files.items():
        path = Path(root) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def commit_files(repo: Path, files: dict[str, str | bytes], message: str) -> str:
    """Writes ``files`` into the git repository ``repo``, commits them; returns the commit SHA."""
    write_files(repo, files)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def git_repository(path: Path, files: dict[str, str | bytes]) -> tuple[Path, str]:
    """A new git repository at ``path`` (branch ``main``) with ``files`` committed: (path, SHA)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    return path, commit_files(path, files, "model repository")


def git_uri(repo: Path, ref: str = "main") -> str:
    """The ``recipe_uri`` of a local git repository at ``ref``: ``git+file:///...@ref``."""
    return f"git+{Path(repo).resolve().as_uri()}@{ref}"


# -- the store ----------------------------------------------------------------------------------
def keys_under(store, prefix: str) -> list[str]:
    return sorted(store.list(prefix, recursive=True))
