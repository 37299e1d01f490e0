"""Routing between releases and the reconciler that follows the desired deployment state in the store.

``RoutedModel`` is the KServe model registered under a model's name. It holds
a stable :class:`~serving.predictor.SklearnPredictor` and optionally a candidate
one, and routes each unpinned request (V1 and V2) by the deployment's strategy,
with the rules of :mod:`mlops.deployment.routing` (the cluster manifests follow
the same ones):

* ``canary``: the candidate answers ``canary_percent`` of requests (a random draw);
* ``sticky``: weighted by a stable hash of the client header (``x-client-id`` by
  default), so one client always gets the same version; no header: stable;
* ``cohort``: the candidate answers exactly the requests whose cohort header
  matches (``x-mlops-cohort: beta`` by default);
* ``shadow``: stable answers every request; afterwards, a copy goes to the
  candidate on a background thread (:class:`ShadowMirror`, a bounded queue: a
  copy that does not fit is dropped and counted), whose predictions are only
  logged (role ``shadow``) and counted, never returned. Each copy it scores or
  fails is also counted as a request of the candidate in role ``shadow`` (errors
  with the status the error would have answered with, latency with its scoring
  time), so the canary analysis can judge a shadow as it judges a canary. A
  shadow that fails or is slow never delays or fails an answer.

Every answer names the version and its role (``stable`` or ``canary``). The
route is one immutable tuple swapped in a single assignment, so a request always
sees a consistent (stable, candidate, percent, policy).

``Reconciler`` polls :func:`mlops.deployment.state.list_deployments` /
``read_state`` every ``MLOPS_RECONCILE_SECONDS`` (default 2 s) on a background
thread. A newly desired version is fetched, verified and loaded there, and
swapped in only once it is ready: no request is dropped, and a version that
fails (bad signature, unreadable, store error) is never served -- the previous
route stays, the reason is logged and shown in ``GET /v1/models/<name>`` as
``not_ready_reason``. Failed versions are retried every
``MLOPS_RETRY_FAILED_SECONDS`` (default 60 s) in case the cause was transient.

Every version is fetched by :class:`VersionFetcher` into a private local folder and
checked with :func:`mlops.trust.signing.verify_version_dir` (its signature, then
that its signed metadata names the model and version it is deployed as) before
the predictor loads it. When the desired stable version fails and nothing is
served yet (a server starting on a tampered stable), the model falls back to the
newest release in the deployment state's ``history`` that verifies, instead of
answering 503; ``GET /v1/models/<name>`` reports it under ``fallback`` and
``mlops_model_fallback{model,version}`` is 1 while it lasts.

A request may pin a version (:func:`pinned_version`, the OIP's
``/v2/models/<name>/versions/<v>/infer``): it is answered by that version, stable
or canary, with no traffic split.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import queue
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kserve import Model
from kserve.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
)
from kserve.model import InferenceVerb
from kserve.protocol.infer_type import InferRequest, InferResponse
from starlette.exceptions import HTTPException

from mlops.core.settings import ServingSettings
from mlops.deployment.routing import (
    RoutingPolicy,
    mirrors_to_shadow,
    policy_of,
    routes_to_candidate,
)
from serving import metrics
from serving.inference_log import InferenceLogger
from serving.predictor import SklearnPredictor
from serving.request_ids import CANARY, SHADOW, STABLE, resolve

logger = logging.getLogger(__name__)

#: The defaults of ``MLOPS_RECONCILE_SECONDS`` / ``MLOPS_RETRY_FAILED_SECONDS``.
_DEFAULTS = ServingSettings()

# The version the current request asked for by path (None: route by the canary split).
_PINNED: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "mlops_pinned_version", default=None
)


@contextlib.contextmanager
def pinned_version(version: str) -> Iterator[None]:
    """Within the block, :class:`RoutedModel` answers with ``version`` only (no canary split)."""
    token = _PINNED.set(version)
    try:
        yield
    finally:
        _PINNED.reset(token)


@dataclass(frozen=True)
class Fallback:
    """An older verified release served because the desired stable version failed.

    Attributes:
        version: The version served instead.
        desired: The stable version the deployment state asks for.
        reason: Why the desired version is not served.
    """

    version: str
    desired: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """The form ``GET /v1/models/<name>`` shows."""
        return {"version": self.version, "desired": self.desired, "reason": self.reason}


@dataclass(frozen=True)
class Route:
    """What one model name serves: the stable version, an optional candidate, its share and policy."""

    stable: SklearnPredictor | None = None
    canary: SklearnPredictor | None = None
    canary_percent: int = 0
    policy: RoutingPolicy = RoutingPolicy()

    @property
    def candidate_role(self) -> str:
        """The candidate's role in ``mlops_model_info``: ``shadow`` under shadow, else ``canary``."""
        return SHADOW if self.policy.strategy == "shadow" else CANARY

    def roles(self) -> set[tuple[str, str]]:
        """The ``(version, role)`` pairs this route serves."""
        out = set()
        if self.stable is not None:
            out.add((self.stable.version, STABLE))
        if self.canary is not None:
            out.add((self.canary.version, self.candidate_role))
        return out


