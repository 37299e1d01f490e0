"""What the project adds to KServe's REST app, composed with public FastAPI / ASGI API only.

KServe serves one FastAPI app, ``kserve.model_server.app``; its ``RESTServer``
adds KServe's routes, middleware and exception handlers to it when the server
starts. :func:`install` adds ours first, so they are in place before KServe's
(FastAPI matches routes in the order they were added):

* :class:`RequestGuard`, a pure ASGI middleware on the inference endpoints that
  rejects bodies over ``MLOPS_MAX_BODY_BYTES`` with 413, bodies slower than
  ``MLOPS_BODY_TIMEOUT_SECONDS`` with 408, non-JSON content types with 415 and a
  malformed ``Inference-Header-Content-Length`` with 400, and counts every request
  (errors included) in the ``mlops_*`` request metrics, labelled with the version
  that answered; a request whose client went away is counted as ``code="aborted"``,
  not as a server error; and counts a prediction whose body is in as arriving
  (:data:`serving.batching.ARRIVALS`) until it is queued: the model's batcher
  briefly waits for such requests;
* exception handlers turning FastAPI's 422 validation errors (malformed V2 JSON,
  missing fields) into 400 and HTTP errors into ``{"error": ...}``;
* ``GET /metrics`` (KServe's, from the default registry) encoded off the event loop;
* ``GET /v1/models/<name>``: the serving status (stable / canary versions,
  desired state, fallback, ``not_ready_reason``), 503 while not ready;
* the Open Inference Protocol's metadata with ``versions`` (every version the name
  serves) and ``platform``, and its versioned paths
  ``/v2/models/<name>/versions/<v>[/ready|/infer]``, which address that version
  directly (404 for a version the name does not serve);
* V2 inference answers without the ``null`` fields KServe's response model would
  write (``parameters`` of the response and of each output): the OIP schema wants
  an object there or nothing;
* request ids (:mod:`serving.request_ids`): the guard checks a client's
  ``x-request-id`` (400 naming the header) and sets ``x-request-id`` and
  ``x-mlops-role`` on every inference answer, errors included;
* ``POST /v1/models/<name>/feedback`` (:mod:`serving.feedback`): ground-truth
  labels by row id, off (403) unless ``MLOPS_FEEDBACK_API`` *and*
  ``MLOPS_FEEDBACK_TOKEN`` are set, then only with ``Authorization: Bearer <token>``
  (401 without, 403 with a wrong one, 404 for a model not served), body bounded
  by ``MLOPS_MAX_BODY_BYTES`` (413);
* the model repository's ``load`` / ``unload``: refused (403) unless the server
  was started with ``MLOPS_ADMIN_API`` *and* ``MLOPS_ADMIN_TOKEN``, and then only
  with ``Authorization: Bearer <token>``. Nothing that changes what is served is
  open to whoever reaches the port.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import re
import struct
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve.errors import InferenceError
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from kserve.protocol.rest.v2_endpoints import V2Endpoints
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlops.core.errors import UsageError
from mlops.core.settings import (
    ADMIN_API_VAR,
    ADMIN_TOKEN_VAR,
    BODY_TIMEOUT_SECONDS_VAR,
    FEEDBACK_API_VAR,
    FEEDBACK_TOKEN_VAR,
    MAX_BODY_BYTES_VAR,
    ServingSettings,
)
from serving import metrics
from serving.batching import ARRIVALS, Ticket
from serving.feedback import SHOWN_UNKNOWN, FeedbackReceiver, parse_labels
from serving.request_ids import (
    REQUEST_ID_HEADER,
    ROLE_HEADER,
    STABLE,
    BadRequestId,
    check_client_id,
    new_request_id,
)
from serving.router import pinned_version

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: What ``GET /v2/models/<name>`` reports as the model's framework.
PLATFORM = "sklearn"
#: The error-metric code of a request whose client went away before the answer.
ABORTED = "aborted"
#: KServe's header giving the JSON part's length in a binary-tensor V2 request.
INFERENCE_HEADER = b"inference-header-content-length"
MODEL_REPOSITORY_EXTENSION = "model_repository_extension"

ALLOWED_CONTENT_TYPES = {
    b"application/json",
    b"application/cloudevents+json",
    b"application/ld+json",
    b"application/octet-stream",
}
_V1_PATH = re.compile(r"^/v1/models/([^/:]+):(predict|explain)$")
_V2_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$")


class BodyTooLarge(StarletteHTTPException):
    """A request body grew past the limit while it was being read (chunked uploads).

    An ``HTTPException``, so FastAPI's body parsing (V2) passes it on instead of
    turning it into a generic 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"request body exceeds the limit of {limit} bytes ({MAX_BODY_BYTES_VAR})"
        )


