"""KServe ``InferenceService`` manifests for a published model version.

The predictor is a custom container (the project image) running
``python -m serving``; it reads the model straight from the object store with
credentials taken from a Kubernetes Secret (never literal values in the
manifest) and verifies the model signature with a public key mounted from a
second Secret.

Canary releases take one of two forms, depending on the deployment mode:

* **Serverless** (Knative): ``spec.predictor.canaryTrafficPercent``. The spec
  always describes the *new* version; KServe keeps the last rolled-out revision
  and sends it the remaining traffic. Promotion removes the field (100% to the
  latest revision); rollback sets it to 0 (all traffic back to the previous
  revision).
* **RawDeployment / Standard**: there are no revisions, so KServe 0.20+ defines
  ``spec.canary``, a list of ``{predictor, trafficPercent}`` entries (see the
  CRD ``serving.kserve.io_inferenceservices.yaml``: ``spec.canary.items``
  requires ``predictor`` and ``trafficPercent`` 0-100; ``predictor.name``,
  pattern ``^[a-z]([-a-z0-9]*[a-z0-9])?$``, names the variant whose
  Deployment is ``{isvc}-{name}-predictor``). The stable release stays in
  ``spec.predictor`` (copied from the live object); the new version becomes the
  single canary entry. Promotion moves the canary's predictor (with its
  ``name``) into ``spec.predictor`` and removes ``spec.canary`` — KServe's
  documented way to promote without a restart; rollback removes ``spec.canary``.

A full (non-canary) release in Raw mode keeps the live predictor's ``name`` so
the existing Deployment is rolled in place rather than replaced by a new one.

**Mesh-routed candidates** (``mesh_routed=True``, for the ``sticky``, ``cohort``
and ``shadow`` strategies): the new version becomes the ``spec.canary`` entry
with ``trafficPercent: 0`` under its own variant name, so both versions run with
their own predictor Service and KServe's own split sends the candidate nothing;
the routes of :mod:`mlops.deployment.mesh` decide which requests reach it. Raw
and Standard mode only: in Serverless mode both versions are revisions of one
Knative Service behind Knative's own routing, and ``canaryTrafficPercent: 0``
reads as "rolled back" (see :func:`has_canary`), so there is no second Service
for a mesh route to name.

The predictor image is checked as an image reference. Given a digest
(``repo@sha256:...``) the container names the image by that digest alone, so
what runs is exactly what was signed (the admission policies in ``deploy/k8s/``
verify signatures per digest); given a tag it is used as is, and
:func:`image_warning` says why that is weaker.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any, Literal

from mlops.core.errors import UsageError
from mlops.core.rules import check_canary_percent, check_config_map_key_ref, check_image_reference
from mlops.core.settings import BUCKET_VAR, CA_BUNDLE_VAR, SECURE_VAR, STORE_ENV_VARS
from mlops.runtime import (
    PUBLIC_KEY_FILE,
    PUBLIC_KEY_MOUNT,
    PUBLIC_KEY_SECRET,
    SERVING_IMAGE,
    STORE_CA_KEY,
    STORE_CA_MOUNT,
    STORE_SECRET,
)

__all__ = [
    "API_VERSION",
    "KIND",
    "DeploymentMode",
    "build_inferenceservice",
    "deployment_mode_of",
    "promoted_manifest",
    "rolled_back_manifest",
    "variant_name",
    "is_raw_mode",
    "manifest_from_live",
    "has_canary",
    "image_warning",
    "serving_image_reference",
]

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
CONTAINER_NAME = "kserve-container"  # the name KServe expects for a custom predictor
HTTP_PORT = 8080
STORE_CA_VOLUME = "store-ca"  # the volume of the store's CA ConfigMap (``store_ca_config_map``)

LABEL_NAME = "app.kubernetes.io/name"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MODEL = "mlops.kfp/model"
LABEL_VERSION = "mlops.kfp/version"
ANNOTATION_MODE = "serving.kserve.io/deploymentMode"
ANNOTATION_SCRAPE = "serving.kserve.io/enable-prometheus-scraping"
ANNOTATION_METRICS_PORT = "prometheus.kserve.io/port"
ANNOTATION_METRICS_PATH = "prometheus.kserve.io/path"
ANNOTATION_STORAGE_URI = "mlops.kfp/storage-uri"

DeploymentMode = Literal["Serverless", "RawDeployment", "Standard"]
_MODES = ("Serverless", "RawDeployment", "Standard")
_RAW_MODES = ("RawDeployment", "Standard")

DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}

# KServe accepts InferenceService names as DNS-1035 labels (start with a letter).
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Knative names the first revision "<isvc>-predictor-00001"; it must fit a 63-char label.
_MAX_ISVC_NAME = 63 - len("-predictor-00001")


def _check_isvc_name(name: str) -> str:
    if not _DNS1035.match(name or "") or len(name) > _MAX_ISVC_NAME:
        raise UsageError(
            f"InferenceService name {name!r} is invalid: use lowercase letters, digits and '-', "
            f"start with a letter, end alphanumeric, at most {_MAX_ISVC_NAME} characters"
        )
    return name


def _check_namespace(namespace: str) -> str:
    if not _DNS1123.match(namespace or "") or len(namespace) > 63:
        raise UsageError(f"namespace {namespace!r} is not a DNS-1123 label")
    return namespace


def _check_label_value(value: str, what: str) -> str:
    if not _LABEL_VALUE.match(value or "") or len(value) > 63 or not value:
        raise UsageError(
            f"{what} {value!r} cannot be a Kubernetes label value "
            "(alphanumerics, '-', '_', '.', at most 63 characters)"
        )
    return value


def variant_name(isvc_name: str, version: str) -> str:
    """The ``predictor.name`` of a Raw-mode variant running ``version``.

    A DNS-1035 label derived from the version, short enough for the Deployment
    name ``{isvc}-{variant}-predictor`` to stay within 63 characters; a digest
    of the version is used when the readable form does not fit.
    """
    budget = 63 - len(isvc_name) - len("--predictor")
    readable = re.sub(r"[^a-z0-9-]+", "-", version.lower()).strip("-")
    if not readable or not readable[0].isalpha():
        readable = "v" + readable
    readable = readable.rstrip("-")
    if len(readable) <= budget and _DNS1035.match(readable):
        return readable
    digits = min(8, budget - 1)
    if digits < 4:
        raise UsageError(f"InferenceService name {isvc_name!r} is too long for a canary variant")
    return "v" + hashlib.sha256(version.encode()).hexdigest()[:digits]


def serving_image_reference(image: str) -> str:
    """The image reference the predictor container runs: by digest when one is given.

    Args:
        image: ``repo[:tag]`` or ``repo[:tag]@sha256:<64 hex>``.

    Returns:
        ``repo@sha256:<hex>`` for a digest reference (a tag beside it is dropped), else
        ``repo:tag`` (``:latest`` when no tag is given, as the runtime would read it).

    Raises:
        UsageError: not an image reference, or a digest that is not sha256 with 64 hex digits.
    """
    return check_image_reference(image, name="serving image").canonical()


def image_warning(image: str) -> str | None:
    """Why a predictor image named by tag is weaker than one named by digest, or ``None``.

    The deploy step records it in its summary (``image_warning``).

    Raises:
        UsageError: not an image reference.
    """
    return check_image_reference(image, name="serving image").tag_warning("serving image")


def _resources(overrides: dict | None) -> dict:
    merged = copy.deepcopy(DEFAULT_RESOURCES)
    for key, values in (overrides or {}).items():
        if key not in ("requests", "limits"):
            raise UsageError(f"resources may only hold 'requests' and 'limits', not {key!r}")
        merged[key] = {**merged.get(key, {}), **values}
    return merged


def _secret_env(store_secret: str) -> list[dict]:
    """Store settings as references into the Secret: no value ever appears here."""
    # The server needs an endpoint and credentials; TLS and the bucket have defaults.
    optional = (SECURE_VAR, BUCKET_VAR)
    env = []
    for key in STORE_ENV_VARS:
        ref: dict[str, Any] = {"name": store_secret, "key": key}
        if key in optional:
            ref["optional"] = True
        env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    return env


def _container(
    model_name: str,
    storage_uri: str,
    image: str,
    resources: dict | None,
    store_secret: str,
    store_ca: tuple[str, str] | None = None,
) -> dict:
    """The ``python -m serving`` container: one model, store settings from the Secret, non-root.

    With ``store_ca`` (ConfigMap, key) the container trusts the store's private CA:
    ``MLOPS_S3_CA_BUNDLE`` names the file the ConfigMap volume mounts (a path, not a
    credential: the only literal value among the store settings).
    """
    env = _secret_env(store_secret)
    mounts = [{"name": "signing-public-key", "mountPath": PUBLIC_KEY_MOUNT, "readOnly": True}]
    if store_ca is not None:
        env.append({"name": CA_BUNDLE_VAR, "value": f"{STORE_CA_MOUNT}/{store_ca[1]}"})
        mounts.append({"name": STORE_CA_VOLUME, "mountPath": STORE_CA_MOUNT, "readOnly": True})
    return {
        "name": CONTAINER_NAME,
        "image": image,
        "command": ["python", "-m", "serving"],
        "args": [
            "--model-name",
            model_name,
            "--storage-uri",
            storage_uri,
            "--public-key",
            f"{PUBLIC_KEY_MOUNT}/{PUBLIC_KEY_FILE}",
            "--http-port",
            str(HTTP_PORT),
        ],
        "env": env,
        "ports": [{"name": "http1", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": f"/v2/models/{model_name}/ready", "port": HTTP_PORT},
            "initialDelaySeconds": 2,
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 6,
        },
        "resources": _resources(resources),
        "volumeMounts": mounts,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def _predictor(
    model_name: str,
    version: str,
    storage_uri: str,
    *,
    image: str,
    service_account: str,
    resources: dict | None,
    public_key_secret: str,
    store_secret: str,
    store_ca: tuple[str, str] | None = None,
) -> dict:
    """The predictor: the container, its labels, the public key it verifies with, the store's CA."""
    volumes: list[dict[str, Any]] = [
        {
            "name": "signing-public-key",
            "secret": {
                "secretName": public_key_secret,
                "items": [{"key": PUBLIC_KEY_FILE, "path": PUBLIC_KEY_FILE}],
            },
        }
    ]
    if store_ca is not None:
        config_map, key = store_ca
        # Not optional: without the ConfigMap the pod does not start, rather than the
        # server falling back to the system's CAs and failing every store read.
        volumes.append(
            {
                "name": STORE_CA_VOLUME,
                "configMap": {"name": config_map, "items": [{"key": key, "path": key}]},
            }
        )
    return {
        "serviceAccountName": service_account,
        "labels": {LABEL_MODEL: model_name, LABEL_VERSION: version},
        "containers": [
            _container(model_name, storage_uri, image, resources, store_secret, store_ca)
        ],
        "volumes": volumes,
    }


