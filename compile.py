"""Compiles every pipeline to YAML for a Kubeflow Pipelines cluster.

    python compile.py [--out compiled] [--image REGISTRY/kfp-mlops@sha256:DIGEST]
                      [--serving-image REGISTRY/kfp-mlops-serving@sha256:DIGEST]
                      [--s3-ca-configmap NAME [--s3-ca-key KEY]]

The YAML names the image every task runs in: by default the project image of
``mlops/runtime.py``; ``--image`` swaps in the one you built from the
Dockerfile and pushed. Name it by digest (``repo@sha256:...``, printed by the
release-images workflow): a tag can later point at another image, so compiling
with one prints a warning. ``--serving-image`` sets the default predictor image of
the deployments (the ``serving_image`` parameter). ``--s3-ca-configmap`` is for a
store whose certificate a private CA issued: every task that uses the store mounts
that ConfigMap and reads ``MLOPS_S3_CA_BUNDLE`` from it (key ``--s3-ca-key``,
default ``ca.crt``); without it the YAML is unchanged. Nothing from the environment
is baked in: credentials reach tasks from Kubernetes Secrets (see
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
    store_ca_config_map: str | None = None,
    store_ca_key: str | None = None,
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
        store_ca_config_map: ConfigMap with the PEM of the store's private CA, mounted
            into every task that uses the store; ``None`` adds nothing.
        store_ca_key: Its key holding the PEM; ``None`` is ``ca.crt``.

    Returns:
        ``out_file``.
    """
    from mlops.api.compiling import DEFAULT_STORE_CA_KEY
    from mlops.api.compiling import compile_pipeline as compile_with_images

    return compile_with_images(
        pipeline,
        out_file,
        image,
        serving_image,
        store_ca_config_map=store_ca_config_map,
        store_ca_key=DEFAULT_STORE_CA_KEY if store_ca_key is None else store_ca_key,
    )


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
        "--s3-ca-configmap",
        metavar="NAME",
        help="ConfigMap (in the runs' namespace) with the PEM of the store's private CA: "
        "mounted into every task that uses the store, as MLOPS_S3_CA_BUNDLE",
    )
    parser.add_argument(
        "--s3-ca-key",
        metavar="KEY",
        help="the ConfigMap's key holding the PEM (default ca.crt; needs --s3-ca-configmap)",
    )
    parser.add_argument(
        "--pipeline",
        action="append",
        choices=sorted(PIPELINES),
        help="compile only this pipeline (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.s3_ca_key is not None and args.s3_ca_configmap is None:
        parser.error("--s3-ca-key needs --s3-ca-configmap (the ConfigMap the key is in)")
    if args.s3_ca_configmap is not None:
        from mlops.api.compiling import DEFAULT_STORE_CA_KEY, check_store_ca
        from mlops.core.errors import UsageError

        try:  # before any compiling: a name Kubernetes would refuse fails at once (exit 2)
            key = DEFAULT_STORE_CA_KEY if args.s3_ca_key is None else args.s3_ca_key
            check_store_ca(args.s3_ca_configmap, key)
        except UsageError as exc:
            parser.error(str(exc))
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
            PIPELINES[name],
            args.out / f"{name}.yaml",
            args.image,
            args.serving_image,
            args.s3_ca_configmap,
            args.s3_ca_key,
        )
        print(f"compiled {name} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