class BodyTimeout(StarletteHTTPException):
    """The body did not arrive in time; the answer closes the connection."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            f"request body not received within {seconds:g} s ({BODY_TIMEOUT_SECONDS_VAR})",
            headers={"connection": "close"},
        )


def classify(path: str) -> tuple[str, str, str] | None:
    """The ``(model, endpoint, protocol)`` of an inference path, else None."""
    match = _V1_PATH.match(path)
    if match:
        return match.group(1), match.group(2), "v1"
    match = _V2_PATH.match(path)
    if match:
        return match.group(1), "infer", "v2"
    return None


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


async def _send_json(send: Send, status: int, message: str) -> None:
    body = orjson.dumps({"error": message})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _Exchange:
    """What the guard learns about one request while it runs (status, body, disconnect)."""

    __slots__ = ("aborted", "arrival", "body_done", "started", "status")

    def __init__(self, arrival: Ticket | None = None) -> None:
        self.status = 500
        self.started = False
        self.body_done = False
        self.aborted = False
        self.arrival = arrival


class RequestGuard:
    """ASGI middleware for the inference endpoints: limits, header checks, request metrics.

    Args:
        app: The wrapped ASGI app.
        max_body_bytes: Largest body read; a larger one is answered with 413.
        version_of: Model name -> the version it serves, or None for an unknown model
            (its requests are counted under ``model="unknown"``, bounding label cardinality).
        body_timeout: Seconds the whole body may take to arrive after the headers (408 after).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        version_of: Callable[[str], str | None],
        body_timeout: float = ServingSettings.body_timeout_seconds,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.version_of = version_of
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Checks and counts inference requests; passes every other request straight on."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        target = classify(scope["path"])
        if target is None:
            return await self.app(scope, receive, send)
        model, endpoint, protocol = target
        started = time.perf_counter()
        scratch, token = metrics.begin_request()
        # A prediction, once its body is in, is one the model's batcher may wait for.
        arrival = ARRIVALS.begin(model) if endpoint != "explain" else None
        exchange = _Exchange(arrival[0] if arrival is not None else None)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                exchange.started = True
                message["headers"] = _with_id_headers(message.get("headers", ()), scratch)
            await send(message)

        try:
            problem = self._check_headers(scope, protocol)
            if problem is None:
                problem = _note_request_id(scope, scratch)
            if problem is not None:
                await _send_json(send_wrapper, *problem)
                return
            await self._run(scope, self._receiver(receive, exchange), send_wrapper, exchange)
        finally:
            if arrival is not None:
                ARRIVALS.end(*arrival)
            metrics.end_request(token)
            self._count(model, endpoint, protocol, scratch, exchange, started)

    async def _run(self, scope: Scope, receive: Receive, send: Send, exchange: _Exchange) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if not exchange.aborted or exchange.started:
                raise
            # The client is gone: nobody reads an answer, and it is not a server error.
            logger.debug("client went away during %s: %s", scope["path"], type(exc).__name__)

    def _receiver(self, receive: Receive, exchange: _Exchange) -> Receive:
        limit = self.max_body_bytes
        timeout = self.body_timeout
        deadline = asyncio.get_running_loop().time() + timeout
        seen = [0]

        async def guarded_receive() -> Message:
            if exchange.body_done:
                message = await receive()
            else:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    metrics.REQUEST_TIMEOUTS.labels("body").inc()
                    raise BodyTimeout(timeout) from None
            kind = message["type"]
            if kind == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    raise BodyTooLarge(limit)
                if not message.get("more_body", False):
                    exchange.body_done = True
                    if exchange.arrival is not None:
                        ARRIVALS.arrived(exchange.arrival)
            elif kind == "http.disconnect" and not exchange.started:
                exchange.aborted = True
            return message

        return guarded_receive

    def _count(
        self,
        model: str,
        endpoint: str,
        protocol: str,
        scratch: dict,
        exchange: _Exchange,
        started: float,
    ) -> None:
        known = self.version_of(model)
        label = model if known is not None else metrics.UNKNOWN
        version = scratch.get("version") or known or metrics.UNKNOWN
        role = scratch.get("role") or (STABLE if known is not None else metrics.UNKNOWN)
        metrics.REQUESTS.labels(label, version, role, protocol).inc()
        if exchange.aborted:
            metrics.REQUEST_ERRORS.labels(label, version, role, ABORTED).inc()
        elif exchange.status >= 400:
            metrics.REQUEST_ERRORS.labels(label, version, role, str(exchange.status)).inc()
        metrics.REQUEST_DURATION.labels(label, version, role, endpoint).observe(
            time.perf_counter() - started
        )

    def _check_headers(self, scope: Scope, protocol: str) -> tuple[int, str] | None:
        content_type = length = json_length = None
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
            elif name == INFERENCE_HEADER:
                json_length = value
        if content_type is not None:
            base = content_type.split(b";", 1)[0].strip().lower()
            if base and base not in ALLOWED_CONTENT_TYPES:
                return 415, (
                    f"unsupported content type {base.decode('latin-1')!r}: "
                    "send Content-Type: application/json"
                )
        size = None
        if length is not None:
            size = _byte_count(length)
            problem = self._check_length(size)
            if problem is not None:
                return problem
        if json_length is not None and protocol == "v2":
            return self._check_json_length(json_length, size)
        return None

    def _check_length(self, size: int | None) -> tuple[int, str] | None:
        """Content-Length: a byte count within ``MLOPS_MAX_BODY_BYTES``, else 400 / 413."""
        if size is None:
            return 400, "invalid Content-Length header"
        if size > self.max_body_bytes:
            return 413, (
                f"request body of {size} bytes exceeds the limit of "
                f"{self.max_body_bytes} bytes ({MAX_BODY_BYTES_VAR})"
            )
        return None

    def _check_json_length(self, value: bytes, body_size: int | None) -> tuple[int, str] | None:
        """Inference-Header-Content-Length: a byte count within the body, else 400."""
        count = _byte_count(value)
        bound = self.max_body_bytes if body_size is None else min(body_size, self.max_body_bytes)
        if count is None or not 0 < count <= bound:
            shown = value[:40].decode("latin-1")
            return 400, (
                f"invalid Inference-Header-Content-Length header {shown!r}: the length in bytes "
                f"of the request's JSON part, a whole number from 1 to the body's length ({bound})"
            )
        return None


