"""Compiling a pipeline to the YAML a Kubeflow Pipelines cluster runs, with the images chosen.

``compile.py``, ``mlops run --host`` and ``mlops schedule`` all go through
:func:`compile_pipeline`, so what a cluster receives is what ``compile.py`` writes.

A store whose TLS certificate comes from a private CA needs that CA in every task
that talks to it (``MLOPS_S3_CA_BUNDLE``). Given a ConfigMap holding the PEM
(``store_ca_config_map``), :func:`mount_store_ca` mounts it into exactly the tasks
that get the store Secret and points ``MLOPS_S3_CA_BUNDLE`` at the file. It works
on the compiled documents, like the image options, because KFP builds a pipeline's
tasks when ``@dsl.pipeline`` runs (at import), not when it is compiled; nested
pipelines' tasks are covered too. Without it the YAML is what it always was.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core.errors import UsageError
from mlops.core.rules import check_config_map_key_ref
from mlops.core.settings import CA_BUNDLE_VAR, CA_CONFIGMAP_VAR
from mlops.runtime import STORE_CA_KEY, STORE_CA_MOUNT, STORE_SECRET

if TYPE_CHECKING:
    from kfp.dsl.base_component import BaseComponent

logger = logging.getLogger(__name__)

#: The pipeline parameter that names the predictor image of the InferenceService.
SERVING_IMAGE_PARAMETER = "serving_image"
#: The ConfigMap key holding the PEM by default: the key Kubernetes itself uses in every
#: namespace's ``kube-root-ca.crt`` ConfigMap.
DEFAULT_STORE_CA_KEY = STORE_CA_KEY


def set_image(document: dict[str, Any], image: str) -> int:
    """Sets the container image of every executor of one compiled pipeline document.

    Args:
        document: The pipeline document (the first YAML document of a compiled file).
        image: The image every executor runs in.

    Returns:
        How many executors were changed.
    """
    executors = document.get("deploymentSpec", {}).get("executors", {})
    for executor in executors.values():
        executor["container"]["image"] = image
    return len(executors)


def set_parameter_default(document: dict[str, Any], name: str, value: Any) -> bool:
    """Sets the default of one top-level pipeline parameter (what the run form is pre-filled with).

    Args:
        document: The pipeline document.
        name: The parameter, e.g. ``serving_image``.
        value: Its new default.

    Returns:
        Whether the pipeline has that parameter.
    """
    parameters = document.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    if name not in parameters:
        return False
    parameters[name]["defaultValue"] = value
    parameters[name]["isOptional"] = True
    return True


def check_store_ca(config_map: str, key: str = DEFAULT_STORE_CA_KEY) -> tuple[str, str]:
    """Checks the ConfigMap name and key of the store's CA bundle against Kubernetes' rules.

    Returns:
        ``(config_map, key)``.

    Raises:
        UsageError: a name or key Kubernetes would refuse.
    """
    return check_config_map_key_ref(config_map, key, "store CA ConfigMap")


def _uses_store_secret(executor: dict[str, Any]) -> bool:
    """Whether a platform-spec executor gets the store Secret as environment variables."""
    for secret in executor.get("secretAsEnv", []):
        name = secret.get("secretName") or (
            secret.get("secretNameParameter", {}).get("runtimeValue", {}).get("constant")
        )
        if name == STORE_SECRET:
            return True
    return False


def _config_map_volume(config_map: str) -> dict[str, Any]:
    """The ``configMapAsVolume`` entry ``kfp.kubernetes.use_config_map_as_volume`` writes."""
    from google.protobuf import json_format
    from kfp.kubernetes import kubernetes_executor_config_pb2 as pb

    # The same message, fields and deprecated name field kfp-kubernetes fills in, so the
    # KFP backend reads it exactly like a volume added in the pipeline's code. Not optional:
    # a missing ConfigMap stops the pod, rather than the task falling back to the system's CAs.
    volume = pb.ConfigMapAsVolume(
        config_map_name=config_map, mount_path=STORE_CA_MOUNT, optional=False
    )
    volume.config_map_name_parameter.runtime_value.constant.string_value = config_map
    return json_format.MessageToDict(volume)


def mount_store_ca(
    documents: list[dict[str, Any]], config_map: str, key: str = DEFAULT_STORE_CA_KEY
) -> list[str]:
    """Gives every task that gets the store Secret the CA bundle of ``config_map``.

    Each such executor mounts the ConfigMap at :data:`STORE_CA_MOUNT` (platform spec)
    and has ``MLOPS_S3_CA_BUNDLE=<mount>/<key>`` in its container's environment
    (pipeline spec). Tasks without the store Secret (the training step that runs
    the repository's code, the signing step) are left as they are.

    Args:
        documents: The compiled documents: the pipeline spec, then the platform spec.
        config_map: The ConfigMap holding the PEM of the CA(s) the store's certificate
            chains to, in the namespace the runs go to.
        key: Its key holding the PEM.

    Returns:
        The executors changed, sorted.

    Raises:
        UsageError: an invalid ConfigMap name or key, or no task uses the store.
    """
    check_store_ca(config_map, key)
    platform = documents[1] if len(documents) > 1 else {}
    specs = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
    platform_executors = specs.get("executors", {})
    containers = documents[0].get("deploymentSpec", {}).get("executors", {})
    changed = sorted(name for name, spec in platform_executors.items() if _uses_store_secret(spec))
    if not changed:
        raise UsageError("no task of this pipeline uses the store: nothing needs its CA bundle")
    for name in changed:  # all checked before any is changed: no half-updated documents
        if any(
            e.get("name") == CA_BUNDLE_VAR for e in containers[name]["container"].get("env", [])
        ):
            raise UsageError(f"{name} already sets {CA_BUNDLE_VAR}")
    bundle = f"{STORE_CA_MOUNT}/{key}"
    for name in changed:
        platform_executors[name].setdefault("configMapAsVolume", []).append(
            _config_map_volume(config_map)
        )
        containers[name]["container"].setdefault("env", []).extend(
            [
                {"name": CA_BUNDLE_VAR, "value": bundle},
                # The deploy step passes it on to the predictor it builds.
                {"name": CA_CONFIGMAP_VAR, "value": f"{config_map}/{key}"},
            ]
        )
    return changed


def compile_documents(
    pipeline: BaseComponent,
    image: str | None = None,
    serving_image: str | None = None,
    *,
    store_ca_config_map: str | None = None,
    store_ca_key: str = DEFAULT_STORE_CA_KEY,
) -> list[dict[str, Any]]:
    """The compiled YAML documents of ``pipeline`` with the images set.

    Args:
        pipeline: A ``@dsl.pipeline`` function.
        image: Image for every executor; ``None`` keeps the one of ``mlops/runtime.py``.
        serving_image: Default of the ``serving_image`` parameter (the predictor image
            deployments use); ``None`` keeps ``''``, the project's serving image.
        store_ca_config_map: A ConfigMap with the PEM of the store's private CA, for
            every task that uses the store (:func:`mount_store_ca`); ``None``: the
            system's CAs (or a store without TLS).
        store_ca_key: The ConfigMap's key holding the PEM.

    Returns:
        The documents: the pipeline spec first, then the platform (Kubernetes) spec.

    Raises:
        UsageError: an invalid ConfigMap name or key (checked before compiling).
    """
    if store_ca_config_map is not None:
        check_store_ca(store_ca_config_map, store_ca_key)
    import yaml
    from kfp import compiler

    with tempfile.TemporaryDirectory() as work:
        raw = Path(work) / "pipeline.yaml"
        compiler.Compiler().compile(pipeline, str(raw))
        documents = list(yaml.safe_load_all(raw.read_text()))
    if image:
        changed = set_image(documents[0], image)
        logger.info(
            "%s: %d executor(s) run %s", documents[0]["pipelineInfo"]["name"], changed, image
        )
    if serving_image:
        set_parameter_default(documents[0], SERVING_IMAGE_PARAMETER, serving_image)
    if store_ca_config_map is not None:
        ca_tasks = mount_store_ca(documents, store_ca_config_map, store_ca_key)
        logger.info(
            "%s: %d task(s) trust the CA in ConfigMap %s",
            documents[0]["pipelineInfo"]["name"],
            len(ca_tasks),
            store_ca_config_map,
        )
    return documents


def compile_pipeline(
    pipeline: BaseComponent,
    out_file: Path,
    image: str | None = None,
    serving_image: str | None = None,
    *,
    store_ca_config_map: str | None = None,
    store_ca_key: str = DEFAULT_STORE_CA_KEY,
) -> Path:
    """Compiles one pipeline to deterministic YAML (sorted keys, fixed width).

    Args:
        pipeline: A ``@dsl.pipeline`` function.
        out_file: The YAML file to write; its folder is created if missing.
        image: Image for every executor; ``None`` keeps the one of ``mlops/runtime.py``.
        serving_image: Default of the ``serving_image`` parameter; ``None`` keeps ``''``
            (the project's serving image).
        store_ca_config_map: A ConfigMap with the PEM of the store's private CA for the
            tasks that use the store (:func:`mount_store_ca`); ``None`` adds nothing.
        store_ca_key: The ConfigMap's key holding the PEM.

    Returns:
        ``out_file``.

    Raises:
        UsageError: an invalid ConfigMap name or key.
    """
    import yaml

    documents = compile_documents(
        pipeline,
        image,
        serving_image,
        store_ca_config_map=store_ca_config_map,
        store_ca_key=store_ca_key,
    )
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(yaml.safe_dump_all(documents, sort_keys=True, width=100))
    return out_file
