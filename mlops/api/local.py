"""A pipeline run on this machine: the store and keys set up, ``kfp.local``, the outcome.

The same steps as ``mlops run PIPELINE`` without ``--host`` (the CLI calls this):
store settings exported (the embedded store started when none is configured),
the local signing key pair, the local defaults and checks before the run, then
the run and its outcome.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import IO, Any

from mlops.api.outcome import Outcome

logger = logging.getLogger(__name__)


def ensure_store_env() -> None:
    """Exports MLOPS_S3_* for this process and its tasks; starts the embedded store if none is set.

    The bucket is created when missing, so a fresh MinIO works without set-up.
    """
    from mlops.core.embedded_store import resolve_store_settings
    from mlops.core.settings import mlops_home
    from mlops.core.store import ObjectStore

    store_settings = resolve_store_settings(mlops_home())
    ObjectStore(store_settings).ensure_bucket()
    os.environ.update(store_settings.to_env())


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


def run_local(
    name: str, pipeline: Any, arguments: dict[str, Any], progress: IO[str] | None = None
) -> Outcome:
    """Runs ``pipeline`` with kfp.local on the configured (or embedded) store.

    Args:
        name: The pipeline's name (``training``, ``monitoring``).
        pipeline: Its ``@dsl.pipeline`` function.
        arguments: Typed arguments; the local defaults are added
            (:func:`mlops.runs.lifecycle.prepare_local_run`: ``deploy_target=local``,
            ``recipe_uri`` pinned to a commit, inputs checked).
        progress: Stream for one line per finished step, or None.

    Raises:
        UsageError: a bad parameter, table or setting (nothing ran).
        TaskFailed: a task failed (its own exception line and exit code).
    """
    from mlops.core import settings
    from mlops.runs.lifecycle import finish_local_run, prepare_local_run
    from mlops.runs.local import run_locally

    ensure_store_env()
    ensure_signing_keys()
    arguments = prepare_local_run(name, arguments)
    if progress is not None:
        store_settings = settings.StoreSettings.from_env()
        print(
            f"running {name} locally (kfp.local; object store "
            f"{store_settings.endpoint}, bucket {store_settings.bucket})",
            file=progress,
        )
    run = run_locally(pipeline, arguments, settings.mlops_home() / "runs", progress)
    return Outcome.from_dict(name, finish_local_run(name, arguments, run))