_REQUEST_ID_BYTES = REQUEST_ID_HEADER.encode()
_ROLE_BYTES = ROLE_HEADER.encode()


def _note_request_id(scope: Scope, scratch: dict) -> tuple[int, str] | None:
    """Puts the client's ``x-request-id`` (checked) in the request's scratch dict; 400 when invalid."""
    for name, value in scope.get("headers", ()):
        if name == _REQUEST_ID_BYTES:
            text = value.decode("latin-1")
            if not text:
                return None
            try:
                scratch["request_id"] = check_client_id(text, f"{REQUEST_ID_HEADER} header")
            except BadRequestId as exc:
                return 400, str(exc)
            return None
    return None


def _with_id_headers(headers: Any, scratch: dict) -> list[tuple[bytes, bytes]]:
    """An answer's headers with ``x-request-id`` (the request's, else a new one) and ``x-mlops-role``."""
    request_id = scratch.get("request_id")
    if not request_id:
        request_id = scratch["request_id"] = new_request_id()
    out = [(k, v) for k, v in headers if k.lower() not in (_REQUEST_ID_BYTES, _ROLE_BYTES)]
    out.append((_REQUEST_ID_BYTES, str(request_id).encode("latin-1")))
    role = scratch.get("role")
    if role:
        out.append((_ROLE_BYTES, str(role).encode("latin-1")))
    return out


def _byte_count(value: bytes) -> int | None:
    """A header's non-negative decimal byte count (digits only, bounded), else None."""
    text = value.strip()
    if not text.isdigit() or len(text) > 18:
        return None
    return int(text)


# -- what a registered model serves -----------------------------------------------------------
def served_versions(model: Any) -> list[str]:
    """The versions a registered model answers for: stable first, then the canary."""
    versions = getattr(model, "served_versions", None)
    if callable(versions):
        return list(versions())
    version = getattr(model, "version", None)
    return [str(version)] if version and getattr(model, "ready", False) else []


def model_for_version(model: Any, version: str) -> Any:
    """The model object answering for ``version`` of a registered model, or None."""
    find = getattr(model, "predictor_for", None)
    if callable(find):
        return find(version)
    return model if version in served_versions(model) else None


