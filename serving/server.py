"""The KServe model server behind ``mlops serve`` and the ``python -m serving`` container entry.

Two modes, same HTTP surface (KServe V1 + V2 REST, ``/metrics``):

* ``run_server`` (``mlops serve``, ``python -m serving.server``): every model in
  the store's deployment states, each as a :class:`~serving.router.RoutedModel`
  (stable + canary) kept up to date by a :class:`~serving.router.Reconciler`.
* ``serve_single`` (``python -m serving``): ONE model from a storage URI (an
  ``s3://`` model version or a local directory), what an InferenceService runs.

On top of KServe's FastAPI app (``kserve.model_server.app``, which KServe's
``RESTServer.create_application`` extends when the server starts) we add:

* ``RequestGuard``, a pure ASGI middleware on the inference endpoints that
  rejects bodies over ``MLOPS_MAX_BODY_BYTES`` (default 1 MiB) with 413 and
  non-JSON content types with 415, and counts every request (errors included)
  in the ``mlops_*`` request metrics;
* exception handlers turning FastAPI's 422 validation errors (malformed V2
  JSON, missing fields) into 400 and HTTP errors into ``{"error": ...}``;
* ``GET /v1/models/<name>`` answering with the serving status (stable / canary
  versions, desired state and ``not_ready_reason``), 503 while not ready.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from serving import metrics

logger = logging.getLogger(__name__)

MAX_BODY_VAR = "MLOPS_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 1 << 20
ALLOWED_CONTENT_TYPES = {
    b"application/json",
    b"application/cloudevents+json",
    b"application/ld+json",
    b"application/octet-stream",
}
_V1_PATH = re.compile(r"^/v1/models/([^/:]+):(predict|explain)$")
_V2_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$")


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds the limit of {limit} bytes ({MAX_BODY_VAR})")


def max_body_bytes_from_env() -> int:
    value = os.environ.get(MAX_BODY_VAR, "").strip()
    if not value:
        return DEFAULT_MAX_BODY_BYTES
    try:
        limit = int(value)
    except ValueError:
        from mlops.core.errors import UsageError

        raise UsageError(f"{MAX_BODY_VAR}={value!r} is not a whole number of bytes") from None
    return limit if limit > 0 else DEFAULT_MAX_BODY_BYTES


def _classify(path: str) -> Optional[tuple[str, str, str]]:
    """(model, endpoint, protocol) of an inference path, else None."""
    match = _V1_PATH.match(path)
    if match:
        return match.group(1), match.group(2), "v1"
    match = _V2_PATH.match(path)
    if match:
        return match.group(1), "infer", "v2"
    return None


async def _send_json(send, status: int, message: str) -> None:
    import orjson

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
    """ASGI middleware for the inference endpoints: size / content-type checks and request metrics."""

    def __init__(
        self, app, max_body_bytes: int, version_of: Callable[[str], Optional[str]]
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.version_of = version_of

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        target = _classify(scope["path"])
        if target is None:
            return await self.app(scope, receive, send)
        model, endpoint, protocol = target
        started = time.perf_counter()
        scratch, token = metrics.begin_request()
        status = [500]

        async def send_wrapper(message):
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

            async def limited_receive():
                message = await receive()
                if message["type"] == "http.request":
                    seen[0] += len(message.get("body", b""))
                    if seen[0] > limit:
                        raise BodyTooLarge(limit)
                return message

            await self.app(scope, limited_receive, send_wrapper)
        finally:
            metrics.end_request(token)
            known = self.version_of(model)
            label = model if known is not None else metrics.UNKNOWN
            version = scratch.get("version") or known or metrics.UNKNOWN
            metrics.REQUESTS.labels(label, version, protocol).inc()
            if status[0] >= 400:
                metrics.REQUEST_ERRORS.labels(label, version, str(status[0])).inc()
            metrics.REQUEST_DURATION.labels(label, version, endpoint).observe(
                time.perf_counter() - started
            )

    def _check_headers(self, scope) -> Optional[tuple[int, str]]:
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
                    f"{self.max_body_bytes} bytes ({MAX_BODY_VAR})"
                )
        return None


def _version_lookup(registry) -> Callable[[str], Optional[str]]:
    def version_of(name: str) -> Optional[str]:
        model = registry.get_model(name)
        if model is None:
            return None
        return (
            getattr(model, "current_version", None)
            or getattr(model, "version", None)
            or metrics.UNKNOWN
        )

    return version_of


_INSTALLED: set[int] = set()


def install_http_hooks(app, registry, max_body_bytes: int | None = None) -> None:
    """Adds the guard middleware, 4xx exception handlers and the V1 status route to KServe's app.

    Must run before ``ModelServer.start`` (KServe adds its own routes then; ours,
    registered first, win for ``GET /v1/models/<name>``). Idempotent per app.
    """
    if id(app) in _INSTALLED:
        return
    _INSTALLED.add(id(app))
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    limit = max_body_bytes or max_body_bytes_from_env()
    app.add_middleware(RequestGuard, max_body_bytes=limit, version_of=_version_lookup(registry))

    async def validation_error(_request, exc: RequestValidationError):
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

    async def body_too_large(_request, exc: BodyTooLarge):
        return JSONResponse(status_code=413, content={"error": str(exc)})

    async def http_error(_request, exc: StarletteHTTPException):
        return JSONResponse(
            status_code=exc.status_code,
            content={"error": str(exc.detail)},
            headers=getattr(exc, "headers", None),
        )

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(BodyTooLarge, body_too_large)
    app.add_exception_handler(StarletteHTTPException, http_error)

    async def model_status(model_name: str):
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

    app.add_api_route("/v1/models/{model_name}", model_status, methods=["GET"])


def _quiet_request_logs() -> None:
    """KServe logs a timing line per request; at thousands of requests/s that is real overhead."""
    import warnings

    from fastapi.exceptions import FastAPIDeprecationWarning

    # KServe 0.21 returns ORJSONResponse, which FastAPI deprecates with a warning on every request.
    warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)
    if os.environ.get("MLOPS_ACCESS_LOG", "").strip().lower() in ("1", "true", "yes", "on"):
        return
    for name in ("kserve.trace", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _model_server_class():
    from kserve import ModelServer
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
    from kserve.protocol.rest.server import RESTServer

    class _QuietRESTServer(RESTServer):
        """KServe logs a full traceback for every 400; a bad client request deserves one debug line."""

        def create_application(self):
            import kserve.model_server as kserve_model_server
            from fastapi.responses import JSONResponse
            from kserve.errors import InvalidInput

            super().create_application()

            async def invalid_input(_request, exc):
                logger.debug("invalid input: %s", exc)
                return JSONResponse(status_code=400, content={"error": str(exc)})

            kserve_model_server.app.add_exception_handler(InvalidInput, invalid_input)

    class MlopsModelServer(ModelServer):
        """KServe's ModelServer bound to a chosen host, REST only, with graceful signal handling."""

        def __init__(self, host: str = "127.0.0.1", http_port: int = 8080, **kwargs) -> None:
            kwargs.setdefault("enable_grpc", False)
            kwargs.setdefault("enable_latency_logging", False)
            kwargs.setdefault("grace_period", 10)
            super().__init__(http_port=http_port, **kwargs)
            self.host = host
            self.signals: list[int] = []

        def start(self, models) -> None:
            import kserve.model_server as kserve_model_server

            install_http_hooks(kserve_model_server.app, self.registered_models)
            _quiet_request_logs()
            self._register_and_check_atleast_one_model_is_ready(models)
            self._rest_server = _QuietRESTServer(
                FASTAPI_APP_IMPORT_STRING,
                self.dataplane,
                self.model_repository_extension,
                self.http_port,
                access_log_format=self.access_log_format,
                workers=1,
                grace_period=self.grace_period,
                event_loop=self.event_loop,
                timeout_keep_alive=self.timeout_keep_alive,
            )
            self._rest_server.config.host = self.host  # KServe hard-codes 0.0.0.0
            self.servers.append(self._rest_server.start())
            self.setup_event_loop()
            self.register_signal_handler()
            asyncio.run(self._serve())

        def register_signal_handler(self) -> None:
            # uvicorn captures SIGINT/SIGTERM while serving, shuts down gracefully and then
            # re-raises the signal with the previous handler: record it instead of dying, so
            # the caller's cleanup (final inference-log flush) runs.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._on_signal)

        def _on_signal(self, sig, _frame) -> None:
            self.signals.append(sig)
            logger.info("model server stopped by signal %d", sig)

    return MlopsModelServer


