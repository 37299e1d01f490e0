"""The repository passes its own ruff configuration.

That configuration bans ``pickle.load``/``joblib.load`` (TID251): models load
through skops with a trusted-type allow-list only, so pickle stays off every
load path, in tests too.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_clean_with_project_config():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "mlops",
            "components",
            "pipelines",
            "serving",
            "tests",
            "bench",
            "deploy",
            "compile.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_pickle_loading_is_banned(tmp_path):
    offender = tmp_path / "offender.py"
    offender.write_text("import pickle\n\n\ndef load(f):\n    return pickle.load(f)\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--config",
            str(ROOT / "pyproject.toml"),
            str(offender),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1 and "TID251" in result.stdout
