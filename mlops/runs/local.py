"""Running a pipeline on the embedded default: ``kfp.local`` with the SubprocessRunner.

Tasks run as subprocesses of this interpreter (``use_venv=False``), so they use
the installed project and inherit the ``MLOPS_*`` environment the CLI exported.
kfp.local prints every task's full log to stdout; we capture that stream into a
log file and show a person one line per step with its duration instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mlops.core.errors import MlopsError

logger = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")


@dataclass
class LocalRun:
    """A finished local run.

    Attributes:
        output: The pipeline's output (parsed from JSON when it is JSON text).
        run_dir: The folder kfp.local wrote the task outputs to.
        log_file: Every task's full log.
        seconds: How long the run took.
    """

    output: Any
    run_dir: Path
    log_file: Path
    seconds: float


class _StepReporter:
    """Reads the captured stream: writes it all to the log, reports step lines."""

    def __init__(self, log: IO[str], progress: IO[str] | None) -> None:
        self.log, self.progress = log, progress
        self.started: dict[str, float] = {}
        self.tail: list[str] = []

    def feed(self, line: str) -> None:
        self.log.write(line)
        plain = _ANSI.sub("", line)
        self.tail = (self.tail + [plain.rstrip("\n")])[-40:]
        if self.progress is None:
            return
        if match := _STARTED.search(plain):
            self.started[match.group(1)] = time.monotonic()
            if self.progress.isatty():  # show the running step; its result line overwrites it
                print(f"  ...  {match.group(1):<24}", end="\r", file=self.progress, flush=True)
        elif match := _FINISHED.search(plain):
            name, status = match.groups()
            took = time.monotonic() - self.started.get(name, time.monotonic())
            mark = "ok  " if status == "SUCCESS" else "FAIL"
            print(f"  {mark} {name:<24} {took:6.1f}s", file=self.progress, flush=True)


@contextlib.contextmanager
def _captured_stdout(reporter: _StepReporter) -> Iterator[None]:
    """Points fd 1 (ours and the task subprocesses') at a pipe the reporter drains."""
    sys.stdout.flush()
    read_fd, write_fd = os.pipe()
    saved = os.dup(1)
    os.dup2(write_fd, 1)
    os.close(write_fd)
    # kfp.local prints through sys.stdout, which is not fd 1 in Jupyter or pytest.
    saved_stdout = sys.stdout
    sys.stdout = open(1, "w", buffering=1, closefd=False)

    def drain() -> None:
        with os.fdopen(read_fd, "r", errors="replace") as stream:
            for line in stream:
                reporter.feed(line)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout.close()
        sys.stdout = saved_stdout
        os.dup2(saved, 1)
        os.close(saved)
        thread.join(timeout=10)


def run_locally(
    pipeline: Any, arguments: dict[str, Any], pipeline_root: Path, progress: IO[str] | None = None
) -> LocalRun:
    """Runs ``pipeline`` with ``kfp.local``; returns its output, run folder and log.

    Args:
        pipeline: A ``@dsl.pipeline`` function.
        arguments: Typed pipeline arguments.
        pipeline_root: Where kfp.local writes task outputs.
        progress: Stream for one line per finished step, or None.

    Raises:
        MlopsError: a task failed (a system failure: inputs were checked before
            the run); the message ends with the failing task's last log lines.
    """
    import warnings

    from kfp import local

    # kfp.local warns that the runtime image is not a plain Python image; locally
    # the image is never used, the current environment is.
    warnings.filterwarnings("ignore", message="You may be attemp", category=RuntimeWarning)
    pipeline_root = Path(pipeline_root)
    pipeline_root.mkdir(parents=True, exist_ok=True)
    before = set(pipeline_root.iterdir())
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,
    )
    log_file = pipeline_root / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    started = time.monotonic()
    with open(log_file, "w") as log:
        reporter = _StepReporter(log, progress)
        try:
            with _captured_stdout(reporter):
                task = pipeline(**arguments)
        except RuntimeError as exc:
            tail = "\n".join(line for line in reporter.tail if line.strip())[-3000:]
            raise MlopsError(
                f"pipeline failed: {exc}\n--- last log lines ({log_file}) ---\n{tail}"
            ) from exc
    run_dir = _new_dir(pipeline_root, before)
    output = task.output
    if isinstance(output, str):
        with contextlib.suppress(json.JSONDecodeError):
            output = json.loads(output)
    return LocalRun(output, run_dir, log_file, time.monotonic() - started)


def _new_dir(root: Path, before: set[Path]) -> Path:
    created = sorted(
        (p for p in root.iterdir() if p not in before and p.is_dir()),
        key=lambda p: p.stat().st_mtime,
    )
    return created[-1] if created else root
