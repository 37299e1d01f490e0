"""Applying InferenceServices with ``kserve.KServeClient``, with rollback on failure.

``apply_inferenceservice`` reads the live object first, creates or replaces it,
then polls until the ``Ready`` condition is ``True`` for the new generation. If
that does not happen in time, or ``Ready`` stays ``False`` for the new
generation, the change is undone — the previous spec, labels and annotations
are put back, or the object is deleted when it did not exist — and
``MlopsError`` is raised with the reason.

Updates use *replace* (with the live ``resourceVersion``) rather than a merge
patch: a merge patch cannot remove a field (``spec.canary``,
``canaryTrafficPercent``) and the desired spec must hold exactly what we built.
Labels and annotations other tools set on the live object are kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from mlops.core.errors import MlopsError
from mlops.deployment.inferenceservice import (
    API_VERSION,
    KIND,
    manifest_from_live,
    promoted_manifest,
    rolled_back_manifest,
)

__all__ = [
    "default_client",
    "get_inferenceservice",
    "apply_inferenceservice",
    "promote_inferenceservice",
    "rollback_inferenceservice",
    "ready_condition",
]

logger = logging.getLogger(__name__)

# Ready=False on the new generation must persist this many polls to count as a
# failure: during a rollout KServe may report it briefly while pods start.
FALSE_POLLS_TO_FAIL = 2


def default_client():
    """A ``KServeClient`` from the in-cluster config or ``~/.kube/config``."""
    from kserve import KServeClient

    try:
        return KServeClient()
    except Exception as exc:  # config loading raises several unrelated types
        raise MlopsError(f"cannot configure the Kubernetes client: {exc}") from exc


def _is_not_found(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "status", None) == 404:
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return "(404)" in text or "Not Found" in text


def get_inferenceservice(name: str, namespace: str, client=None) -> dict | None:
    """The live InferenceService, or None when it does not exist."""
    client = client or default_client()
    try:
        return client.get(name, namespace=namespace)
    except Exception as exc:  # KServeClient wraps ApiException in RuntimeError
        if _is_not_found(exc):
            return None
        raise MlopsError(f"cannot read InferenceService {namespace}/{name}: {exc}") from exc


def _to_sdk(manifest: dict):
    """The manifest as the SDK object ``KServeClient`` expects.

    ``KServeClient.create/replace`` read ``.api_version`` and
    ``.metadata.resource_version``; the spec is passed on as the plain dict so
    no field the SDK models lack is lost on serialisation.
    """
    from kserve import V1beta1InferenceService
    from kubernetes.client import V1ObjectMeta

    meta = manifest.get("metadata") or {}
    return V1beta1InferenceService(
        api_version=manifest.get("apiVersion", API_VERSION),
        kind=manifest.get("kind", KIND),
        metadata=V1ObjectMeta(
            name=meta.get("name"),
            namespace=meta.get("namespace"),
            labels=meta.get("labels"),
            annotations=meta.get("annotations"),
            resource_version=meta.get("resourceVersion"),
        ),
        spec=manifest.get("spec"),
    )


def _replace_body(desired: dict, live: dict, keep_live_metadata: bool = True) -> dict:
    body = manifest_from_live(desired)
    live_meta = live.get("metadata") or {}
    meta = body["metadata"]
    for key in ("labels", "annotations"):
        merged = dict(live_meta.get(key) or {}) if keep_live_metadata else {}
        merged.update(meta.get(key) or {})
        if merged:
            meta[key] = merged
    meta["resourceVersion"] = live_meta.get("resourceVersion")
    return body


def ready_condition(isvc: dict) -> dict | None:
    """The ``Ready`` entry of ``status.conditions``, or None when the controller set none yet."""
    for condition in (isvc.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return None


def _wait_ready(
    client,
    name: str,
    namespace: str,
    generation: int | None,
    timeout_seconds: float,
    poll_seconds: float,
    sleep: Callable[[float], None],
) -> dict:
    """Polls until Ready=True for ``generation``; raises ``_NotReady`` otherwise."""
    deadline = time.monotonic() + timeout_seconds
    false_polls = 0
    last: dict | None = None
    while True:
        last = client.get(name, namespace=namespace)
        status = last.get("status") or {}
        current = generation is None or int(status.get("observedGeneration") or 0) >= generation
        condition = ready_condition(last)
        if current and condition is not None:
            state = str(condition.get("status", "Unknown")).lower()
            if state == "true":
                return last
            if state == "false":
                false_polls += 1
                if false_polls >= FALSE_POLLS_TO_FAIL:
                    raise _NotReady(_condition_text(condition, "Ready=False"))
            else:
                false_polls = 0
        if time.monotonic() >= deadline:
            reason = (
                _condition_text(condition, "no Ready condition")
                if current
                else (f"generation {generation} not observed by the controller")
            )
            raise _NotReady(f"not Ready after {timeout_seconds:g}s ({reason})")
        sleep(poll_seconds)


def _condition_text(condition: dict | None, default: str) -> str:
    if not condition:
        return default
    parts = [f"Ready={condition.get('status')}"]
    for key in ("reason", "message"):
        if condition.get(key):
            parts.append(f"{key}: {condition[key]}")
    return ", ".join(parts)


class _NotReady(Exception):
    pass


def _restore(client, name: str, namespace: str, previous: dict | None) -> str:
    """Puts the previous object back (or deletes the new one); describes what it did."""
    try:
        if previous is None:
            client.delete(name, namespace=namespace)
            return "deleted the new InferenceService (none existed before)"
        live = get_inferenceservice(name, namespace, client)
        if live is None:
            body = manifest_from_live(previous)
            client.create(_to_sdk(body), namespace=namespace)
        else:
            body = _replace_body(previous, live, keep_live_metadata=False)
            client.replace(name, _to_sdk(body), namespace=namespace)
        return "restored the previous spec"
    except Exception as exc:  # report both failures; the original one matters most
        logger.exception("rollback of InferenceService %s/%s failed", namespace, name)
        return f"ROLLBACK FAILED: {exc}"


def apply_inferenceservice(
    manifest: dict,
    *,
    client=None,
    timeout_seconds: float = 300,
    poll_seconds: float = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Creates or replaces an InferenceService and waits until it is Ready.

    Args:
        manifest: The desired InferenceService (``metadata.name``/``namespace`` set).
        client: A ``KServeClient`` (or an object with its ``get``/``create``/
            ``replace``/``delete`` methods); default from the kube config.
        timeout_seconds: How long to wait for ``Ready=True``.
        poll_seconds: Interval between status reads.
        sleep: Waits between polls (tests pass a no-op).

    Returns:
        The Ready InferenceService as read from the API.

    Raises:
        MlopsError: the API refused the change, or the service did not become
            Ready; the previous state was restored first (or the new object
            deleted), and the message says which and why.
    """
    client = client or default_client()
    meta = manifest.get("metadata") or {}
    name, namespace = meta.get("name"), meta.get("namespace")
    if not name or not namespace:
        raise MlopsError("the InferenceService manifest needs metadata.name and metadata.namespace")
    previous = get_inferenceservice(name, namespace, client)
    try:
        if previous is None:
            logger.info("creating InferenceService %s/%s", namespace, name)
            result = client.create(_to_sdk(manifest), namespace=namespace)
        else:
            logger.info("replacing InferenceService %s/%s", namespace, name)
            result = client.replace(
                name, _to_sdk(_replace_body(manifest, previous)), namespace=namespace
            )
    except Exception as exc:
        raise MlopsError(f"the API refused InferenceService {namespace}/{name}: {exc}") from exc
    generation = ((result or {}).get("metadata") or {}).get("generation")
    try:
        return _wait_ready(
            client, name, namespace, generation, timeout_seconds, poll_seconds, sleep
        )
    except _NotReady as exc:
        outcome = _restore(client, name, namespace, previous)
        raise MlopsError(f"InferenceService {namespace}/{name} failed: {exc}; {outcome}") from None


