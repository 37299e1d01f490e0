"""The model server behind ``mlops serve``, ``python -m serving.server`` and ``python -m serving``.

Shaped like KServe's sklearnserver entry: build the models, construct a plain
``kserve.ModelServer`` and ``start`` it. Two modes, one HTTP surface (KServe V1 +
V2 REST, ``/metrics``, plus what :mod:`serving.rest` adds):

* :func:`run_server` (``mlops serve``, ``python -m serving.server``): every model in
  the store's deployment states, each a :class:`~serving.router.RoutedModel`
  (stable + canary) in the server's ``ModelRepository``, kept up to date by a
  :class:`~serving.router.Reconciler` (deploy / promote / rollback without a restart).
* :func:`serve_single` (``python -m serving``, what an InferenceService runs): ONE
  model from a storage URI (an ``s3://`` model version or a local directory).

Both go through :func:`serve`. Only KServe's public API is used. KServe 0.21's
``ModelServer.start`` always binds every interface (its ``RESTServer`` hard-codes
``0.0.0.0``, kserve/kserve#4558) and gives no say over uvicorn's connection
handling. So :func:`serve` runs KServe's own public ``RESTServer`` itself, the
steps ``start`` takes for one worker, with its uvicorn config bound to ``--host``
(127.0.0.1 locally, every interface in a pod) and a deadline on request headers
(:mod:`serving.connections`, ``MLOPS_HEADER_TIMEOUT_SECONDS``).

What is served follows the deployment state (or the one storage URI) only: the
model repository's ``load`` / ``unload`` are refused unless ``MLOPS_ADMIN_API``
and ``MLOPS_ADMIN_TOKEN`` are both set (:mod:`serving.rest`); the feedback
endpoint likewise needs ``MLOPS_FEEDBACK_API`` and ``MLOPS_FEEDBACK_TOKEN``.

Every entry point takes ``--tls-cert PEM --tls-key PEM`` (HTTPS only, on the same
port) and ``--tls-client-ca PEM`` (mutual TLS: a client must present a
certificate that chains to that CA, else the handshake fails), passed to
uvicorn's own TLS settings (:class:`TLSFiles`).

This module imports only the standard library and settings at module level:
``mlops`` imports it to build its argument parser, and KServe takes seconds to import.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.core.settings import ServingSettings

logger = logging.getLogger(__name__)

#: Local servers listen on loopback only.
LOCAL_HOST = "127.0.0.1"
# The in-pod entry binds every interface: the kubelet's readiness probe and KServe's
# queue-proxy / Service reach the container on the pod IP, never on its loopback.
IN_POD_HOST = "0.0.0.0"  # nosec B104
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class TLSFiles:
    """The server's TLS files (PEM).

    Attributes:
        cert: The server's certificate chain.
        key: Its private key.
        client_ca: The CA(s) client certificates must chain to; set, a client without
            a valid certificate is refused during the handshake (mutual TLS).
    """

    cert: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TLSFiles | None:
        """The files of ``--tls-cert`` / ``--tls-key`` / ``--tls-client-ca`` (None: plain HTTP).

        Raises:
            UsageError: one of cert and key without the other, a client CA without
                them, or a file that does not exist.
        """
        from mlops.core.errors import UsageError

        cert, key, client_ca = (
            getattr(args, "tls_cert", None),
            getattr(args, "tls_key", None),
            getattr(args, "tls_client_ca", None),
        )
        if cert is None and key is None:
            if client_ca is not None:
                raise UsageError("--tls-client-ca needs --tls-cert and --tls-key")
            return None
        if cert is None or key is None:
            raise UsageError("--tls-cert and --tls-key go together: give both")
        for flag, path in (
            ("--tls-cert", cert),
            ("--tls-key", key),
            ("--tls-client-ca", client_ca),
        ):
            if path is not None and not Path(path).is_file():
                raise UsageError(f"{flag}: no such file: {path}")
        return cls(Path(cert), Path(key), Path(client_ca) if client_ca is not None else None)


def _add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tls-cert", type=Path, default=None, help="PEM certificate: serve HTTPS (with --tls-key)"
    )
    parser.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert")
    parser.add_argument(
        "--tls-client-ca",
        type=Path,
        default=None,
        help="PEM CA bundle: require and verify client certificates (mutual TLS)",
    )


# -- arguments: defined once for every entry point -----------------------------------------
def add_server_arguments(parser: argparse.ArgumentParser, *, one_model: bool = False) -> None:
    """Adds the model server's arguments to ``parser``.

    Every entry point takes ``--host`` and ``--public-key``. Serving all deployed
    models (``mlops serve``, ``python -m serving.server``) adds ``--port``; serving one
    model (``python -m serving``, the InferenceService's container) adds
    ``--model-name``, ``--storage-uri`` and ``--http-port`` (KServe's name for it),
    requires the key and binds every interface by default. The port lands in
    ``args.port`` either way.

    Args:
        parser: The parser to extend.
        one_model: Add the single-model (in-pod) arguments.
    """
    default_host = IN_POD_HOST if one_model else LOCAL_HOST
    parser.add_argument(
        "--host", default=default_host, help=f"address to bind (default: {default_host})"
    )
    _add_tls_arguments(parser)
    if one_model:
        parser.add_argument("--model-name", required=True, help="name the model is served under")
        parser.add_argument(
            "--storage-uri",
            required=True,
            help="s3://<bucket>/models/<name>/<version> or a local model directory",
        )
        parser.add_argument(
            "--http-port",
            dest="port",
            type=int,
            default=DEFAULT_PORT,
            help=f"HTTP port (default: {DEFAULT_PORT})",
        )
        parser.add_argument(
            "--public-key", type=Path, required=True, help="PEM key the model must be signed with"
        )
        return
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default: {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--public-key",
        type=Path,
        default=None,
        help="PEM public key every served model must be signed with "
        "(default: $MLOPS_HOME/keys/signing-key.pub.pem)",
    )


# -- logging ---------------------------------------------------------------------------------
def configure_logging(settings: ServingSettings) -> None:
    """Log format and ``MLOPS_LOG_LEVEL``; KServe then keeps this configuration."""
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


class _ClientErrorsInOneLine(logging.Filter):
    """KServe logs a full traceback for every 4xx/503; a client's mistake deserves one line.

    Bad input is a debug line, an unknown model an info line, a model that is not
    ready a warning line; real server errors keep their traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady

        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        if isinstance(error, InvalidInput):
            logger.debug("invalid input: %s", error)
        elif isinstance(error, ModelNotFound):
            logger.info("not found: %s", error)
        elif isinstance(error, ModelNotReady):
            logger.warning("not ready: %s", error)
        else:
            return True
        return False


def _quiet_request_logs(access_log: bool) -> None:
    """KServe logs timing lines per request; at thousands of requests/s that is real overhead."""
    from fastapi.exceptions import FastAPIDeprecationWarning

    # KServe 0.21 returns ORJSONResponse, which FastAPI deprecates with a warning on every request.
    warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)
    kserve_logger = logging.getLogger("kserve")
    if not any(isinstance(f, _ClientErrorsInOneLine) for f in kserve_logger.filters):
        kserve_logger.addFilter(_ClientErrorsInOneLine())
    if not access_log:
        for name in ("kserve.trace", "uvicorn.access"):
            logging.getLogger(name).setLevel(logging.WARNING)


# -- the server ------------------------------------------------------------------------------
def serve(
    models: list[Any],
    host: str,
    port: int,
    settings: ServingSettings,
    repository: Any = None,
    feedback: Any = None,
    tls: TLSFiles | None = None,
) -> None:
    """Serves ``models`` (and whatever ``repository`` holds) until SIGINT/SIGTERM.

    A plain ``kserve.ModelServer`` with the project's HTTP additions
    (:func:`serving.rest.install`). On SIGINT/SIGTERM KServe shuts uvicorn down
    gracefully, unloads every model and this returns, so the caller's cleanup
    (the final inference-log flush) runs.

    Args:
        models: Loaded models to register and serve (``ModelServer.start``'s list).
        host: Address to bind (:data:`LOCAL_HOST`, or :data:`IN_POD_HOST` in a pod).
        port: HTTP port.
        settings: Serving settings (body limit and timeout, header timeout, admin
            opt-in and token, access log).
        repository: The ``kserve.ModelRepository`` to serve from (default: a
            :func:`served_models` repository).
        feedback: The :class:`~serving.feedback.FeedbackReceiver` of the feedback
            endpoint (None: no store to keep labels in).
        tls: Serve HTTPS (and with a client CA, mutual TLS); None: plain HTTP.
    """
    import kserve.model_server
    from kserve import ModelServer

    from serving import rest

    server = ModelServer(
        http_port=port,
        registered_models=repository if repository is not None else served_models(),
        enable_grpc=False,
        enable_latency_logging=False,
        grace_period=10,
    )
    rest.install(
        kserve.model_server.app,
        server.registered_models,
        settings,
        server.dataplane,
        feedback=feedback,
    )
    _quiet_request_logs(settings.access_log)
    _start(server, models, host, settings.header_timeout_seconds, tls)


def _start(
    server: Any, models: list[Any], host: str, header_timeout: float, tls: TLSFiles | None = None
) -> None:
    """``server.start(models)`` for one REST worker, on ``host``, with a header deadline.

    The same steps with the same public KServe pieces ``ModelServer.start`` uses
    for one REST worker: register the models, KServe's ``RESTServer`` (which builds
    KServe's app) with its uvicorn config bound to ``host`` and uvicorn's HTTP
    protocol timing out slow headers, KServe's signal handlers. With ``tls``,
    uvicorn's TLS settings (it builds the SSL context when the server starts).
    """
    import asyncio
    import ssl

    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
    from kserve.protocol.rest.server import RESTServer

    from serving.connections import header_deadline_protocol

    for model in models:
        server.register_model(model)
    rest_server = RESTServer(
        FASTAPI_APP_IMPORT_STRING,
        server.dataplane,
        server.model_repository_extension,
        server.http_port,
        access_log_format=server.access_log_format,
        grace_period=server.grace_period,
        event_loop=server.event_loop,
        timeout_keep_alive=server.timeout_keep_alive,
    )
    rest_server.config.host = host
    rest_server.config.http = header_deadline_protocol(header_timeout)
    if tls is not None:
        config = rest_server.config
        config.ssl_certfile, config.ssl_keyfile = str(tls.cert), str(tls.key)
        if tls.client_ca is not None:
            config.ssl_ca_certs = str(tls.client_ca)
            config.ssl_cert_reqs = ssl.CERT_REQUIRED
    server.register_signal_handler()
    _freeze_startup_heap()
    asyncio.run(rest_server.start())


def _freeze_startup_heap() -> None:
    """Takes what is alive at start-up (libraries, loaded models) out of the collector's walks.

    A full garbage collection walks every tracked object: ~220,000 once KServe,
    pandas and scikit-learn are imported, 40-120 ms during which no request is
    answered, whenever enough request objects survive to trigger one. Frozen
    objects (:func:`gc.freeze`) are never walked again, so a full collection only
    sees what serving allocated since. What is frozen is never collected as a
    cycle either; it is the process's baseline, alive until it exits.
    """
    import gc

    gc.collect()
    gc.freeze()


def served_models() -> Any:
    """A KServe ``ModelRepository`` whose ``load`` brings back what ``unload`` took down.

    KServe's own ``load`` does nothing, so a model unloaded over the (opt-in)
    admin API would stay down until a restart. Here ``unload`` keeps the model
    object and ``load`` calls its ``load()`` again (a predictor re-reads and
    re-verifies its folder; a routed model serves its route again).
    """
    from kserve import ModelRepository
    from kserve.errors import ModelNotFound

    class ServedModels(ModelRepository):
        def __init__(self) -> None:
            super().__init__()
            self.unloaded: dict[str, Any] = {}

        def unload(self, name: str) -> None:
            model = self.get_model(name)
            super().unload(name)
            self.unloaded[name] = model

        def remove(self, name: str) -> None:
            """Unloads ``name`` for good (its deployment is gone): ``load`` cannot restore it."""
            if self.get_model(name) is not None:
                super().unload(name)
            self.unloaded.pop(name, None)

        def load(self, name: str) -> bool:
            model = self.unloaded.pop(name, None) or self.get_model(name)
            if model is None:
                raise ModelNotFound(name)
            ready = bool(model.load())
            self.update(model)
            return ready

    return ServedModels()


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
    host: str = LOCAL_HOST,
    port: int = DEFAULT_PORT,
    store: Any = None,
    public_key: Path | None = None,
    settings: ServingSettings | None = None,
    tls: TLSFiles | None = None,
) -> int:
    """Serves every deployed model from the store until SIGINT/SIGTERM; returns the exit code.

    ``tls`` serves HTTPS (mutual TLS with a client CA).

    Raises:
        UsageError: the public key is missing or an ``MLOPS_*`` setting does not parse.
    """
    from mlops.core.store import ObjectStore
    from serving.router import Reconciler, inference_logger_factory

    settings = settings or ServingSettings.from_env()
    public_key = _check_public_key(public_key or _default_public_key())
    store = store if store is not None else ObjectStore.from_env()
    repository = served_models()
    reconciler = Reconciler(
        store,
        public_key,
        register=repository.update,
        unregister=repository.remove,
        interval=settings.reconcile_seconds,
        logger_factory=inference_logger_factory(store, settings),
        retry_failed_seconds=settings.retry_failed_seconds,
    )
    feedback = _feedback_receiver(store, settings, reconciler.inference_loggers)
    try:
        reconciler.reconcile_once()  # serve what is deployed from the first request on
        reconciler.start()
        logger.info(
            "mlops serve on %s://%s:%d (%d model(s): %s)",
            "https" if tls is not None else "http",
            host,
            port,
            len(reconciler.routers),
            ", ".join(sorted(reconciler.routers)) or "none yet",
        )
        serve([], host, port, settings, repository=repository, feedback=feedback, tls=tls)
    finally:
        reconciler.close()
        if feedback is not None:
            feedback.writer.close()
        logger.info("mlops serve stopped (inference logs flushed)")
    return 0