def version_lookup(registry: Any) -> Callable[[str], str | None]:
    """Model name -> served version from a KServe ``ModelRepository`` (None: no such model)."""

    def version_of(name: str) -> str | None:
        model = registry.get_model(name)
        if model is None:
            return None
        return (
            getattr(model, "current_version", None)
            or getattr(model, "version", None)
            or metrics.UNKNOWN
        )

    return version_of


def _no_model(name: str) -> JSONResponse:
    return _error(404, f"Model with name {name} does not exist.")


def _no_version(name: str, version: str, model: Any) -> JSONResponse:
    served = ", ".join(served_versions(model)) or "none"
    return _error(404, f"model {name} does not serve version {version!r} (it serves: {served})")


# -- install -----------------------------------------------------------------------------------
def install(
    app: Any,
    registry: Any,
    settings: ServingSettings,
    dataplane: Any,
    feedback: FeedbackReceiver | None = None,
) -> None:
    """Adds the guard, the exception handlers and the project's routes to KServe's ``app``.

    Must run before the server starts (Starlette refuses middleware afterwards).
    Idempotent per app, so a process can start more than one server on it.

    Args:
        app: KServe's FastAPI app (``kserve.model_server.app``).
        registry: The ``ModelRepository`` the server serves from.
        settings: Body limit and timeout, admin and feedback opt-ins and tokens.
        dataplane: The server's KServe ``DataPlane`` (server metadata, V2 inference).
        feedback: Where ``POST /v1/models/<name>/feedback`` stores labels (None: no store,
            the endpoint answers 503 even when enabled).
    """
    if getattr(app.state, "mlops_hooks", False):
        return
    app.state.mlops_hooks = True
    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.max_body_bytes,
        version_of=version_lookup(registry),
        body_timeout=settings.body_timeout_seconds,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    token = settings.admin_token if settings.admin_enabled else None
    if settings.admin_api and not token:
        logger.warning(
            "%s is set but %s is not: the model repository endpoints stay off",
            ADMIN_API_VAR,
            ADMIN_TOKEN_VAR,
        )
    _add_routes(app, registry, dataplane, token)
    feedback_token = settings.feedback_token if settings.feedback_enabled else None
    if settings.feedback_api and not settings.feedback_token:
        logger.warning(
            "%s is set but %s is not: the feedback endpoint stays off",
            FEEDBACK_API_VAR,
            FEEDBACK_TOKEN_VAR,
        )
    app.add_api_route(
        "/v1/models/{model_name}/feedback",
        _feedback_route(registry, feedback, feedback_token, settings.max_body_bytes),
        methods=["POST"],
    )


def _add_routes(app: Any, registry: Any, dataplane: Any, token: str | None) -> None:
    app.add_api_route("/metrics", _metrics, methods=["GET"])
    server_metadata = _server_metadata_route(dataplane, admin=token is not None)
    app.add_api_route("/v2", server_metadata, methods=["GET"])
    app.add_api_route("/v2/", server_metadata, methods=["GET"])
    app.add_api_route("/v1/models/{model_name}", _status_route(registry), methods=["GET"])
    app.add_api_route("/v2/models/{model_name}", _metadata_route(registry), methods=["GET"])
    app.add_api_route(
        "/v2/models/{model_name}/versions/{model_version}",
        _metadata_route(registry),
        methods=["GET"],
    )
    app.add_api_route(
        "/v2/models/{model_name}/versions/{model_version}/ready",
        _version_ready_route(registry),
        methods=["GET"],
    )
    endpoints = V2Endpoints(dataplane)
    app.add_api_route(
        "/v2/models/{model_name}/infer",
        _infer_route(endpoints),
        methods=["POST"],
        response_model=None,
    )
    app.add_api_route(
        "/v2/models/{model_name}/versions/{model_version}/infer",
        _version_infer_route(registry, endpoints),
        methods=["POST"],
        response_model=None,
    )
    for action in ("load", "unload"):
        app.add_api_route(
            f"/v2/repository/models/{{model_name}}/{action}",
            _repository_route(registry, action, token),
            methods=["POST"],
        )


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        kind = error.get("type", "")
        text = error.get("msg", "invalid")
        if kind == "json_invalid":
            text = "malformed JSON: " + str(error.get("ctx", {}).get("error", text))
        problems.append(f"{where}: {text}" if where else text)
    return _error(400, "invalid request: " + "; ".join(problems))


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))


