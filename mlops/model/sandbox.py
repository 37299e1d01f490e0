"""Running a model repository's code in a child process that sees none of the project's secrets.

The repository's code is the one part of a run nobody has reviewed yet. Locally,
every pipeline task inherits the CLI's environment (store credentials, signing key
paths, the Pushgateway); on a cluster the training task has no Secret mounted, and
this makes a local run match: the child gets an environment built from an
allow-list (:data:`PASSED_VARIABLES`), a home and a working directory of its own,
and only the files it needs (the training and test splits, the repository).

What it cannot do: the child runs as the same operating-system user, so files that
user can read stay readable. On a cluster the pod boundary covers that.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops.core.errors import MlopsError, error_from_name

logger = logging.getLogger(__name__)

#: Variables the child inherits: locale, time zone, thread limits. Nothing credential-like.
PASSED_VARIABLES = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "SYSTEMROOT",
)
REQUEST_FILE = "request.json"
RESULT_FILE = "result.json"


def clean_environment(work_dir: Path, source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: the allow-listed variables of ``source`` plus its own home.

    Args:
        work_dir: The child's working directory; it becomes ``HOME`` and ``TMPDIR``.
        source: The environment to pick from (default: this process's).

    Returns:
        A new mapping; ``PYTHONPATH`` names only the folder this package is in, so
        the child imports the project, not whatever the parent had on its path.
    """
    source = os.environ if source is None else source
    env = {name: source[name] for name in PASSED_VARIABLES if name in source}
    tmp = work_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "HOME": str(work_dir),
            "TMPDIR": str(tmp),
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            "PYTHONNOUSERSITE": "1",
            # The repository stays as fetched: no __pycache__ written into it.
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


class ChildRun:
    """A started child (:func:`start_child`); :meth:`result` waits for it and reads its answer.

    Args:
        process: The running child.
        result_path: Where it writes ``result.json``.
    """

    def __init__(self, process: subprocess.Popen, result_path: Path) -> None:
        self._process = process
        self._result_path = result_path

    def result(self) -> dict[str, Any]:
        """Waits for the child; its result object.

        Raises:
            UsageError, DataError: what the child reported.
            MlopsError: the child died without a result.
        """
        returncode = self._process.wait()
        if not self._result_path.is_file():
            raise MlopsError(
                f"the training child process exited with code {returncode} "
                "without a result (killed, or out of memory?)"
            )
        result = json.loads(self._result_path.read_text())
        error = result.get("error")
        if error:
            raise error_from_name(error.get("type", ""), error.get("message", "unknown error"))
        return result

    def stop(self) -> None:
        """Ends the child if it still runs (the caller failed while it worked)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()


def start_child(module: str, request: dict[str, Any], work_dir: Path) -> ChildRun:
    """Starts ``python -m module work_dir/request.json`` in a clean environment.

    The caller can go on with its own work while the child runs (the training step
    reads and fingerprints its splits meanwhile), then call :meth:`ChildRun.result`.
    The child writes ``result.json`` into ``work_dir``: either its answer or an
    ``error`` object (``type``, ``message``) that is raised there as the error it
    names, so a ``UsageError`` in the repository's code still exits 2.

    Args:
        module: The child's entry module (``mlops.model.fit_recipe``).
        request: JSON-able request, written to ``request.json``.
        work_dir: The child's own working directory (created).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    request_path = work_dir / REQUEST_FILE
    result_path = work_dir / RESULT_FILE
    request_path.write_text(json.dumps(request, sort_keys=True, default=str))
    result_path.unlink(missing_ok=True)
    process = subprocess.Popen(  # noqa: S603 - our own module, list arguments
        [sys.executable, "-m", module, str(request_path)],
        cwd=work_dir,
        env=clean_environment(work_dir),
    )
    return ChildRun(process, result_path)


def run_child(module: str, request: dict[str, Any], work_dir: Path) -> dict[str, Any]:
    """Runs the child (:func:`start_child`) and returns its result (:meth:`ChildRun.result`).

    Raises:
        UsageError, DataError: what the child reported.
        MlopsError: the child died without a result.
    """
    return start_child(module, request, work_dir).result()
