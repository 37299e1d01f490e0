"""Canary routing and the reconciler that follows the desired deployment state in the store.

``RoutedModel`` is the KServe model registered under a model's name. It holds
a stable :class:`~serving.predictor.SklearnPredictor` and optionally a canary
one, and sends each request (V1 and V2) to the canary with probability
``canary_percent / 100``. The route is one immutable tuple swapped in a single
assignment, so a request always sees a consistent (stable, canary, percent).

``Reconciler`` polls :func:`mlops.deployment.state.list_deployments` /
``read_state`` every ``MLOPS_RECONCILE_SECONDS`` (default 2 s) on a background
thread. A newly desired version is fetched, verified and loaded there, and
swapped in only once it is ready: no request is dropped, and a version that
fails (bad signature, unreadable, store error) is never served -- the previous
route stays, the reason is logged and shown in ``GET /v1/models/<name>`` as
``not_ready_reason``. Failed versions are retried every
``MLOPS_RETRY_FAILED_SECONDS`` (default 60 s) in case the cause was transient.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kserve import Model
from kserve.errors import ModelNotReady
from kserve.protocol.infer_type import InferRequest

from mlops.core.settings import ServingSettings
from serving import metrics
from serving.inference_log import InferenceLogger
from serving.predictor import SklearnPredictor

logger = logging.getLogger(__name__)

#: The defaults of ``MLOPS_RECONCILE_SECONDS`` / ``MLOPS_RETRY_FAILED_SECONDS``.
_DEFAULTS = ServingSettings()


@dataclass(frozen=True)
class Route:
    """What one model name serves: the stable version, an optional canary and its share."""

    stable: SklearnPredictor | None = None
    canary: SklearnPredictor | None = None
    canary_percent: int = 0

    def roles(self) -> set[tuple[str, str]]:
        """The ``(version, role)`` pairs this route serves."""
        out = set()
        if self.stable is not None:
            out.add((self.stable.version, "stable"))
        if self.canary is not None:
            out.add((self.canary.version, "canary"))
        return out


class RoutedModel(Model):
    """One model name: a stable predictor plus an optional canary taking ``canary_percent`` of requests."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._route = Route()
        self.not_ready_reason: str | None = "no version loaded yet"
        self.desired: dict = {}

    # -- routing ------------------------------------------------------------------
    @property
    def route(self) -> Route:
        """The current route (replaced whole, never changed in place)."""
        return self._route

    def set_route(
        self,
        stable: SklearnPredictor | None,
        canary: SklearnPredictor | None = None,
        canary_percent: int = 0,
    ) -> None:
        """Atomically replaces the route and updates ``mlops_model_info``."""
        if canary is None:
            canary_percent = 0
        new = Route(stable, canary, int(canary_percent))
        old, self._route = self._route, new
        self.ready = stable is not None and stable.ready
        for version, role in old.roles() - new.roles():
            metrics.clear_model_info(self.name, version, role)
        for version, role in new.roles():
            metrics.set_model_info(self.name, version, role)

    @property
    def current_version(self) -> str | None:
        """The stable version, None before one is loaded."""
        stable = self._route.stable
        return stable.version if stable is not None else None

    def _pick(self) -> SklearnPredictor:
        route = self._route
        if (
            route.canary is not None
            and route.canary_percent > 0
            and random.random() * 100.0 < route.canary_percent
        ):  # nosec B311
            return route.canary
        if route.stable is None:
            raise ModelNotReady(self.name, self.not_ready_reason)
        return route.stable

    async def healthy(self) -> bool:
        """Ready while a stable version is loaded."""
        stable = self._route.stable
        return stable is not None and stable.ready

    def load(self) -> bool:
        """The reconciler loads versions; KServe may still call this on a not-ready model."""
        return self.ready

    def predict(
        self,
        payload: dict | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ):
        """Predicts with the canary for ``canary_percent`` of requests, else the stable."""
        return self._pick().predict(payload, headers)

    def explain(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> dict:
        """Explanations always come from the stable version (deterministic for the caller)."""
        stable = self._route.stable
        if stable is None:
            raise ModelNotReady(self.name, self.not_ready_reason)
        return stable.explain(payload, headers)

    def get_input_types(self):
        """The stable version's V2 input metadata."""
        stable = self._route.stable
        return stable.get_input_types() if stable is not None else []

    def get_output_types(self):
        """The stable version's V2 output metadata."""
        stable = self._route.stable
        return stable.get_output_types() if stable is not None else []

    def status(self) -> dict:
        """What ``GET /v1/models/<name>`` answers: versions, desired state, not-ready reason."""
        route = self._route
        return {
            "name": self.name,
            "ready": route.stable is not None and route.stable.ready,
            "stable": route.stable.version if route.stable is not None else None,
            "canary": route.canary.version if route.canary is not None else None,
            "canary_percent": route.canary_percent,
            "desired": dict(self.desired),
            "not_ready_reason": self.not_ready_reason,
        }

    def stop(self) -> None:
        """Stops serving: not ready, ``mlops_model_info`` series removed."""
        self.ready = False
        metrics.clear_model_info(self.name)


def inference_logger_factory(
    store: Any, settings: ServingSettings
) -> Callable[[str], InferenceLogger] | None:
    """Builds InferenceLoggers configured by the ``MLOPS_INFERENCE_LOG*`` settings.

    Returns:
        ``model_name -> InferenceLogger``, or None when logging is off or there is no store.
    """
    if store is None or not settings.inference_log:
        return None

    def make(model_name: str) -> InferenceLogger:
        return InferenceLogger(
            store,
            model_name,
            max_buffer_rows=settings.inference_log_max_rows,
            flush_rows=settings.inference_log_flush_rows,
            flush_seconds=settings.inference_log_flush_seconds,
        )

    return make


class Reconciler:
    """Keeps the RoutedModels in line with ``deployments/<model>/state.json`` in the store.

    Args:
        store: ObjectStore holding deployments and models.
        public_key: Key every served version must be signed with.
        register: Called with a new RoutedModel to expose it (``ModelRepository.update``).
        unregister: Called with a model name whose deployment disappeared.
        interval: Poll period in seconds (``MLOPS_RECONCILE_SECONDS``).
        logger_factory: ``model_name -> InferenceLogger`` or None for no inference logging.
        retry_failed_seconds: How long a version that failed to load is left alone
            (``MLOPS_RETRY_FAILED_SECONDS``).
    """

    def __init__(
        self,
        store,
        public_key: Path,
        register: Callable[[RoutedModel], None],
        unregister: Callable[[str], None] | None = None,
        interval: float = _DEFAULTS.reconcile_seconds,
        logger_factory: Callable[[str], InferenceLogger] | None = None,
        retry_failed_seconds: float = _DEFAULTS.retry_failed_seconds,
    ) -> None:
        self.store = store
        self.public_key = Path(public_key)
        self.register = register
        self.unregister = unregister
        self.interval = interval
        self.retry_failed_seconds = retry_failed_seconds
        self.logger_factory = logger_factory
        self.routers: dict[str, RoutedModel] = {}
        self.inference_loggers: dict[str, InferenceLogger] = {}
        self._loaded: dict[tuple[str, str, str], SklearnPredictor] = {}
        self._failed: dict[tuple[str, str, str], tuple[float, str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- loop -----------------------------------------------------------------------
    def start(self) -> None:
        """Polls the store on a background thread every ``interval`` seconds."""
        self._thread = threading.Thread(target=self._run, name="mlops-reconciler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.reconcile_once()

    def stop(self, timeout: float = 30.0) -> None:
        """Stops polling and waits up to ``timeout`` seconds for a pass in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        """Stops polling, unloads every model and flushes the inference logs."""
        self.stop()
        for router in list(self.routers.values()):
            router.stop()
        for inference_logger in self.inference_loggers.values():
            inference_logger.close()

    # -- reconciling ----------------------------------------------------------------
    def reconcile_once(self) -> None:
        """One pass over every deployment; never raises (store outages are logged)."""
        from mlops.deployment.state import list_deployments

        with self._lock:
            try:
                names = list_deployments(self.store)
            except Exception as exc:
                logger.warning(
                    "reconcile: cannot list deployments (keeping current models): %s", exc
                )
                return
            for name in names:
                try:
                    self._reconcile_model(name)
                except Exception as exc:
                    logger.warning("reconcile %s failed (keeping current route): %s", name, exc)
            for name in set(self.routers) - set(names):
                logger.info("deployment of %s removed: unloading", name)
                router = self.routers.pop(name)
                if self.unregister is not None:
                    self.unregister(name)
                router.stop()
            self._forget_unused()

    def _router(self, name: str) -> RoutedModel:
        router = self.routers.get(name)
        if router is None:
            router = RoutedModel(name)
            self.routers[name] = router
            if self.logger_factory is not None and name not in self.inference_loggers:
                self.inference_loggers[name] = self.logger_factory(name)
            self.register(router)
            logger.info("serving model %s", name)
        return router

    def _obtain(self, name: str, release) -> tuple[SklearnPredictor | None, str | None]:
        """The loaded predictor of a release, loading it now if needed; (None, reason) on failure."""
        key = (name, release.version, release.model_uri)
        predictor = self._loaded.get(key)
        if predictor is not None:
            return predictor, None
        failed = self._failed.get(key)
        if failed is not None and time.monotonic() - failed[0] < self.retry_failed_seconds:
            return None, failed[1]
        predictor = SklearnPredictor(
            name,
            release.model_uri,
            self.public_key,
            store=self.store,
            version=release.version,
            inference_logger=self.inference_loggers.get(name),
        )
        if predictor.load():
            self._loaded[key] = predictor
            self._failed.pop(key, None)
            return predictor, None
        reason = f"version {release.version} is not served: {predictor.not_ready_reason}"
        self._failed[key] = (time.monotonic(), reason)
        return None, reason

    def _reconcile_model(self, name: str) -> None:
        from mlops.deployment.state import read_state

        state = read_state(self.store, name)
        if state is None or state.stable is None:
            return
        router = self._router(name)
        router.desired = {
            "stable": state.stable.version,
            "canary": state.canary.version if state.canary else None,
            "canary_percent": state.canary_percent if state.canary else 0,
        }
        current = router.route
        reasons: list[str] = []
        stable, reason = self._obtain(name, state.stable)
        if stable is None:
            reasons.append(str(reason))
            stable = current.stable  # keep serving what we had
        canary, percent = None, 0
        if state.canary is not None and state.canary_percent > 0:
            canary, reason = self._obtain(name, state.canary)
            if canary is None:
                reasons.append(str(reason))
            else:
                percent = state.canary_percent
        if canary is not None and stable is not None and canary is stable:
            canary, percent = None, 0
        router.not_ready_reason = (
            "; ".join(reasons)
            if reasons
            else (None if stable is not None else "no version loaded yet")
        )
        if (stable, canary, percent) != (current.stable, current.canary, current.canary_percent):
            router.set_route(stable, canary, percent)
            logger.info(
                "model %s now serves stable=%s canary=%s (%d%%)",
                name,
                stable.version if stable else None,
                canary.version if canary else None,
                percent,
            )

    def _forget_unused(self) -> None:
        in_use: set[int] = set()
        for router in self.routers.values():
            route = router.route
            in_use.update(id(p) for p in (route.stable, route.canary) if p is not None)
        for key, predictor in list(self._loaded.items()):
            if id(predictor) not in in_use:
                predictor.stop()
                del self._loaded[key]
