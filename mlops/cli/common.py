"""What several subcommands share: store and key set-up, JSON output, pipeline lookup."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlops.core.errors import UsageError


def ensure_store_env() -> None:
    """Exports MLOPS_S3_* for this process and its tasks; starts the embedded store if none is set.

    The bucket is created when missing, so a fresh MinIO works without set-up.
    """
    from mlops.core.embedded_store import resolve_store_settings
    from mlops.core.settings import mlops_home
    from mlops.core.store import ObjectStore

    settings = resolve_store_settings(mlops_home())
    ObjectStore(settings).ensure_bucket()
    os.environ.update(settings.to_env())


def ensure_signing_keys() -> tuple[Path, Path]:
    """The local key pair (created on first use) exported as MLOPS_SIGNING_KEY / _PUBLIC_KEY."""
    from mlops.core.settings import PUBLIC_KEY_VAR, SIGNING_KEY_VAR, mlops_home
    from mlops.trust.signing import default_key_paths, generate_keypair

    private, public = default_key_paths(mlops_home())
    if not private.exists() and not public.exists():
        generate_keypair(private, public)
        print(f"created signing key pair in {private.parent}", file=sys.stderr)
    os.environ.setdefault(SIGNING_KEY_VAR, str(private))
    os.environ.setdefault(PUBLIC_KEY_VAR, str(public))
    return private, public


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Sends everything written to fd 1 (ours and the tasks') to stderr, keeping stdout for JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def emit_json(payload: dict[str, Any]) -> None:
    """Prints exactly one JSON object on stdout (``--json``)."""
    sys.stdout.write(json.dumps(payload, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def error_payload(message: str, exit_code: int, **details: Any) -> dict[str, Any]:
    """The one object ``--json`` prints for a failed command.

    Args:
        message: What went wrong (the text after ``error:`` on stderr).
        exit_code: The process exit code (1 system, 2 usage or data, 4 invalid...).
        **details: More fields, e.g. the failed task and the run's log file.
    """
    return {**details, "status": "error", "error": message, "exit_code": exit_code}


def pipeline_named(name: str) -> Any:
    """The pipeline function called ``name``; an unknown name is a usage error listing them."""
    from pipelines import PIPELINES

    if name not in PIPELINES:
        raise UsageError(f"unknown pipeline {name!r}; pipelines are: {', '.join(PIPELINES)}")
    return PIPELINES[name]