def _change(name: str, namespace: str, client, make: Callable[[dict], dict], **wait: Any) -> dict:
    client = client or default_client()
    live = get_inferenceservice(name, namespace, client)
    if live is None:
        raise MlopsError(f"InferenceService {namespace}/{name} does not exist")
    desired = make(live)
    desired["metadata"].setdefault("namespace", namespace)
    return apply_inferenceservice(desired, client=client, **wait)


def promote_inferenceservice(
    name: str,
    namespace: str,
    client=None,
    *,
    timeout_seconds: float = 300,
    poll_seconds: float = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Sends all traffic to the canary and makes it the stable release.

    Serverless: ``canaryTrafficPercent`` removed. Raw/Standard: the canary's
    predictor becomes ``spec.predictor`` and ``spec.canary`` is removed. See
    :func:`mlops.deployment.inferenceservice.promoted_manifest`.

    Raises:
        UsageError: there is no canary. MlopsError: as ``apply_inferenceservice``.
    """
    return _change(
        name,
        namespace,
        client,
        promoted_manifest,
        timeout_seconds=timeout_seconds,
        poll_seconds=poll_seconds,
        sleep=sleep,
    )


def rollback_inferenceservice(
    name: str,
    namespace: str,
    client=None,
    *,
    timeout_seconds: float = 300,
    poll_seconds: float = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Sends all traffic back to the stable release.

    Serverless: ``canaryTrafficPercent: 0`` (KServe routes to the previous
    rolled-out revision). Raw/Standard: ``spec.canary`` removed.

    Raises:
        UsageError: there is no canary. MlopsError: as ``apply_inferenceservice``.
    """
    return _change(
        name,
        namespace,
        client,
        rolled_back_manifest,
        timeout_seconds=timeout_seconds,
        poll_seconds=poll_seconds,
        sleep=sleep,
    )
