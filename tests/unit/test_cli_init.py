"""``mlops init DIR``: a new model repository that works as written.

The repository is made by the real command, then checked the ways the training flow
checks it: its ``mlops.yaml`` through :func:`mlops.repository.config.load_config`, its
own tests with pytest, its code with the code-quality gate (ruff + bandit), and the
model it builds through skops' allow-list.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.cli import main
from mlops.core.errors import UsageError

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPECTED_FILES = {
    ".github/workflows/mlops.yaml",
    ".gitignore",
    "README.md",
    "mlops.yaml",
    "pytest.ini",
    "requirements.txt",
    "tests/test_train.py",
    "train.py",
}


def files_in(folder: Path) -> set[str]:
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(folder).parts[:1]
    }


def init(tmp_path: Path, *args: str, name: str = "churn") -> Path:
    dest = tmp_path / name
    assert main(["init", str(dest), *args]) == 0
    return dest


def test_init_writes_the_repository(tmp_path, capsys):
    dest = init(tmp_path, "--name", "churn", "--target", "churned")
    assert files_in(dest) == EXPECTED_FILES
    assert "churn" in capsys.readouterr().out

    from mlops.repository.config import load_config, quality_paths, requirements_path

    config = load_config(dest)
    assert (config.name, config.target, config.entry_point) == (
        "churn",
        "churned",
        "train:build_model",
    )
    assert config.params == {"C": 1.0}
    assert requirements_path(dest, config) == dest / "requirements.txt"
    assert quality_paths(dest, config) == [dest / "train.py"]  # tests are not gated


def test_name_defaults_to_the_folder_and_odd_targets_stay_text(tmp_path):
    from mlops.repository.config import load_config

    # "yes" is a boolean in YAML 1.1 and "a: b" a mapping: both must come back as the column name.
    for target in ("yes", "income: >50K", "1"):
        dest = tmp_path / f"model-{len(target)}"
        assert main(["init", str(dest), "--target", target]) == 0
        config = load_config(dest)
        assert (config.name, config.target) == (dest.name, target)


def test_the_repositorys_own_tests_pass(tmp_path):
    dest = init(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=dest,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout


def test_ruff_and_bandit_find_nothing(tmp_path):
    dest = init(tmp_path)
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    # Bandit over what the quality gate checks (tests use assert, which bandit flags).
    bandit = subprocess.run(
        [sys.executable, "-m", "bandit", "-r", "-q", str(dest / "train.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bandit.returncode == 0, bandit.stdout + bandit.stderr

    from mlops.repository.config import load_config, quality_paths
    from mlops.trust.quality import check_code_quality

    gate = check_code_quality(quality_paths(dest, load_config(dest)), fail_on="low", root=dest)
    assert gate.passed, gate.markdown()
    assert gate.findings == []


def test_the_model_it_builds_loads_through_the_allow_list(tmp_path):
    from mlops.model.modelio import load_model, save_model

    dest = init(tmp_path)
    spec = importlib.util.spec_from_file_location("scaffold_train", dest / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"x": rng.normal(size=80), "kind": rng.choice(["a", "b"], 80).astype(object)}
    )
    label = np.where(frame["x"] > 0, "up", "down")
    model = module.build_model({"C": 1.0, "seed": 42}).fit(frame, label)
    save_model(model, tmp_path / "model.skops")
    loaded = load_model(tmp_path / "model.skops")
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))


def test_the_workflow_is_the_example_repositorys(tmp_path):
    # One workflow, two copies: the template's and examples/model-repo's (tested there).
    dest = init(tmp_path)
    example = REPO_ROOT / "examples" / "model-repo"
    for name in (".github/workflows/mlops.yaml", ".gitignore", "pytest.ini"):
        assert (dest / name).read_text() == (example / name).read_text(), name


def test_a_non_empty_folder_is_refused_and_left_alone(tmp_path, capsys):
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine\n")
    assert main(["init", str(dest), "--json"]) == 2
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["exit_code"] == 2 and "not empty" in outcome["error"]
    assert files_in(dest) == {"notes.txt"}
    assert (dest / "notes.txt").read_text() == "mine\n"


def test_a_file_and_a_bad_name_are_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["init", str(tmp_path / "file")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "Model_One")]) == 2
    assert "--name" in capsys.readouterr().err
    assert not (tmp_path / "Model_One").exists()


def test_an_empty_folder_is_filled(tmp_path):
    dest = tmp_path / "empty"
    dest.mkdir()
    assert main(["init", str(dest), "--name", "empty-model"]) == 0
    assert files_in(dest) == EXPECTED_FILES


def test_git_makes_one_commit_of_every_file(tmp_path, monkeypatch):
    (tmp_path / "gitconfig").write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Data Scientist")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "ds@example.com")
    dest = init(tmp_path, "--git")

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=dest, capture_output=True, text=True, check=True
        ).stdout

    assert git("status", "--porcelain") == ""
    assert set(git("ls-files").split()) == EXPECTED_FILES
    assert len(git("rev-list", "--all").split()) == 1
    assert git("branch", "--show-current").strip() == "main"  # the branch the workflow releases


def test_the_template_is_no_builtin_recipe():
    from mlops.repository.source import builtin_dir

    with pytest.raises(UsageError):
        builtin_dir("scaffold")


def test_git_without_an_identity_is_refused_before_anything_is_written(
    tmp_path, monkeypatch, capsys
):
    for name in ("AUTHOR", "COMMITTER"):
        monkeypatch.delenv(f"GIT_{name}_NAME", raising=False)
        monkeypatch.delenv(f"GIT_{name}_EMAIL", raising=False)
    monkeypatch.delenv("EMAIL", raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    # No guessing user@host either: git must be told who commits.
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "user.useConfigOnly")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "true")
    dest = tmp_path / "anonymous"
    assert main(["init", str(dest), "--git"]) == 2
    assert "user.email" in capsys.readouterr().err
    assert not dest.exists()