# -- routes ------------------------------------------------------------------------------------
async def _metrics(request: Request) -> Response:
    """``GET /metrics`` as KServe answers it, encoded on a worker thread.

    Encoding every series (each model, version, class and bucket) takes
    milliseconds; on the event loop, every scrape would stall the requests in flight.
    """
    from prometheus_client import REGISTRY, exposition

    encoder, content_type = exposition.choose_encoder(request.headers.get("accept", ""))
    content = await asyncio.to_thread(encoder, REGISTRY)
    return Response(content=content, headers={"content-type": content_type})


def _server_metadata_route(dataplane: Any, admin: bool) -> Callable[[], Awaitable[JSONResponse]]:
    async def server_metadata() -> JSONResponse:
        body = dict(dataplane.metadata())
        # Advertise the model repository only where it answers.
        body["extensions"] = [
            e for e in body.get("extensions", []) if admin or e != MODEL_REPOSITORY_EXTENSION
        ]
        return JSONResponse(content=body)

    return server_metadata


def _status_route(registry: Any) -> Callable[[str], Awaitable[JSONResponse]]:
    async def model_status(model_name: str) -> JSONResponse:
        model = registry.get_model(model_name)
        if model is None:
            return _no_model(model_name)
        if hasattr(model, "status"):
            body = model.status()
        else:
            body = {
                "name": model_name,
                "ready": bool(model.ready),
                "stable": getattr(model, "version", None),
                "not_ready_reason": getattr(model, "not_ready_reason", None),
            }
        ready = await model.healthy()
        body["ready"] = bool(ready)
        if not ready:
            body["error"] = f"Model with name {model_name} is not ready."
            return JSONResponse(status_code=503, content=body)
        return JSONResponse(content=body)

    return model_status


def _metadata_route(registry: Any) -> Callable[..., Awaitable[JSONResponse]]:
    async def model_metadata(model_name: str, model_version: str | None = None) -> JSONResponse:
        model = registry.get_model(model_name)
        if model is None:
            return _no_model(model_name)
        answering = model if model_version is None else model_for_version(model, model_version)
        if answering is None:
            return _no_version(model_name, str(model_version), model)
        return JSONResponse(
            content={
                "name": model_name,
                "versions": served_versions(model),
                "platform": PLATFORM,
                "inputs": answering.get_input_types(),
                "outputs": answering.get_output_types(),
            }
        )

    return model_metadata


def _version_ready_route(registry: Any) -> Callable[[str, str], Awaitable[JSONResponse]]:
    async def version_ready(model_name: str, model_version: str) -> JSONResponse:
        model = registry.get_model(model_name)
        if model is None:
            return _no_model(model_name)
        answering = model_for_version(model, model_version)
        if answering is None:
            return _no_version(model_name, model_version, model)
        if not answering.ready:
            return _error(
                503, f"Model with name {model_name} version {model_version} is not ready."
            )
        return JSONResponse(content={"name": model_name, "ready": True})

    return version_ready


def _without_nulls(result: Any, raw_response: Response) -> Any:
    """KServe's V2 answer as JSON with its unset (``None``) fields left out.

    KServe's handler returns its pydantic ``InferenceResponse``, which FastAPI
    would write with ``"parameters": null``; anything else (a binary answer)
    passes unchanged. The headers KServe set on the response are kept.
    """
    if not isinstance(result, BaseModel):
        return result
    headers = {k: v for k, v in raw_response.headers.items() if k != "content-length"}
    body = orjson.dumps(result.model_dump(exclude_none=True), option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(content=body, media_type="application/json", headers=headers)


# What KServe's binary-body decoder raises on a malformed body, before any model runs.
_DECODE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, struct.error, InferenceError)


def _binary_body_problem(
    raw_request: Request, request_body: InferenceRequest | bytes
) -> str | None:
    """Why a binary V2 body (JSON header + raw tensors) cannot be decoded, else None.

    KServe decodes it inside its handler and answers 500 on any mistake in the
    client's bytes; decoding it once here first turns those into a 400. JSON bodies
    are validated by the request model and the predictor.
    """
    if not isinstance(request_body, bytes):
        return None
    header_length = raw_request.headers.get("inference-header-content-length")
    if header_length is None:
        return None
    try:
        InferRequest.from_bytes(request_body, int(header_length), model_name="")
    except _DECODE_ERRORS as exc:
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        return f"malformed binary inference request: {reason}"
    return None


def _infer_route(endpoints: V2Endpoints) -> Callable[..., Awaitable[Any]]:
    async def infer(
        raw_request: Request,
        raw_response: Response,
        model_name: str,
        request_body: InferenceRequest | bytes,
    ) -> Any:
        problem = _binary_body_problem(raw_request, request_body)
        if problem:
            return _error(400, problem)
        result = await endpoints.infer(raw_request, raw_response, model_name, request_body)
        return _without_nulls(result, raw_response)

    return infer


