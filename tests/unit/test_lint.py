"""The repository passes its own lint: the very commands of ``make lint``.

The commands are read from the Makefile's ``lint`` recipe, so ``make test`` and
``make lint`` cannot drift apart; what each tool covers is configured once, in
pyproject.toml. The ruff configuration also bans ``pickle.load``/``joblib.load``
(TID251): models load through skops with a trusted-type allow-list only, so
pickle stays off every load path, in tests too.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.architecture import PACKAGES

ROOT = Path(__file__).resolve().parents[2]


def lint_commands() -> list[list[str]]:
    """The ``lint`` recipe of the Makefile, one argv per line, ``$(PY)`` as this interpreter."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("lint:"))
    commands = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        argv = shlex.split(line.strip())
        assert argv[0] == "$(PY)", f"lint recipe line runs the venv's Python: {line!r}"
        commands.append([sys.executable, *argv[1:]])
    return commands


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)


def test_lint_recipe_runs_ruff_check_ruff_format_and_mypy():
    tools = [argv[1:] for argv in lint_commands()]
    assert tools == [["-m", "ruff", "check"], ["-m", "ruff", "format", "--check"], ["-m", "mypy"]]


@pytest.mark.parametrize("argv", lint_commands(), ids=lambda argv: " ".join(argv[2:]))
def test_make_lint_command_is_clean(argv):
    result = _run(argv)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_mypy_checks_every_project_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert sorted(config["tool"]["mypy"]["files"]) == sorted(PACKAGES)


def test_pre_commit_runs_the_same_tools_offline():
    hooks = [
        hook
        for repo in yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
        for hook in repo["hooks"]
    ]
    assert {hook["language"] for hook in hooks} == {"system"}, "no hook downloads anything"
    entries = " | ".join(hook["entry"] for hook in hooks)
    for tool in ("-m ruff check", "-m ruff format", "-m mypy"):
        assert tool in entries
    mypy = next(hook for hook in hooks if "-m mypy" in hook["entry"])
    assert mypy["pass_filenames"] is False, "mypy checks what [tool.mypy] files names"


def test_pickle_loading_is_banned(tmp_path):
    offender = tmp_path / "offender.py"
    offender.write_text(
        '"""Offender."""\n\nimport pickle\n\n\ndef load(f):\n    """Load."""\n    return pickle.load(f)\n'
    )
    result = _run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--config",
            str(ROOT / "pyproject.toml"),
            str(offender),
        ]
    )
    assert result.returncode == 1 and "TID251" in result.stdout