def build_inferenceservice(
    model_name: str,
    version: str,
    storage_uri: str,
    *,
    namespace: str = "kubeflow-user",
    image: str = SERVING_IMAGE,
    service_account: str = "mlops-serving",
    deployment_mode: DeploymentMode = "Serverless",
    canary_percent: int | None = None,
    previous: dict | None = None,
    resources: dict | None = None,
    public_key_secret: str = PUBLIC_KEY_SECRET,
    store_secret: str = STORE_SECRET,
    mesh_routed: bool = False,
    store_ca_config_map: str | None = None,
    store_ca_key: str = STORE_CA_KEY,
) -> dict:
    """An InferenceService serving ``storage_uri`` with the project's predictor.

    Args:
        model_name: Model name; also the InferenceService name (DNS-1035 label).
        version: Published version, recorded in labels.
        storage_uri: ``s3://<bucket>/models/<name>/<version>``.
        namespace: Target namespace.
        image: Predictor image (runs ``python -m serving``); a digest reference
            (``repo@sha256:...``) is named by its digest alone.
        service_account: Service account of the predictor pods.
        deployment_mode: ``Serverless`` (Knative) or ``RawDeployment``/``Standard``.
        canary_percent: 1-99 makes the release a canary next to the live stable
            release; None, 0 or 100 (or nothing live yet) releases it fully.
        previous: The live InferenceService as read from the API (needed for a
            Raw-mode canary, whose stable predictor is copied from it), or None.
        resources: Overrides of the default ``requests``/``limits``.
        public_key_secret: Secret holding ``signing-key.pub.pem``.
        store_secret: Secret holding the ``MLOPS_S3_*``/``MLOPS_BUCKET`` keys.
        mesh_routed: Run the new version as a candidate at ``trafficPercent: 0``
            next to the live release, for mesh routes to reach (Raw/Standard mode
            only; ``canary_percent`` must then be None).
        store_ca_config_map: A ConfigMap with the PEM of the store's private CA:
            mounted at ``STORE_CA_MOUNT``, named by ``MLOPS_S3_CA_BUNDLE``; ``None``
            (the default) adds nothing and the server trusts the system's CAs.
        store_ca_key: The ConfigMap's key holding the PEM.

    Returns:
        The manifest as a plain dict.

    Raises:
        UsageError: an invalid name, version, mode, percent, image reference or
            store CA ConfigMap name/key; or,
            with ``mesh_routed``, Serverless mode, a percent, nothing live to run
            next to, or a live stable release that already runs ``version``.
    """
    percent = _checked_inputs(
        model_name, version, storage_uri, namespace, deployment_mode, canary_percent
    )
    store_ca = (
        check_config_map_key_ref(store_ca_config_map, store_ca_key, "store CA ConfigMap")
        if store_ca_config_map is not None
        else None
    )
    live_predictor = ((previous or {}).get("spec") or {}).get("predictor") or {}
    if mesh_routed:
        _check_mesh_routed(model_name, version, namespace, deployment_mode, percent, live_predictor)
    predictor = _predictor(
        model_name,
        version,
        storage_uri,
        image=serving_image_reference(image),
        service_account=service_account,
        resources=resources,
        public_key_secret=public_key_secret,
        store_secret=store_secret,
        store_ca=store_ca,
    )
    # A canary needs something live to run next to; the first release is always full.
    canary = percent if percent is not None and 0 < percent < 100 and live_predictor else None
    if mesh_routed:
        canary = 0  # KServe's split sends the candidate nothing: the mesh routes decide
    if deployment_mode == "Serverless":
        spec = _serverless_spec(predictor, canary)
    else:
        spec = _raw_spec(predictor, model_name, version, canary, live_predictor)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": _metadata(model_name, version, storage_uri, namespace, deployment_mode),
        "spec": spec,
    }