def _feedback_receiver(store: Any, settings: ServingSettings, loggers: dict[str, Any]) -> Any:
    """The feedback endpoint's receiver when it is enabled and there is a store, else None."""
    if store is None or not settings.feedback_enabled:
        return None
    from serving.feedback import FeedbackReceiver, FeedbackWriter

    def recent(model: str, ids: Sequence[str]) -> set[str]:
        inference_logger = loggers.get(model)
        return inference_logger.known(ids) if inference_logger is not None else set()

    return FeedbackReceiver(store, FeedbackWriter(store), recent)


def serve_single(
    model_name: str,
    storage_uri: str,
    public_key: Path,
    host: str = IN_POD_HOST,
    port: int = DEFAULT_PORT,
    store: Any = None,
    settings: ServingSettings | None = None,
    tls: TLSFiles | None = None,
) -> int:
    """Serves one model version (s3:// URI or local directory); exit 4 when it fails verification.

    ``tls`` serves HTTPS (mutual TLS with a client CA).

    Raises:
        UsageError: bad model name, missing public key or an ``MLOPS_*`` setting that does
            not parse.
    """
    from mlops.core import settings as variables
    from mlops.core.errors import EXIT_INVALID, EXIT_SYSTEM
    from mlops.model.registry import parse_model_uri, validate_model_name
    from serving import metrics
    from serving.router import VersionFetcher, inference_logger_factory

    settings = settings or ServingSettings.from_env()
    validate_model_name(model_name)
    public_key = _check_public_key(public_key)
    if store is None and variables.get(variables.ENDPOINT_VAR):
        from mlops.core.store import ObjectStore

        store = ObjectStore.from_env()
    factory = inference_logger_factory(store, settings)
    inference_logger = factory(model_name) if factory is not None else None
    fetcher = VersionFetcher(store, public_key)
    feedback = _feedback_receiver(
        store, settings, {model_name: inference_logger} if inference_logger is not None else {}
    )
    try:
        if storage_uri.startswith("s3://"):
            # Verified like every version mlops serve loads: signature, then identity.
            version = parse_model_uri(storage_uri)[2]
            predictor, reason = fetcher.load(model_name, storage_uri, version, inference_logger)
        else:
            predictor, reason = _load_local(model_name, storage_uri, public_key, inference_logger)
        if predictor is None:
            return EXIT_INVALID if "VerificationError" in (reason or "") else EXIT_SYSTEM
        metrics.set_model_info(model_name, predictor.version, "stable")
        serve([predictor], host, port, settings, feedback=feedback, tls=tls)
    finally:
        if feedback is not None:
            feedback.writer.close()
        metrics.clear_model_info(model_name)
        if inference_logger is not None:
            inference_logger.close()
        fetcher.close()
    return 0