#: The status the server answers each error with: KServe's exception handlers
#: (``kserve.protocol.rest.server.RESTServer``) and, for ``HTTPException`` (a
#: ``RequestTooLarge`` is one: 413), :mod:`serving.rest`'s handler, which answers
#: with the exception's own status. Looked up along the exception's class order, as
#: Starlette picks its handler; anything else is KServe's generic 500.
_ERROR_STATUS: dict[type[BaseException], int] = {
    InvalidInput: 400,
    InferenceError: 500,
    ModelNotFound: 404,
    ModelNotReady: 503,
    NotImplementedError: 501,
    UnsupportedProtocol: 501,
    ServerNotLive: 503,
    ServerNotReady: 503,
}


def error_status(exc: BaseException) -> int:
    """The HTTP status the model server answers a request with when scoring it raised ``exc``."""
    for kind in type(exc).__mro__:
        if kind is HTTPException:
            return int(exc.status_code)  # type: ignore[attr-defined]
        status = _ERROR_STATUS.get(kind)
        if status is not None:
            return status
    return 500


def _protocol_of(body: Any) -> tuple[str, str]:
    """The ``(protocol, endpoint)`` labels the middleware gives the request ``body`` came in."""
    return ("v2", "infer") if isinstance(body, InferRequest) else ("v1", "predict")


class ShadowMirror:
    """Scores copies of requests with a shadow candidate on one background thread.

    :meth:`offer` never blocks: a copy that finds the queue full is dropped
    (``mlops_shadow_requests_total{result="dropped"}``). The candidate's answer is
    only logged (role ``shadow``, under the request id the stable answer carried)
    and counted; an exception is counted as ``failed`` and logged, never raised.
    Every copy scored or failed is also a request of the candidate's version in
    role ``shadow`` (:func:`serving.metrics.count_shadow_copy`): in
    ``mlops_requests_total`` (the original request's protocol),
    ``mlops_request_errors_total`` (the status :func:`error_status` gives its
    error) and ``mlops_request_duration_seconds`` (the scoring time, not the time
    it waited in the queue), all counted here, off the request path.

    Args:
        model: The model name (metric label, thread name).
        capacity: Most copies waiting; beyond it new copies are dropped.
    """

    def __init__(self, model: str, capacity: int = 256) -> None:
        self.model = model
        self._queue: queue.Queue[tuple[SklearnPredictor, Any, str] | None] = queue.Queue(capacity)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._results = {
            result: metrics.SHADOW_REQUESTS.labels(model, result)
            for result in metrics.SHADOW_RESULTS
        }

    def offer(self, candidate: SklearnPredictor, body: Any, request_id: str) -> bool:
        """Queues a copy for ``candidate``; False (dropped, counted) when the queue is full."""
        try:
            self._queue.put_nowait((candidate, body, request_id))
        except queue.Full:
            self._results["dropped"].inc()
            return False
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"mlops-shadow-{self.model}", daemon=True
                )
                self._thread.start()
        return True

    def close(self) -> None:
        """Ends the worker after what is queued (a later :meth:`offer` starts a new one)."""
        with self._lock:
            if self._thread is None:
                return
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                with self._lock:
                    self._thread = None
                return
            self._score(*item)

    def _score(self, candidate: SklearnPredictor, body: Any, request_id: str) -> None:
        """Scores one copy and counts it; never raises (a shadow's failure is its own)."""
        protocol, endpoint = _protocol_of(body)
        status: int | None = None
        started = time.perf_counter()
        try:
            candidate.predict(body, role=SHADOW, request_id=request_id)
        except Exception as exc:
            status = error_status(exc)
            logger.warning(
                "shadow %s version %s failed on request %s (%d): %s: %s",
                self.model,
                candidate.version,
                request_id,
                status,
                type(exc).__name__,
                str(exc)[:200],
            )
        seconds = time.perf_counter() - started
        try:
            metrics.count_shadow_copy(
                self.model, candidate.version, protocol, endpoint, seconds, status
            )
        except Exception:  # counting must not end the worker: later copies still count
            logger.exception("counting a shadow copy of %s failed", self.model)