def _checked_inputs(
    model_name: str,
    version: str,
    storage_uri: str,
    namespace: str,
    deployment_mode: str,
    canary_percent: int | None,
) -> int | None:
    """Checks what the manifest is built from; returns the canary percent as an int (or None).

    Raises:
        UsageError: an invalid name, namespace, version, mode, URI or percent.
    """
    _check_isvc_name(model_name)
    _check_namespace(namespace)
    _check_label_value(version, "version")
    if deployment_mode not in _MODES:
        raise UsageError(
            f"deployment_mode must be one of {', '.join(_MODES)}, got {deployment_mode!r}"
        )
    if not storage_uri.startswith("s3://"):
        raise UsageError(f"storage_uri must be an s3:// URI, got {storage_uri!r}")
    if canary_percent is None:
        return None
    return check_canary_percent(canary_percent, allow_bounds=True, name="canary percent")


def _check_mesh_routed(
    model_name: str,
    version: str,
    namespace: str,
    deployment_mode: str,
    percent: int | None,
    live_predictor: dict,
) -> None:
    """Refuses a mesh-routed candidate the cluster could not run as its own predictor Service.

    Raises:
        UsageError: Serverless mode, a weighted percent, nothing live, or ``version``
            already stable.
    """
    where = f"InferenceService {namespace}/{model_name}"
    if deployment_mode == "Serverless":
        raise UsageError(
            f"{where}: a mesh-routed candidate needs RawDeployment or Standard mode (its own "
            "predictor Service next to stable's); Serverless keeps both versions in one "
            "Knative Service"
        )
    if percent is not None:
        raise UsageError(
            "a mesh-routed candidate takes no canary percent: KServe sends it 0% and the mesh "
            "decides"
        )
    if not live_predictor:
        raise UsageError(
            f"{where} is not live: a mesh-routed candidate needs a stable release to run "
            "next to (deploy with mode full first)"
        )
    if (live_predictor.get("labels") or {}).get(LABEL_VERSION) == version:
        raise UsageError(f"{where} already serves {version} as its stable release")


