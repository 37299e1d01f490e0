"""Where everything runs: the one place naming the project's images and its cluster objects.

The ``Dockerfile`` at the repository root builds two images. The pipeline image
(``--target pipeline``) installs this package with the exact pins of
``requirements.lock``, so components need no
``packages_to_install`` and start without reaching a package index. ``compile.py
--image`` swaps in the image a user built and pushed; local runs
(``kfp.local.SubprocessRunner``) ignore the image and use the current environment.
The serving image (``--target serving``) holds only the predictor's closure
(``requirements-serving.lock``, see :mod:`mlops.core.environment`); InferenceServices
run it.
"""

from __future__ import annotations

from typing import Any

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

# -- cluster objects (deploy/k8s/): credentials reach tasks and predictors only through these.
STORE_SECRET = "mlops-s3-credentials"  # the MLOPS_S3_* keys and MLOPS_BUCKET
SIGNING_SECRET = "mlops-signing-key"  # PRIVATE_KEY_FILE; mounted only into the sign step
PUBLIC_KEY_SECRET = "mlops-signing-public-key"  # PUBLIC_KEY_FILE; wherever signatures are checked
CONFIG_MAP = "mlops-config"  # optional non-secret settings (MLOPS_PUSHGATEWAY)
# MLOPS_GIT_TOKEN for private model repositories; optional, mounted only into the fetch step.
GIT_SECRET = "mlops-git-credentials"
SIGNING_MOUNT = "/etc/mlops/signing"
PUBLIC_KEY_MOUNT = "/etc/mlops/keys"
PRIVATE_KEY_FILE = "signing-key.pem"
PUBLIC_KEY_FILE = "signing-key.pub.pem"
# A store behind a private CA: the ConfigMap with its PEM, mounted here in pipeline pods
# (compile.py --s3-ca-configmap) and predictors; MLOPS_S3_CA_BUNDLE names the file.
STORE_CA_MOUNT = "/etc/mlops/store-ca"
STORE_CA_KEY = "ca.crt"  # the key Kubernetes itself uses in kube-root-ca.crt
