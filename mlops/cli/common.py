"""What several subcommands share: store and key set-up, JSON output, pipeline lookup, cluster options."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Shared with the Python API (one code path); re-exported for the subcommands and the demo.
from mlops.api.local import ensure_signing_keys, ensure_store_env
from mlops.api.runs import pipeline_named

if TYPE_CHECKING:
    import argparse

    from mlops.api.cluster import Cluster

__all__ = [
    "add_cluster_arguments",
    "cluster_from_args",
    "emit_json",
    "ensure_signing_keys",
    "ensure_store_env",
    "error_payload",
    "json_stdout",
    "pipeline_named",
    "stdout_to_stderr",
]


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


@contextlib.contextmanager
def json_stdout(as_json: bool) -> Iterator[None]:
    """With ``--json``, everything printed meanwhile goes to stderr (kfp prints links on stdout).

    Both fd 1 (task subprocesses) and ``sys.stdout`` (kfp's ``print``, which is not
    fd 1 under a test runner or Jupyter) are redirected.
    """
    if not as_json:
        yield
        return
    with stdout_to_stderr(), contextlib.redirect_stdout(sys.stderr):
        yield


def add_cluster_arguments(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """The options of a Kubeflow Pipelines submission: host, profile, images, credentials."""
    from mlops.runtime import RUNTIME_IMAGE

    parser.add_argument(
        "--host",
        required=required,
        help="Kubeflow Pipelines API URL"
        + ("" if required else ": submit instead of running locally"),
    )
    parser.add_argument("--namespace", help="Kubeflow profile namespace (multi-user KFP)")
    parser.add_argument("--experiment", default="mlops", help="KFP experiment (default mlops)")
    parser.add_argument(
        "--service-account",
        help="Kubernetes service account of the run's pods (mlops-pipeline from "
        "deploy/k8s/rbac.yaml may manage InferenceServices)",
    )
    parser.add_argument("--image", help=f"image of every task (default {RUNTIME_IMAGE})")
    parser.add_argument(
        "--serving-image",
        help="predictor image of deployments (default: the project's serving image)",
    )
    credentials = parser.add_mutually_exclusive_group()
    credentials.add_argument(
        "--token-file",
        type=Path,
        help="file with a bearer token for the KFP API, read on every request",
    )
    credentials.add_argument(
        "--in-cluster-token",
        action="store_true",
        help="use the pipelines token a Kubeflow notebook pod has mounted "
        "(KF_PIPELINES_SA_TOKEN_PATH, else /var/run/secrets/kubeflow/pipelines/token)",
    )


def cluster_from_args(args: argparse.Namespace) -> Cluster:
    """The :class:`mlops.api.Cluster` of the options :func:`add_cluster_arguments` added.

    Raises:
        UsageError: a bad host or a missing token file.
    """
    from mlops.api.cluster import Cluster

    return Cluster(
        host=args.host,
        namespace=args.namespace,
        experiment=args.experiment,
        service_account=args.service_account,
        image=args.image,
        serving_image=args.serving_image,
        token_file=args.token_file,
        in_cluster_token=args.in_cluster_token,
    )