def _serverless_spec(predictor: dict, canary: int | None) -> dict[str, Any]:
    """Knative keeps the previous revision: the spec names the new one and its traffic share."""
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    return {"predictor": predictor}


def _raw_spec(
    predictor: dict, model_name: str, version: str, canary: int | None, live_predictor: dict
) -> dict[str, Any]:
    """Raw/Standard mode: the live predictor stays stable and the new one is ``spec.canary``.

    Without a canary (or when the live predictor already runs ``version``) the
    new predictor replaces the live one under the live variant's name, so the
    existing Deployment is rolled in place.
    """
    stable_name = live_predictor.get("name")
    stable_version = (live_predictor.get("labels") or {}).get(LABEL_VERSION)
    if canary is not None and stable_version != version:
        name = variant_name(model_name, version)
        if name == stable_name:
            name = variant_name(model_name, version + "-canary")
        predictor["name"] = name
        return {
            "predictor": copy.deepcopy(live_predictor),
            "canary": [{"trafficPercent": canary, "predictor": predictor}],
        }
    if stable_name:
        predictor["name"] = stable_name
    return {"predictor": predictor}


def _metadata(
    model_name: str, version: str, storage_uri: str, namespace: str, deployment_mode: str
) -> dict[str, Any]:
    """Name, labels (model and version) and annotations (mode, scraping, storage URI)."""
    return {
        "name": model_name,
        "namespace": namespace,
        "labels": {
            LABEL_NAME: model_name,
            LABEL_PART_OF: "kfp-mlops",
            LABEL_MODEL: model_name,
            LABEL_VERSION: version,
        },
        "annotations": {
            ANNOTATION_MODE: deployment_mode,
            ANNOTATION_SCRAPE: "true",
            ANNOTATION_METRICS_PORT: str(HTTP_PORT),
            ANNOTATION_METRICS_PATH: "/metrics",
            ANNOTATION_STORAGE_URI: storage_uri,
        },
    }


