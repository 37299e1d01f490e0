"""Running a pipeline on the embedded default: ``kfp.local`` with the SubprocessRunner.

Tasks run as subprocesses of this interpreter (``use_venv=False``), so they use
the installed project and inherit the ``MLOPS_*`` environment the CLI exported.
kfp.local prints every task's full log to stdout; we capture that stream into a
log file and show a person one line per step with its duration instead.

When a task fails, kfp.local only says which one ("Inner task failed: X") and
keeps running the tasks that do not depend on it. The cause is in that task's
own section of the stream: the traceback its subprocess printed. The reporter
keeps each task's section apart, and :class:`TaskFailed` carries the final
exception line of the failed one and the exit code its error class stands for
(a ``DataError`` in a task exits 2, as it would before the run).
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
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mlops.core.errors import EXIT_SYSTEM, MlopsError, exit_code_for_error_name

logger = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
_INNER_TASK = re.compile(r"Inner task failed: '([^']+)'")
_TRACEBACK = "Traceback (most recent call last):"
_EXCEPTION_LINE = re.compile(r"([A-Za-z_][\w.]*)(?::\s?(.*))?")
#: Lines kept of a task's section: enough for its traceback (the final line matters).
TASK_LOG_LINES = 400
#: Lines of a failed task's log shown when it printed no traceback (killed, say).
FALLBACK_LINES = 8


class TaskFailed(MlopsError):
    """A pipeline task failed; the message is its own final exception line.

    Attributes:
        task: The failed task (``load-split``).
        error_type: The exception class as its traceback printed it
            (``mlops.core.errors.DataError``), or ``""`` when it printed none.
        log_file: The run's full log.
        exit_code: What the error class stands for (2 for a ``DataError``), else 1.
    """

    def __init__(
        self, task: str, error_type: str, message: str, log_file: Path, exit_code: int
    ) -> None:
        shown = f"{error_type.rpartition('.')[2]}: {message}" if error_type else message
        super().__init__(f"task {task!r} failed: {shown} (full log: {log_file})")
        self.task, self.error_type, self.log_file = task, error_type, log_file
        self.exit_code = exit_code

    def details(self) -> dict[str, str]:
        """What ``--json`` reports besides the message and exit code."""
        return {
            "failed_task": self.task,
            "error_type": self.error_type,
            "log_file": str(self.log_file),
        }


@dataclass
class TaskLog:
    """One task's section of the stream: its plain (ANSI-free) lines, the last ones kept."""

    name: str
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=TASK_LOG_LINES))


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
    """Reads the captured stream: writes it all to the log, keeps task sections, reports steps.

    kfp.local runs our pipelines' tasks one at a time, so the lines between
    "Executing task 'X'" and "Task 'X' finished" are X's own.
    """

    def __init__(self, log: IO[str], progress: IO[str] | None) -> None:
        self.log, self.progress = log, progress
        self.started: dict[str, float] = {}
        self.tail: list[str] = []
        self.current: TaskLog | None = None
        self.failed: list[TaskLog] = []

    def feed(self, line: str) -> None:
        self.log.write(line)
        plain = _ANSI.sub("", line).rstrip("\n")
        self.tail = (self.tail + [plain])[-40:]
        if match := _STARTED.search(plain):
            self.current = TaskLog(match.group(1))
            self._started(match.group(1))
        elif match := _FINISHED.search(plain):
            name, status = match.groups()
            if self.current is not None and self.current.name == name:
                if status != "SUCCESS":
                    self.failed.append(self.current)
                self.current = None
            self._finished(name, status)
        elif self.current is not None:
            self.current.lines.append(plain)

    def _started(self, name: str) -> None:
        self.started[name] = time.monotonic()
        if self.progress is not None and self.progress.isatty():
            # show the running step; its result line overwrites it
            print(f"  ...  {name:<24}", end="\r", file=self.progress, flush=True)

    def _finished(self, name: str, status: str) -> None:
        if self.progress is None:
            return
        took = time.monotonic() - self.started.get(name, time.monotonic())
        mark = "ok  " if status == "SUCCESS" else "FAIL"
        print(f"  {mark} {name:<24} {took:6.1f}s", file=self.progress, flush=True)

    def failure(self, kfp_message: str, log_file: Path) -> TaskFailed | None:
        """The failed task's error, or None when no task's section shows a failure.

        kfp.local names the innermost failed task first; other tasks may have
        failed after it (they kept running), so that one is preferred.
        """
        if not self.failed:
            return None
        named = _INNER_TASK.search(_ANSI.sub("", kfp_message))
        chosen = next(
            (task for task in self.failed if named and task.name == named.group(1)),
            self.failed[0],
        )
        return task_failure(chosen, log_file)


def task_failure(task: TaskLog, log_file: Path) -> TaskFailed:
    """The :class:`TaskFailed` for a failed task's section: its last exception, mapped."""
    found = last_exception(task.lines)
    if found is None:
        shown = [line.strip() for line in task.lines if line.strip()][-FALLBACK_LINES:]
        message = "it printed no exception; its last lines: " + " | ".join(shown)
        return TaskFailed(task.name, "", message, log_file, EXIT_SYSTEM)
    error_type, message = found
    return TaskFailed(
        task.name, error_type, message, log_file, exit_code_for_error_name(error_type)
    )


def last_exception(lines: Sequence[str]) -> tuple[str, str] | None:
    """The (type, message) of the last Python traceback in ``lines``, or None.

    The exception line is the first one after the traceback header that is back
    at the header's indentation (frames and source lines are indented further);
    the lines after it continue a multi-line message. With chained exceptions
    the last traceback is the one that ended the process.
    """
    lines = list(lines)
    starts = [i for i, line in enumerate(lines) if line.strip() == _TRACEBACK]
    if not starts:
        return None
    indent = _indent(lines[starts[-1]])
    body = [line for line in lines[starts[-1] + 1 :] if line.strip()]
    for i, line in enumerate(body):
        if _indent(line) > indent:
            continue
        match = _EXCEPTION_LINE.fullmatch(line.strip())
        if match is None:
            return None
        rest = [part.strip() for part in body[i + 1 :]]
        message = "\n".join(part for part in [match.group(2) or "", *rest] if part)
        return match.group(1), message
    return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


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
        TaskFailed: a task failed; the message is that task's final exception
            line, the exit code the one its error class stands for.
        MlopsError: kfp.local failed outside any task; the message ends with
            the run's last log lines.
    """
    import warnings

    from kfp import local

    # kfp.local warns that the runtime image is not a plain Python image; locally
    # the image is never used, the current environment is.
    warnings.filterwarnings("ignore", message="You may be attemp", category=RuntimeWarning)
    # Display names are for the Kubeflow UI; the local runner says it ignores them.
    warnings.filterwarnings("ignore", message=r"Task .* have no effect in the current local runner")
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
            failure = reporter.failure(str(exc), log_file)
            if failure is not None:
                raise failure from exc
            # kfp.local itself failed (no task section shows a failure).
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
