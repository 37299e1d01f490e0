"""Core Kubernetes objects checked against the Kubernetes OpenAPI, with ``kubernetes-validate``.

``kubernetes-validate`` ships the JSON schemas generated from each Kubernetes
release's OpenAPI; the ``-strict`` variants forbid fields the API does not
define, so a misspelt field fails instead of being dropped by the API server.
Custom kinds (Istio, Gateway API, KServe, Prometheus operator) are not in it:
their tests check them against their CRDs.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate

#: The Kubernetes versions core objects must be valid for: 1.30, the API of the
#: kubernetes client the deploy step talks with (``kubernetes==30.x`` in
#: requirements.lock), and 1.37, the newest release kubernetes-validate 1.37 ships.
KUBERNETES_VERSIONS = ("1.30", "1.37")


def core_problems(doc: dict[str, Any], version: str) -> list[str]:
    """What is wrong with ``doc`` for Kubernetes ``version``, strictly (unknown fields fail).

    Args:
        doc: One manifest of a core kind (``v1``, ``networking.k8s.io/v1``, ``rbac...``).
        version: A Kubernetes ``major.minor`` that kubernetes-validate has schemas for.

    Returns:
        ``["<json path>: <message>"]`` for the first violation, else ``[]``; a kind
        with no schema in that version is a problem too (never skipped).
    """
    try:
        validated = kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "(root)"
        return [f"{where}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [exc.message]
    # kubernetes-validate falls back to an older schema it has; this must be the one asked for.
    assert validated == version, (validated, version)
    return []
