"""Prometheus metrics of the model server, in the default registry (KServe serves ``/metrics`` from it).

* ``mlops_requests_total{model,version,role,protocol}`` -- every inference/explain request (errors
  too), and every copy a shadow candidate scored or failed (``role="shadow"``).
* ``mlops_request_errors_total{model,version,role,code}`` -- requests answered with a 4xx/5xx status;
  ``code="aborted"`` for a request whose client went away before the answer (not a server
  error: it matches neither ``4..`` nor ``5..``). A shadow copy that failed counts under
  ``role="shadow"`` with the status the same error gets when it answers a request.
* ``mlops_predictions_total{model,version,role,class}`` -- predicted rows per class; a shadow
  candidate's predictions count under its version with ``role="shadow"``.
* ``mlops_input_out_of_range_total{model,version,role,feature}`` -- input values outside the
  training [min, max] (numeric) or unseen categories, counted per value (a shadow's copies
  under ``role="shadow"``).
* ``mlops_model_info{model,version,role}`` -- 1 while a version is loaded and serving as
  ``stable``, ``canary`` or ``shadow``; the series is removed when it stops serving.
* ``mlops_model_fallback{model,version}`` -- 1 while a model serves an older verified release
  because its desired stable version failed to load or verify.
* ``mlops_request_timeouts_total{phase}`` -- requests dropped because their ``headers`` or
  ``body`` did not arrive in time (408, connection closed).
* ``mlops_inference_log_records_total{model,result}`` -- inference-log rows ``written`` / ``dropped``.
* ``mlops_request_duration_seconds{model,version,role,endpoint}`` -- request latency
  (predict/infer/explain); for a shadow copy (``role="shadow"``, predict/infer), the time
  the candidate took to score it, queueing excluded.
* ``mlops_feedback_labels_total{model,result}`` -- labels of ``POST /v1/models/NAME/feedback``
  ``written`` to the store or ``refused`` (the writer's buffer was full: 503).
* ``mlops_shadow_requests_total{model,result}`` -- copies of requests for a shadow candidate:
  ``scored``, ``failed`` or ``dropped`` (its queue was full).
* ``mlops_batch_requests{model}`` -- requests scored together per model call
  (:mod:`serving.batching`; 1 when the server is idle, more under concurrent load).

Request-level counting happens once per HTTP request in the ASGI middleware
(:mod:`serving.rest`); the model notes which version served the request in a
per-request context (:func:`note_version`, with its role), so the labels name the
version that actually answered and its role (``stable``, ``canary``), including for
canary traffic. ``role`` is ``unknown`` for requests no version answered.

A shadow candidate's copies answer no HTTP request, so the middleware never sees
them: :class:`serving.router.ShadowMirror` counts each one it scored or failed with
:func:`count_shadow_copy`, on its own thread, in the same three request series under
``role="shadow"``. The canary analysis compares those with stable's series; panels and
alerts about what clients were answered must leave ``role="shadow"`` out. Copies dropped
because the queue was full are only in ``mlops_shadow_requests_total``.
"""

from __future__ import annotations

import contextvars
import threading

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "mlops_requests_total",
    "Inference and explain requests received.",
    ["model", "version", "role", "protocol"],
)
REQUEST_ERRORS = Counter(
    "mlops_request_errors_total",
    "Requests answered with an error status.",
    ["model", "version", "role", "code"],
)
PREDICTIONS = Counter(
    "mlops_predictions_total", "Predicted rows per class.", ["model", "version", "role", "class"]
)
OUT_OF_RANGE = Counter(
    "mlops_input_out_of_range_total",
    "Input values outside the training range or unseen categories.",
    ["model", "version", "role", "feature"],
)
MODEL_INFO = Gauge(
    "mlops_model_info",
    "1 while a model version is loaded and serving in a role.",
    ["model", "version", "role"],
)
MODEL_FALLBACK = Gauge(
    "mlops_model_fallback",
    "1 while a model serves an older verified release instead of its desired stable version.",
    ["model", "version"],
)
REQUEST_TIMEOUTS = Counter(
    "mlops_request_timeouts_total",
    "Requests dropped because their headers or body did not arrive in time.",
    ["phase"],
)
# Both phases exist from the start at 0, so rates and alerts see "none" rather than "no data".
for _phase in ("headers", "body"):
    REQUEST_TIMEOUTS.labels(phase=_phase)
