"""Compiles every pipeline to YAML for a Kubeflow Pipelines cluster.

    python compile.py [--out compiled] [--image REGISTRY/kfp-mlops@sha256:DIGEST]
                      [--serving-image REGISTRY/kfp-mlops-serving@sha256:DIGEST]

The YAML names the image every task runs in: by default the project image of
``mlops/runtime.py``; ``--image`` swaps in the one you built from the
Dockerfile and pushed. Name it by digest (``repo@sha256:...``, printed by the
release-images workflow): a tag can later point at another image, so compiling
with one prints a warning. ``--serving-image`` sets the default predictor image of
the deployments (the ``serving_image`` parameter). Nothing from the environment is
baked in: credentials reach tasks from Kubernetes Secrets (see
``pipelines/_cluster.py``), and the output is byte-for-byte deterministic for the
same sources and kfp version.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kfp.dsl.base_component import BaseComponent

DEFAULT_OUT = Path(__file__).resolve().parent / "compiled"


def set_image(document: dict, image: str) -> int:
    """Sets the container image of every executor of one compiled pipeline document.

    Args:
        document: The pipeline document (the first YAML document of a compiled file).
        image: The image every executor runs in.

    Returns:
        How many executors were changed.
    """
    from mlops.api.compiling import set_image as set_executor_image

    return set_executor_image(document, image)


def compile_pipeline(
    pipeline: BaseComponent,
    out_file: Path,
    image: str | None = None,
    serving_image: str | None = None,
) -> Path:
    """Compiles one pipeline to deterministic YAML (sorted keys, fixed width).

    The work is :func:`mlops.api.compiling.compile_pipeline`, which ``mlops run
    --host`` and ``mlops schedule`` use too, so they submit what this writes.

    Args:
        pipeline: A ``@dsl.pipeline`` function.
        out_file: The YAML file to write; its folder is created if missing.
        image: Image for every executor; ``None`` keeps the one of ``mlops/runtime.py``.
        serving_image: Default of the ``serving_image`` parameter (the predictor image
            of deployments); ``None`` keeps ``''``, the project's serving image.

    Returns:
        ``out_file``.
    """
    from mlops.api.compiling import compile_pipeline as compile_with_images

    return compile_with_images(pipeline, out_file, image, serving_image)


def image_argument(value: str) -> str:
    """An image option: a checked reference; a digest reference is kept by its digest alone.

    Raises:
        argparse.ArgumentTypeError: not an image reference (argparse exits 2 naming it).
    """
    from mlops.core.errors import UsageError
    from mlops.core.rules import check_image_reference

    try:
        # argparse prefixes the option's name ("argument --serving-image: ...").
        return check_image_reference(value, name="the image").canonical()
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    """Compiles the chosen pipelines (default: all of them).

    Args:
        argv: Command-line arguments; ``None`` reads ``sys.argv``.

    Returns:
        The exit code, 0.
    """
    from mlops.runtime import RUNTIME_IMAGE, SERVING_IMAGE
    from pipelines import PIPELINES

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default: compiled/)"
    )
    parser.add_argument(
        "--image",
        type=image_argument,
        help=f"image for every task, best by digest: repo@sha256:... (default {RUNTIME_IMAGE})",
    )
    parser.add_argument(
        "--serving-image",
        type=image_argument,
        help=f"default predictor image of deployments (default {SERVING_IMAGE})",
    )
    parser.add_argument(
        "--pipeline",
        action="append",
        choices=sorted(PIPELINES),
        help="compile only this pipeline (repeatable)",
    )
    args = parser.parse_args(argv)
    from mlops.core.rules import check_image_reference

    chosen = [("--image" if args.image else "the default image", args.image or RUNTIME_IMAGE)]
    if args.serving_image:
        chosen.append(("--serving-image", args.serving_image))
    for what, image in chosen:
        warning = check_image_reference(image).tag_warning(what)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    for name in args.pipeline or sorted(PIPELINES):
        path = compile_pipeline(
            PIPELINES[name], args.out / f"{name}.yaml", args.image, args.serving_image
        )
        print(f"compiled {name} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