class RoutedModel(Model):
    """One model name: a stable predictor plus an optional canary taking ``canary_percent`` of requests."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._route = Route()
        self.shadow = ShadowMirror(name)
        self.not_ready_reason: str | None = "no version loaded yet"
        self.desired: dict = {}
        self.fallback: Fallback | None = None

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
        policy: RoutingPolicy | None = None,
    ) -> None:
        """Atomically replaces the route and updates ``mlops_model_info``.

        ``policy`` is the deployment's routing rule (default: weighted ``canary``
        with ``canary_percent``).
        """
        if canary is None:
            canary_percent = 0
        if policy is None:
            policy = RoutingPolicy(
                has_candidate=canary is not None, canary_percent=int(canary_percent)
            )
        new = Route(stable, canary, int(canary_percent), policy)
        old, self._route = self._route, new
        self.ready = stable is not None and stable.ready
        for version, role in old.roles() - new.roles():
            metrics.clear_model_info(self.name, version, role)
        for version, role in new.roles():
            metrics.set_model_info(self.name, version, role)

    def set_fallback(self, fallback: Fallback | None) -> None:
        """Records (or clears) the fallback release and its ``mlops_model_fallback`` series."""
        if fallback != self.fallback:
            if fallback is not None:
                logger.warning(
                    "model %s falls back to verified version %s: desired stable %s is not "
                    "served (%s)",
                    self.name,
                    fallback.version,
                    fallback.desired,
                    fallback.reason,
                )
            elif self.fallback is not None:
                logger.info("model %s: fallback to %s ended", self.name, self.fallback.version)
        self.fallback = fallback
        metrics.set_fallback(self.name, fallback.version if fallback is not None else None)

    @property
    def current_version(self) -> str | None:
        """The stable version, None before one is loaded."""
        stable = self._route.stable
        return stable.version if stable is not None else None

    def served_versions(self) -> list[str]:
        """The versions this name answers for: the stable, then the canary (if any)."""
        route = self._route
        return [p.version for p in (route.stable, route.canary) if p is not None]

    def predictor_for(self, version: str) -> SklearnPredictor | None:
        """The loaded predictor (stable or canary) serving ``version``, else None."""
        route = self._route
        for predictor in (route.stable, route.canary):
            if predictor is not None and predictor.version == version:
                return predictor
        return None

    def _pick(self, route: Route, headers: dict[str, str] | None) -> tuple[SklearnPredictor, str]:
        """The predictor answering this request and its role (``stable`` or ``canary``)."""
        pinned = _PINNED.get()
        if pinned is not None:
            for predictor, role in ((route.stable, STABLE), (route.canary, CANARY)):
                if predictor is not None and predictor.version == pinned:
                    return predictor, role
            # the route changed since the path was checked
            raise ModelNotFound(f"{self.name} version {pinned}")
        if route.canary is not None and routes_to_candidate(route.policy, headers or {}):
            return route.canary, CANARY
        if route.stable is None:
            raise ModelNotReady(self.name, self.not_ready_reason)
        return route.stable, STABLE

    async def healthy(self) -> bool:
        """Ready while a stable version is loaded."""
        stable = self._route.stable
        return stable is not None and stable.ready

    def load(self) -> bool:
        """Serves the current route again (after an admin ``unload``); returns readiness.

        The reconciler loads versions; this only restores what ``stop`` took away.
        """
        route = self._route
        self.set_route(route.stable, route.canary, route.canary_percent, route.policy)
        self.set_fallback(self.fallback)
        return self.ready

    def predict(
        self,
        payload: dict | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ):
        """Predicts with the version the routing picks (no client headers: sticky goes to stable)."""
        predictor, role = self._pick(self._route, headers)
        return predictor.predict(payload, headers, role=role)

    async def __call__(
        self,
        body: dict | InferRequest,
        headers: dict[str, str] | None = None,
        verb: InferenceVerb = InferenceVerb.PREDICT,
    ) -> tuple[dict | InferResponse, dict[str, str]]:
        """What KServe's data plane awaits: a prediction goes to the picked version's batcher.

        The version is picked per request (the routing policy, or the pinned
        version), then the request joins that version's batches
        (:meth:`~serving.predictor.SklearnPredictor.predict_batched`). Under
        ``shadow``, once stable has answered, a copy is offered to the candidate's
        :class:`ShadowMirror` (never awaited). Explanations go through KServe's own
        path to :meth:`explain`.
        """
        if verb is not InferenceVerb.PREDICT:
            return await super().__call__(body, headers, verb)
        route = self._route
        predictor, role = self._pick(route, headers)
        answer = await predictor.predict_batched(body, role)
        if (
            role == STABLE
            and route.canary is not None
            and _PINNED.get() is None
            and mirrors_to_shadow(route.policy)
        ):
            self.shadow.offer(route.canary, body, resolve())
        return answer, {}

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
            "strategy": route.policy.strategy,
            "versions": self.served_versions(),
            "desired": dict(self.desired),
            "fallback": self.fallback.to_dict() if self.fallback is not None else None,
            "not_ready_reason": self.not_ready_reason,
        }

    def stop(self) -> None:
        """Stops serving: not ready, ``mlops_model_info`` / ``mlops_model_fallback`` removed."""
        self.ready = False
        self.shadow.close()
        metrics.clear_model_info(self.name)
        metrics.set_fallback(self.name, None)


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


class VersionFetcher:
    """Fetches published versions into private local folders, verified, and loads them.

    Each version is downloaded into its own folder under one temporary root and
    checked with :func:`~mlops.trust.signing.verify_version_dir`: the signature,
    then that the signed ``metadata.json`` names the model and version it is
    served as (a signed version copied under another name is refused). Only then
    does a :class:`~serving.predictor.SklearnPredictor` load it, from that folder,
    which stays until :meth:`forget` (so a reload reads the same verified bytes).

    Args:
        store: ObjectStore holding the published versions.
        public_key: Key every served version must be signed with.
    """

    def __init__(self, store: Any, public_key: Path) -> None:
        self.store = store
        self.public_key = Path(public_key)
        self._root: Path | None = None
        self._folders: dict[int, Path] = {}

    def load(
        self,
        name: str,
        model_uri: str,
        version: str,
        inference_logger: InferenceLogger | None = None,
    ) -> tuple[SklearnPredictor | None, str | None]:
        """The loaded predictor of ``name`` ``version`` from ``model_uri``, or (None, why)."""
        folder = self._new_folder(name, version)
        try:
            model_dir = self._fetch_verified(name, model_uri, version, folder)
        except Exception as exc:  # fail closed: store, signature, identity
            shutil.rmtree(folder, ignore_errors=True)
            reason = f"{type(exc).__name__}: {exc}"
            logger.error(
                "model %s version %s from %s is NOT served: %s", name, version, model_uri, reason
            )
            return None, reason
        predictor = SklearnPredictor(
            name, model_dir, self.public_key, version=version, inference_logger=inference_logger
        )
        if not predictor.load():
            shutil.rmtree(folder, ignore_errors=True)
            return None, predictor.not_ready_reason
        self._folders[id(predictor)] = folder
        return predictor, None

    def forget(self, predictor: SklearnPredictor) -> None:
        """Stops ``predictor`` and removes its local folder."""
        predictor.stop()
        folder = self._folders.pop(id(predictor), None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        """Removes every local folder."""
        self._folders.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def _new_folder(self, name: str, version: str) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="mlops-serve-"))
        return self._root / f"{name}-{uuid.uuid4().hex[:8]}"

    def _fetch_verified(self, name: str, model_uri: str, version: str, folder: Path) -> Path:
        from mlops.core.errors import VerificationError
        from mlops.model.packaging import SIGNATURE_FILE
        from mlops.model.registry import fetch_model, parse_model_uri
        from mlops.trust.signing import verify_version_dir

        if self.store is None:
            raise ValueError(f"{model_uri} needs an object store (MLOPS_S3_* not set)")
        _, published_name, published_version = parse_model_uri(model_uri)
        if (published_name, published_version) != (name, version):
            raise VerificationError(
                f"{model_uri} is published as {published_name} {published_version}, "
                f"not as {name} {version}"
            )
        model_dir = fetch_model(self.store, model_uri, folder)
        verify_version_dir(model_dir, self.public_key, name, version, signature_name=SIGNATURE_FILE)
        return model_dir


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
        self.fetcher = VersionFetcher(store, self.public_key)
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
        for predictor in self._loaded.values():
            predictor.stop()
        self._loaded.clear()
        self.fetcher.close()

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
        predictor, why = self.fetcher.load(
            name, release.model_uri, release.version, self.inference_loggers.get(name)
        )
        if predictor is not None:
            self._loaded[key] = predictor
            self._failed.pop(key, None)
            return predictor, None
        reason = f"version {release.version} is not served: {why}"
        self._failed[key] = (time.monotonic(), reason)
        return None, reason

    def _last_verified(self, name: str, state: Any) -> SklearnPredictor | None:
        """The newest earlier stable release (``state.history``) that loads and verifies."""
        for release in reversed(state.history):
            if release.version == state.stable.version:
                continue
            predictor, _ = self._obtain(name, release)
            if predictor is not None:
                return predictor
        return None

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
            "strategy": state.strategy,
        }
        current = router.route
        reasons: list[str] = []
        stable, reason = self._obtain(name, state.stable)
        if stable is None:
            reasons.append(str(reason))
            # Keep serving what we had; with nothing yet, the last release that verifies.
            stable = current.stable or self._last_verified(name, state)
        router.set_fallback(
            Fallback(stable.version, state.stable.version, str(reason))
            if stable is not None and reason is not None
            else None
        )
        canary, percent = None, 0
        # Every strategy's candidate is loaded (cohort and shadow keep no percent).
        if state.canary is not None:
            canary, reason = self._obtain(name, state.canary)
            if canary is None:
                reasons.append(str(reason))
            else:
                percent = state.canary_percent
        if canary is not None and stable is not None and canary is stable:
            canary, percent = None, 0
        policy = policy_of(state)
        router.not_ready_reason = (
            "; ".join(reasons)
            if reasons
            else (None if stable is not None else "no version loaded yet")
        )
        if (stable, canary, percent, policy) != (
            current.stable,
            current.canary,
            current.canary_percent,
            current.policy,
        ):
            router.set_route(stable, canary, percent, policy)
            logger.info(
                "model %s now serves stable=%s candidate=%s (%s, %d%%)",
                name,
                stable.version if stable else None,
                canary.version if canary else None,
                policy.strategy,
                percent,
            )

    def _forget_unused(self) -> None:
        in_use: set[int] = set()
        for router in self.routers.values():
            route = router.route
            in_use.update(id(p) for p in (route.stable, route.canary) if p is not None)
        for key, predictor in list(self._loaded.items()):
            if id(predictor) not in in_use:
                self.fetcher.forget(predictor)
                del self._loaded[key]