# -- promote / rollback (pure: live object in, desired manifest out) -----------


def is_raw_mode(mode: str | None) -> bool:
    """Whether a deployment mode is RawDeployment/Standard (``spec.canary``, no revisions)."""
    return mode in _RAW_MODES


def deployment_mode_of(isvc: dict) -> str:
    """Serverless or Raw, from the annotation, else from the canary form used."""
    mode = ((isvc.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_MODE)
    if mode in _MODES:
        return mode
    if mode == "Knative":
        return "Serverless"
    return "RawDeployment" if (isvc.get("spec") or {}).get("canary") else "Serverless"


def manifest_from_live(isvc: dict) -> dict:
    """The user-owned part of a live object: apiVersion, kind, name, labels, annotations, spec."""
    meta = isvc.get("metadata") or {}
    out_meta: dict[str, Any] = {"name": meta["name"]}
    if meta.get("namespace"):
        out_meta["namespace"] = meta["namespace"]
    for key in ("labels", "annotations"):
        if meta.get(key):
            out_meta[key] = dict(meta[key])
    return {
        "apiVersion": isvc.get("apiVersion", API_VERSION),
        "kind": isvc.get("kind", KIND),
        "metadata": out_meta,
        "spec": copy.deepcopy(isvc.get("spec") or {}),
    }


def has_canary(isvc: dict) -> bool:
    """Whether a canary currently takes (or may take) traffic."""
    spec = isvc.get("spec") or {}
    if is_raw_mode(deployment_mode_of(isvc)):
        return bool(spec.get("canary"))
    percent = (spec.get("predictor") or {}).get("canaryTrafficPercent")
    return percent is not None and 0 < int(percent) < 100


def _canary_change(isvc: dict, verb: str) -> tuple[dict, bool]:
    """(editable copy of the live object, whether it runs in a Raw mode); refuses without a canary."""
    if not has_canary(isvc):
        name = (isvc.get("metadata") or {}).get("name")
        raise UsageError(f"InferenceService {name!r} has no canary to {verb}")
    return manifest_from_live(isvc), is_raw_mode(deployment_mode_of(isvc))


def _label_served_version(manifest: dict) -> None:
    """Sets the object's version label to the version ``spec.predictor`` runs."""
    version = (manifest["spec"]["predictor"].get("labels") or {}).get(LABEL_VERSION)
    if version:
        manifest["metadata"].setdefault("labels", {})[LABEL_VERSION] = version


def promoted_manifest(isvc: dict) -> dict:
    """The canary becomes the stable release with all traffic.

    Serverless: ``canaryTrafficPercent`` removed (the latest revision gets 100%).
    Raw/Standard: the canary's predictor (keeping its ``name``) replaces
    ``spec.predictor`` and ``spec.canary`` is removed.

    Raises:
        UsageError: there is no canary to promote.
    """
    manifest, raw = _canary_change(isvc, "promote")
    spec = manifest["spec"]
    if raw:
        spec["predictor"] = spec.pop("canary")[0]["predictor"]
    else:
        spec["predictor"].pop("canaryTrafficPercent", None)
    _label_served_version(manifest)
    return manifest


def rolled_back_manifest(isvc: dict) -> dict:
    """All traffic back to the stable release.

    Serverless: ``canaryTrafficPercent: 0`` (KServe routes everything to the
    previous rolled-out revision). Raw/Standard: ``spec.canary`` removed.

    Raises:
        UsageError: there is no canary to roll back.
    """
    manifest, raw = _canary_change(isvc, "roll back")
    spec = manifest["spec"]
    if raw:
        spec.pop("canary")
        _label_served_version(manifest)
    else:
        # spec.predictor still describes the new (now idle) revision, so its labels stay.
        spec["predictor"]["canaryTrafficPercent"] = 0
    return manifest