INFERENCE_LOG_RECORDS = Counter(
    "mlops_inference_log_records_total",
    "Inference-log rows written to the store or dropped.",
    ["model", "result"],
)
REQUEST_DURATION = Histogram(
    "mlops_request_duration_seconds",
    "Request latency.",
    ["model", "version", "role", "endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

#: The ``result`` label values of the two counters below.
FEEDBACK_RESULTS = ("written", "refused")
SHADOW_RESULTS = ("scored", "failed", "dropped")
FEEDBACK_LABELS = Counter(
    "mlops_feedback_labels_total",
    "Ground-truth labels received over HTTP: written to the store, or refused (buffer full).",
    ["model", "result"],
)
SHADOW_REQUESTS = Counter(
    "mlops_shadow_requests_total",
    "Copies of requests sent to a shadow candidate: scored, failed, or dropped (queue full).",
    ["model", "result"],
)

BATCH_REQUESTS = Histogram(
    "mlops_batch_requests",
    "Requests scored together in one model call.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)

UNKNOWN = "unknown"
#: The role a shadow candidate's copies are counted under (``serving.request_ids.SHADOW``,
#: which imports this module).
SHADOW_ROLE = "shadow"

# Per-request scratch dict set by the middleware; the model writes the serving version into it.
_REQUEST: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "mlops_request", default=None
)
_info_lock = threading.Lock()
_info: set[tuple[str, str, str]] = set()
_fallbacks: dict[str, str] = {}


def begin_request() -> tuple[dict, contextvars.Token]:
    """Opens the per-request scratch dict (the middleware, once per HTTP request).

    Returns:
        The scratch dict and the token that :func:`end_request` resets.
    """
    scratch: dict = {}
    return scratch, _REQUEST.set(scratch)


def end_request(token: contextvars.Token) -> None:
    """Closes the scratch dict :func:`begin_request` opened."""
    _REQUEST.reset(token)


def current_request() -> dict | None:
    """The current request's scratch dict (None outside an HTTP request)."""
    return _REQUEST.get()


def note_version(version: str) -> None:
    """Records which model version is answering the current request (no-op outside a request)."""
    scratch = _REQUEST.get()
    if scratch is not None:
        scratch["version"] = version


def count_predictions(
    model: str, version: str, classes: list, counts, role: str = "stable"
) -> None:
    """Adds ``counts[i]`` predicted rows to class ``classes[i]`` (of ``version`` in ``role``)."""
    for label, count in zip(classes, counts, strict=True):
        if count:
            PREDICTIONS.labels(model, version, role, str(label)).inc(int(count))


def count_out_of_range(
    model: str, version: str, counts: dict[str, int], role: str = "stable"
) -> None:
    """Adds the out-of-range values seen per feature (of ``version`` in ``role``)."""
    for feature, count in counts.items():
        OUT_OF_RANGE.labels(model, version, role, feature).inc(count)


def count_shadow_copy(
    model: str, version: str, protocol: str, endpoint: str, seconds: float, status: int | None
) -> None:
    """Counts one copy a shadow candidate scored (``status`` None) or failed (its HTTP status).

    Args:
        model: The model name.
        version: The shadow candidate's version.
        protocol: The original request's protocol (``v1``, ``v2``).
        endpoint: ``predict`` (V1) or ``infer`` (V2), as the middleware labels them.
        seconds: How long the candidate took to score the copy.
        status: None when it scored the copy, else the status its error answers with.
    """
    result = "scored" if status is None else "failed"
    SHADOW_REQUESTS.labels(model, result).inc()
    REQUESTS.labels(model, version, SHADOW_ROLE, protocol).inc()
    if status is not None:
        REQUEST_ERRORS.labels(model, version, SHADOW_ROLE, str(status)).inc()
    REQUEST_DURATION.labels(model, version, SHADOW_ROLE, endpoint).observe(seconds)


def set_model_info(model: str, version: str, role: str) -> None:
    """Marks a version as serving in ``role`` (``stable``, ``canary`` or ``shadow``)."""
    with _info_lock:
        MODEL_INFO.labels(model, version, role).set(1)
        _info.add((model, version, role))
    # Counters start at 0 for a served model, so their dashboard panels show a healthy
    # zero rather than no data until the first label or shadow copy arrives.
    for result in FEEDBACK_RESULTS:
        FEEDBACK_LABELS.labels(model, result)
    for result in SHADOW_RESULTS:
        SHADOW_REQUESTS.labels(model, result)


def clear_model_info(model: str, version: str | None = None, role: str | None = None) -> None:
    """Removes the info series of a model (optionally only one version / role)."""
    with _info_lock:
        for key in list(_info):
            if key[0] == model and version in (None, key[1]) and role in (None, key[2]):
                try:
                    MODEL_INFO.remove(*key)
                except KeyError:
                    pass
                _info.discard(key)


def set_fallback(model: str, version: str | None) -> None:
    """Marks ``model`` as serving the fallback ``version`` (None: no fallback, series removed)."""
    with _info_lock:
        previous = _fallbacks.get(model)
        if previous == version:
            return
        if previous is not None:
            try:
                MODEL_FALLBACK.remove(model, previous)
            except KeyError:
                pass
            del _fallbacks[model]
        if version is not None:
            MODEL_FALLBACK.labels(model, version).set(1)
            _fallbacks[model] = version
