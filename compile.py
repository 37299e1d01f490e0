"""Compiles every pipeline to YAML for a Kubeflow Pipelines cluster.

    python compile.py [--out compiled] [--image REGISTRY/kfp-mlops@sha256:DIGEST]

The YAML names the image every task runs in: by default the project image of
``mlops/runtime.py``; ``--image`` swaps in the one you built from the
Dockerfile and pushed. Name it by digest (``repo@sha256:...``, printed by the
release-images workflow): a tag can later point at another image, so compiling
with one prints a warning. Nothing from the environment is baked in: credentials
reach tasks from Kubernetes Secrets (see ``pipelines/_cluster.py``), and the
output is byte-for-byte deterministic for the same sources and kfp version.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

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
    executors = document.get("deploymentSpec", {}).get("executors", {})
    for executor in executors.values():
        executor["container"]["image"] = image
    return len(executors)


def compile_pipeline(pipeline: BaseComponent, out_file: Path, image: str | None = None) -> Path:
    """Compiles one pipeline to deterministic YAML (sorted keys, fixed width).

    Args:
        pipeline: A ``@dsl.pipeline`` function.
        out_file: The YAML file to write; its folder is created if missing.
        image: Image for every executor; ``None`` keeps the one of ``mlops/runtime.py``.

    Returns:
        ``out_file``.
    """
    from kfp import compiler

    with tempfile.TemporaryDirectory() as work:
        raw = Path(work) / out_file.name
        compiler.Compiler().compile(pipeline, str(raw))
        documents = list(yaml.safe_load_all(raw.read_text()))
    if image:
        for document in documents:
            set_image(document, image)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(yaml.safe_dump_all(documents, sort_keys=True, width=100))
    return out_file


def image_argument(value: str) -> str:
    """``--image``: a checked image reference; a digest reference is kept by its digest alone.

    Raises:
        argparse.ArgumentTypeError: not an image reference (argparse exits 2 naming it).
    """
    from mlops.core.errors import UsageError
    from mlops.core.rules import check_image_reference

    try:
        return check_image_reference(value, name="--image").canonical()
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    """Compiles the chosen pipelines (default: all of them).

    Args:
        argv: Command-line arguments; ``None`` reads ``sys.argv``.

    Returns:
        The exit code, 0.
    """
    from mlops.runtime import RUNTIME_IMAGE
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
        "--pipeline",
        action="append",
        choices=sorted(PIPELINES),
        help="compile only this pipeline (repeatable)",
    )
    args = parser.parse_args(argv)
    from mlops.core.rules import check_image_reference

    what = "--image" if args.image else "the default image"
    warning = check_image_reference(args.image or RUNTIME_IMAGE).tag_warning(what)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    for name in args.pipeline or sorted(PIPELINES):
        path = compile_pipeline(PIPELINES[name], args.out / f"{name}.yaml", args.image)
        print(f"compiled {name} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