def _default_public_key() -> Path:
    from mlops.core.settings import mlops_home
    from mlops.trust.signing import default_key_paths

    return default_key_paths(mlops_home())[1]


def _check_public_key(public_key: Path) -> Path:
    from mlops.core.errors import UsageError

    public_key = Path(public_key).expanduser()
    if not public_key.is_file():
        raise UsageError(
            f"public key not found: {public_key} (pass --public-key, or create keys with "
            "the signing commands)"
        )
    return public_key


def run_server(
    host: str = "127.0.0.1", port: int = 8080, store=None, public_key: Path | None = None
) -> int:
    """Serves every deployed model from the store until SIGINT/SIGTERM; returns the exit code."""
    from mlops.core.store import ObjectStore
    from serving.router import Reconciler, logger_factory_from_env

    public_key = _check_public_key(public_key or _default_public_key())
    store = store if store is not None else ObjectStore.from_env()
    server = _model_server_class()(host=host, http_port=port)

    def unregister(name: str) -> None:
        if server.registered_models.get_model(name) is not None:
            server.registered_models.unload(name)

    reconciler = Reconciler(
        store,
        public_key,
        register=server.register_model,
        unregister=unregister,
        logger_factory=logger_factory_from_env(store),
    )
    try:
        reconciler.reconcile_once()  # serve what is deployed from the first request on
        reconciler.start()
        logger.info(
            "mlops serve on http://%s:%d (%d model(s): %s)",
            host,
            port,
            len(reconciler.routers),
            ", ".join(sorted(reconciler.routers)) or "none yet",
        )
        server.start([])
    finally:
        reconciler.close()
        logger.info("mlops serve stopped (inference logs flushed)")
    return 0


