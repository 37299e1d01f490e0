"""What the project adds to KServe's REST app, composed with public FastAPI / ASGI API only.

KServe serves one FastAPI app, ``kserve.model_server.app``; its ``RESTServer``
adds KServe's routes, middleware and exception handlers to it when the server
starts. :func:`install` adds ours first, so they are in place before KServe's:

* :class:`RequestGuard`, a pure ASGI middleware on the inference endpoints that
  rejects bodies over ``MLOPS_MAX_BODY_BYTES`` with 413 and non-JSON content
  types with 415, and counts every request (errors included) in the ``mlops_*``
  request metrics, labelled with the version that answered;
* exception handlers turning FastAPI's 422 validation errors (malformed V2 JSON,
  missing fields) into 400 and HTTP errors into ``{"error": ...}``;
* ``GET /v1/models/<name>``: the serving status (stable / canary versions,
  desired state, ``not_ready_reason``), 503 while not ready. Registered before
  KServe's route of the same path, so it is the one FastAPI matches.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlops.core.settings import MAX_BODY_BYTES_VAR
from serving import metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ALLOWED_CONTENT_TYPES = {
    b"application/json",
    b"application/cloudevents+json",
    b"application/ld+json",
    b"application/octet-stream",
}
_V1_PATH = re.compile(r"^/v1/models/([^/:]+):(predict|explain)$")
_V2_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$")


class BodyTooLarge(Exception):
    """A request body grew past the limit while it was being read (chunked uploads)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds the limit of {limit} bytes ({MAX_BODY_BYTES_VAR})")


def classify(path: str) -> tuple[str, str, str] | None:
    """The ``(model, endpoint, protocol)`` of an inference path, else None."""
    match = _V1_PATH.match(path)
    if match:
        return match.group(1), match.group(2), "v1"
    match = _V2_PATH.match(path)
    if match:
        return match.group(1), "infer", "v2"
    return None


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


class RequestGuard:
    """ASGI middleware for the inference endpoints: size and content-type checks, request metrics.

    Args:
        app: The wrapped ASGI app.
        max_body_bytes: Largest body read; a larger one is answered with 413.
        version_of: Model name -> the version it serves, or None for an unknown model
            (its requests are counted under ``model="unknown"``, bounding label cardinality).
    """

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, version_of: Callable[[str], str | None]
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.version_of = version_of

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
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            problem = self._check_headers(scope)
            if problem is not None:
                await _send_json(send_wrapper, *problem)
                return
            limit = self.max_body_bytes
            seen = [0]

            async def limited_receive() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    seen[0] += len(message.get("body", b""))
                    if seen[0] > limit:
                        raise BodyTooLarge(limit)
                return message

            await self.app(scope, limited_receive, send_wrapper)
        finally:
            metrics.end_request(token)
            self._count(model, endpoint, protocol, scratch, status[0], started)

    def _count(
        self, model: str, endpoint: str, protocol: str, scratch: dict, status: int, started: float
    ) -> None:
        known = self.version_of(model)
        label = model if known is not None else metrics.UNKNOWN
        version = scratch.get("version") or known or metrics.UNKNOWN
        metrics.REQUESTS.labels(label, version, protocol).inc()
        if status >= 400:
            metrics.REQUEST_ERRORS.labels(label, version, str(status)).inc()
        metrics.REQUEST_DURATION.labels(label, version, endpoint).observe(
            time.perf_counter() - started
        )

    def _check_headers(self, scope: Scope) -> tuple[int, str] | None:
        content_type = None
        length = None
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
        if content_type is not None:
            base = content_type.split(b";", 1)[0].strip().lower()
            if base and base not in ALLOWED_CONTENT_TYPES:
                return 415, (
                    f"unsupported content type {base.decode('latin-1')!r}: "
                    "send Content-Type: application/json"
                )
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                return 400, "invalid Content-Length header"
            if size > self.max_body_bytes:
                return 413, (
                    f"request body of {size} bytes exceeds the limit of "
                    f"{self.max_body_bytes} bytes ({MAX_BODY_BYTES_VAR})"
                )
        return None


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


def install(app: Any, registry: Any, max_body_bytes: int) -> None:
    """Adds the guard middleware, the 4xx exception handlers and the V1 status route to ``app``.

    Must run before the server starts (Starlette refuses middleware afterwards).
    Idempotent per app, so a process can start more than one server on it.

    Args:
        app: KServe's FastAPI app (``kserve.model_server.app``).
        registry: The ``ModelRepository`` the server serves from.
        max_body_bytes: Largest request body read (``MLOPS_MAX_BODY_BYTES``).
    """
    if getattr(app.state, "mlops_hooks", False):
        return
    app.state.mlops_hooks = True
    app.add_middleware(
        RequestGuard, max_body_bytes=max_body_bytes, version_of=version_lookup(registry)
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(BodyTooLarge, _body_too_large)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_api_route("/v1/models/{model_name}", _status_route(registry), methods=["GET"])


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        kind = error.get("type", "")
        text = error.get("msg", "invalid")
        if kind == "json_invalid":
            text = "malformed JSON: " + str(error.get("ctx", {}).get("error", text))
        problems.append(f"{where}: {text}" if where else text)
    return JSONResponse(
        status_code=400, content={"error": "invalid request: " + "; ".join(problems)}
    )


async def _body_too_large(_request: Request, exc: BodyTooLarge) -> JSONResponse:
    return JSONResponse(status_code=413, content={"error": str(exc)})


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(
        status_code=exc.status_code,
        content={"error": str(exc.detail)},
        headers=getattr(exc, "headers", None),
    )


def _status_route(registry: Any) -> Callable[[str], Awaitable[JSONResponse]]:
    async def model_status(model_name: str) -> JSONResponse:
        model = registry.get_model(model_name)
        if model is None:
            return JSONResponse(
                status_code=404, content={"error": f"Model with name {model_name} does not exist."}
            )
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