def _version_infer_route(registry: Any, endpoints: V2Endpoints) -> Callable[..., Awaitable[Any]]:
    async def version_infer(
        raw_request: Request,
        raw_response: Response,
        model_name: str,
        model_version: str,
        request_body: InferenceRequest | bytes,
    ) -> Any:
        model = registry.get_model(model_name)
        if model is None:
            return _no_model(model_name)
        if model_for_version(model, model_version) is None:
            return _no_version(model_name, model_version, model)
        problem = _binary_body_problem(raw_request, request_body)
        if problem:
            return _error(400, problem)
        # KServe's own V2 handler (decoding, inference, encoding), pinned to the version.
        with pinned_version(model_version):
            result = await endpoints.infer(raw_request, raw_response, model_name, request_body)
        return _without_nulls(result, raw_response)

    return version_infer


def _authorize(
    request: Request, token: str | None, disabled: str | None = None, kind: str = "admin"
) -> JSONResponse | None:
    """None when the request may change state (bearer ``token``), else the refusal.

    Args:
        request: The request.
        token: The token the endpoint needs; None: the endpoint is off (403 ``disabled``).
        disabled: The refusal's message when the endpoint is off.
        kind: Which token (``admin``, ``feedback``), for the 403 message.
    """
    if token is None:
        return _error(
            403,
            disabled
            or "model repository endpoints are disabled on this server: what it serves follows "
            f"the deployment state (enable them with {ADMIN_API_VAR}=true and "
            f"{ADMIN_TOKEN_VAR})",
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return _error(
            401, "this endpoint needs Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"}
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return _error(403, f"invalid {kind} token")
    return None


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None once it grows past ``limit`` bytes (nothing more is read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


_FEEDBACK_OFF = (
    "the feedback endpoint is disabled on this server (enable it with "
    f"{FEEDBACK_API_VAR}=true and {FEEDBACK_TOKEN_VAR})"
)


def _feedback_route(
    registry: Any, feedback: FeedbackReceiver | None, token: str | None, limit: int
) -> Callable[[str, Request], Awaitable[JSONResponse]]:
    async def receive_feedback(model_name: str, request: Request) -> JSONResponse:
        refusal = _authorize(request, token, _FEEDBACK_OFF, "feedback")
        if refusal is not None:
            return refusal
        if registry.get_model(model_name) is None:
            return _no_model(model_name)
        if feedback is None:
            return _error(503, "this server has no object store to keep feedback in")
        body = await _bounded_body(request, limit)
        if body is None:
            return _error(
                413, f"request body exceeds the limit of {limit} bytes ({MAX_BODY_BYTES_VAR})"
            )
        try:
            labels = parse_labels(orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            return _error(400, f"malformed JSON: {exc}")
        except UsageError as exc:
            return _error(400, f"invalid feedback: {exc}")
        ids = list(labels)
        unknown = await asyncio.to_thread(feedback.unknown_ids, model_name, ids)
        if not feedback.writer.submit(model_name, labels):
            return _error(
                503, "the feedback buffer is full (the store is slow or down): retry later"
            )
        return JSONResponse(
            content={
                "stored": len(labels),
                "unknown": len(unknown),
                "unknown_ids": unknown[:SHOWN_UNKNOWN],
            }
        )

    return receive_feedback


def _repository_route(
    registry: Any, action: str, token: str | None
) -> Callable[[str, Request], Awaitable[JSONResponse]]:
    async def repository_action(model_name: str, request: Request) -> JSONResponse:
        refusal = _authorize(request, token)
        if refusal is not None:
            logger.warning(
                "refused %s of model %s from %s (%d)",
                action,
                model_name,
                request.client.host if request.client else "?",
                refusal.status_code,
            )
            return refusal
        logger.warning("admin %s of model %s", action, model_name)
        if action == "unload":
            if registry.get_model(model_name) is None:
                return _no_model(model_name)
            registry.unload(model_name)
            return JSONResponse(content={"name": model_name, "unload": True})
        loaded = registry.load(model_name)
        if inspect.isawaitable(loaded):
            await loaded
        if registry.get_model(model_name) is None:
            return _no_model(model_name)
        if not await registry.is_model_ready(model_name):
            return _error(503, f"Model with name {model_name} is not ready.")
        return JSONResponse(content={"name": model_name, "load": True})

    return repository_action