def _load_local(
    model_name: str, model_dir: str, public_key: Path, inference_logger: Any
) -> tuple[Any, str | None]:
    """A model folder already on disk (KServe's storage initializer): signature-checked on load."""
    from serving.predictor import SklearnPredictor

    predictor = SklearnPredictor(
        model_name, model_dir, public_key, inference_logger=inference_logger
    )
    if predictor.load():
        return predictor, None
    return None, predictor.not_ready_reason


# -- command lines ---------------------------------------------------------------------------
def _summary(function: Callable[..., Any]) -> str:
    return (function.__doc__ or "").split("\n", 1)[0]


def _run_cli(body: Callable[[ServingSettings], int]) -> int:
    """Reads the settings, configures logging, runs ``body``; errors become exit codes."""
    from mlops.core.errors import MlopsError

    try:
        settings = ServingSettings.from_env()
        configure_logging(settings)
        return body(settings)
    except MlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m serving.server [--host H] [--port P] [--public-key PEM] [--tls-* PEM]``."""
    parser = argparse.ArgumentParser(
        prog="python -m serving.server", description=_summary(run_server)
    )
    add_server_arguments(parser)
    args = parser.parse_args(argv)
    return _run_cli(
        lambda settings: run_server(
            args.host,
            args.port,
            public_key=args.public_key,
            settings=settings,
            tls=TLSFiles.from_args(args),
        )
    )


def main_single(argv: Sequence[str] | None = None) -> int:
    """``python -m serving --model-name N --storage-uri URI --public-key PEM [--http-port P]``."""
    parser = argparse.ArgumentParser(prog="python -m serving", description=_summary(serve_single))
    add_server_arguments(parser, one_model=True)
    args = parser.parse_args(argv)
    return _run_cli(
        lambda settings: serve_single(
            args.model_name,
            args.storage_uri,
            args.public_key,
            host=args.host,
            port=args.port,
            settings=settings,
            tls=TLSFiles.from_args(args),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
