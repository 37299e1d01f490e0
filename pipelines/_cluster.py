"""Cluster wiring: Kubernetes Secrets reach tasks through kfp-kubernetes.

Credentials never appear as pipeline parameters or literals in the compiled
YAML, only the Secret names below. ``kfp.local`` ignores these settings; the
CLI exports the same variables for local runs instead.

A store behind a private CA: ``compile.py --s3-ca-configmap NAME`` mounts that
ConfigMap into every task :func:`uses_store` wires and sets ``MLOPS_S3_CA_BUNDLE``
(:func:`mlops.api.compiling.mount_store_ca`). It edits the compiled YAML rather
than these functions because KFP builds a pipeline's tasks when ``@dsl.pipeline``
runs, at import, before any compile option is known.
"""

from kfp import dsl, kubernetes

from mlops.core.settings import CONFIG_MAP_VARS, GIT_TOKEN_VAR, STORE_ENV_VARS
from mlops.runtime import (
    CONFIG_MAP,
    GIT_SECRET,
    PUBLIC_KEY_MOUNT,
    PUBLIC_KEY_SECRET,
    SIGNING_MOUNT,
    SIGNING_SECRET,
    STORE_SECRET,
)


def uses_store(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Gives a task the object-store settings (store Secret) and optional ``mlops-config`` settings."""
    kubernetes.use_secret_as_env(
        task, secret_name=STORE_SECRET, secret_key_to_env={key: key for key in STORE_ENV_VARS}
    )
    # Optional settings (the Pushgateway URL); tasks run without them when absent.
    kubernetes.use_config_map_as_env(
        task,
        config_map_name=CONFIG_MAP,
        config_map_key_to_env={key: key for key in CONFIG_MAP_VARS},
        optional=True,
    )
    return task


def uses_git_credentials(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Gives the fetch step ``MLOPS_GIT_TOKEN`` for private repositories (optional Secret)."""
    kubernetes.use_secret_as_env(
        task,
        secret_name=GIT_SECRET,
        secret_key_to_env={GIT_TOKEN_VAR: GIT_TOKEN_VAR},
        optional=True,
    )
    return task


def uses_private_key(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Mounts the private signing key: only the sign step gets it."""
    kubernetes.use_secret_as_volume(task, secret_name=SIGNING_SECRET, mount_path=SIGNING_MOUNT)
    return task


def uses_public_key(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Mounts the public key, for steps that verify signatures (sign, publish, deploy)."""
    kubernetes.use_secret_as_volume(
        task, secret_name=PUBLIC_KEY_SECRET, mount_path=PUBLIC_KEY_MOUNT
    )
    return task


def live(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Turns caching off: these tasks read data, advisories or state that change under one URI."""
    task.set_caching_options(False)
    return task
