"""Where everything runs: the one place naming the project's images and their pins.

The ``Dockerfile`` at the repository root builds two images. The pipeline image
(``--target pipeline``) installs this package with the exact pins of
``requirements.lock``, so components need no
``packages_to_install`` and start without reaching a package index. ``compile.py
--image`` swaps in the image a user built and pushed; local runs
(``kfp.local.SubprocessRunner``) ignore the image and use the current environment.
The serving image (``--target serving``) holds only the predictor's closure
(``requirements-serving.lock``, see :mod:`mlops.environment`); InferenceServices
run it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "IMAGE_REPOSITORY",
    "IMAGE_TAG",
    "RUNTIME_IMAGE",
    "SERVING_IMAGE",
    "COMPONENT_KWARGS",
    "PYTHON_BASE_IMAGE",
]

IMAGE_REPOSITORY = "ghcr.io/kfp-mlops/kfp-mlops"
IMAGE_TAG = "0.1.0"
RUNTIME_IMAGE = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
SERVING_IMAGE = f"{IMAGE_REPOSITORY}-serving:{IMAGE_TAG}"
# Base of the Dockerfile's stages; pinned by digest-free tag here and in the Dockerfile.
PYTHON_BASE_IMAGE = "python:3.11-slim-bookworm"

COMPONENT_KWARGS: dict[str, Any] = {
    "base_image": RUNTIME_IMAGE,
    # The image already has kfp; installing it at start-up would need a package index.
    "install_kfp_package": False,
}