# The in-pod entry binds every interface: the kubelet's readiness probe and KServe's
# queue-proxy / Service reach the container on the pod IP, never on its loopback.
IN_POD_HOST = "0.0.0.0"  # nosec B104


def serve_single(
    model_name: str,
    storage_uri: str,
    public_key: Path,
    host: str = IN_POD_HOST,
    port: int = 8080,
    store=None,
) -> int:
    """Serves one model version (s3:// URI or local directory); exit 4 when it fails verification."""
    from mlops.core.errors import EXIT_INVALID, EXIT_SYSTEM
    from mlops.core.settings import ENDPOINT_VAR
    from mlops.model.registry import validate_model_name
    from serving.predictor import SklearnPredictor
    from serving.router import logger_factory_from_env

    validate_model_name(model_name)
    public_key = _check_public_key(public_key)
    if store is None and os.environ.get(ENDPOINT_VAR):
        from mlops.core.store import ObjectStore

        store = ObjectStore.from_env()
    version = ""
    if storage_uri.startswith("s3://"):
        from mlops.model.registry import parse_model_uri

        version = parse_model_uri(storage_uri)[2]
    factory = logger_factory_from_env(store)
    inference_logger = factory(model_name) if factory is not None else None
    predictor = SklearnPredictor(
        model_name,
        storage_uri,
        public_key,
        store=store,
        version=version,
        inference_logger=inference_logger,
    )
    try:
        if not predictor.load():
            reason = predictor.not_ready_reason or ""
            return EXIT_INVALID if "VerificationError" in reason else EXIT_SYSTEM
        metrics.set_model_info(model_name, predictor.version, "stable")
        server = _model_server_class()(host=host, http_port=port)
        server.register_model(predictor)
        server.start([])
    finally:
        metrics.clear_model_info(model_name)
        if inference_logger is not None:
            inference_logger.close()
    return 0


def _configure_logging() -> None:
    level = os.environ.get("MLOPS_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _run_cli(body: Callable[[], int]) -> int:
    from mlops.core.errors import MlopsError

    try:
        return body()
    except MlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m serving.server [--host H] [--port P] [--public-key PEM]``: serve all deployments."""
    parser = argparse.ArgumentParser(
        prog="python -m serving.server", description=run_server.__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--public-key",
        type=Path,
        default=None,
        help="PEM public key models must be signed with "
        "(default: $MLOPS_HOME/keys/signing-key.pub.pem)",
    )
    args = parser.parse_args(argv)
    _configure_logging()
    return _run_cli(lambda: run_server(args.host, args.port, public_key=args.public_key))


def main_single(argv: Sequence[str] | None = None) -> int:
    """``python -m serving --model-name N --storage-uri URI --public-key PEM [--http-port P]``."""
    parser = argparse.ArgumentParser(prog="python -m serving", description=serve_single.__doc__)
    parser.add_argument("--model-name", required=True)
    parser.add_argument(
        "--storage-uri",
        required=True,
        help="s3://<bucket>/models/<name>/<version> or a local model directory",
    )
    parser.add_argument("--public-key", type=Path, required=True)
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--host", default=IN_POD_HOST)
    args = parser.parse_args(argv)
    _configure_logging()
    return _run_cli(
        lambda: serve_single(
            args.model_name, args.storage_uri, args.public_key, host=args.host, port=args.http_port
        )
    )


if __name__ == "__main__":
    sys.exit(main())
