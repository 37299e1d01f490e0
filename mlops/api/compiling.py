"""Compiling a pipeline to the YAML a Kubeflow Pipelines cluster runs, with the images chosen.

``compile.py``, ``mlops run --host`` and ``mlops schedule`` all go through
:func:`compile_pipeline`, so what a cluster receives is what ``compile.py`` writes.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kfp.dsl.base_component import BaseComponent

logger = logging.getLogger(__name__)

#: The pipeline parameter that names the predictor image of the InferenceService.
SERVING_IMAGE_PARAMETER = "serving_image"


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


def compile_documents(
    pipeline: BaseComponent, image: str | None = None, serving_image: str | None = None
) -> list[dict[str, Any]]:
    """The compiled YAML documents of ``pipeline`` with the images set.

    Args:
        pipeline: A ``@dsl.pipeline`` function.
        image: Image for every executor; ``None`` keeps the one of ``mlops/runtime.py``.
        serving_image: Default of the ``serving_image`` parameter (the predictor image
            deployments use); ``None`` keeps ``''``, the project's serving image.

    Returns:
        The documents: the pipeline spec first, then the platform (Kubernetes) spec.
    """
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
    return documents


def compile_pipeline(
    pipeline: BaseComponent,
    out_file: Path,
    image: str | None = None,
    serving_image: str | None = None,
) -> Path:
    """Compiles one pipeline to deterministic YAML (sorted keys, fixed width).

    Args:
        pipeline: A ``@dsl.pipeline`` function.
        out_file: The YAML file to write; its folder is created if missing.
        image: Image for every executor; ``None`` keeps the one of ``mlops/runtime.py``.
        serving_image: Default of the ``serving_image`` parameter; ``None`` keeps ``''``
            (the project's serving image).

    Returns:
        ``out_file``.
    """
    import yaml

    documents = compile_documents(pipeline, image, serving_image)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(yaml.safe_dump_all(documents, sort_keys=True, width=100))
    return out_file
