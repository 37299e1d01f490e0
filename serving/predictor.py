"""``SklearnPredictor``: one signed, published scikit-learn model version as a KServe model.

Shaped like KServe's own sklearnserver (``load()`` then ``predict()``), with the
project's trust rules on the load path:

1. ``load()`` fetches the model directory (``s3://.../models/<name>/<version>``
   through :func:`mlops.model.registry.fetch_model`, or a local folder), verifies its
   signature with :func:`mlops.trust.signing.verify_model_dir` and only then
   loads ``model.skops`` with :func:`mlops.model.modelio.load_model` (skops with a
   trusted-type allow-list, never pickle). Everything it reads and builds (model,
   feature schema, fast path, explainer, metadata, version) is one immutable
   :class:`LoadedModel`, set in one assignment, then ``ready`` is set. Any failure
   fails closed: the model never becomes ready and ``not_ready_reason`` says why.
2. ``predict()`` reads the request's envelope, refuses it when it is past the
   server's bounds (:mod:`serving.limits`: rows, work, response size; a 413 naming
   the setting) before any value is parsed, validates it strictly
   (:mod:`serving.validation`, V1 dict or V2 ``InferRequest``), runs
   ``predict_proba`` once with the finiteness checks of :mod:`serving.scoring` and
   returns class labels and, when asked, the class probabilities. V1 asks with the
   ``probabilities`` parameter; V2 returns the outputs the request names, or every
   output the model metadata advertises (``predict`` and ``probabilities``) when it
   names none. V1 answers carry ``model_version``, the request ``id``, the row
   ``ids`` and the ``role``; V2 answers set ``InferResponse.model_version``, ``id``
   and ``parameters`` ``role`` and ``row_ids`` (:mod:`serving.request_ids`). Bad input raises
   ``InvalidInput`` (400), a request past a bound ``RequestTooLarge`` (413), a
   model that is not loaded ``ModelNotReady``.
3. Served over HTTP, a prediction goes through :meth:`SklearnPredictor.__call__`
   (what KServe's data plane awaits): the request is read, bounded and validated on
   the event loop exactly as in ``predict()``, then its rows join the rows of the
   other requests waiting for this version in one model call
   (:mod:`serving.batching`, on a worker thread), and it gets its own rows of the
   answer back. Answers are the ones ``predict()`` gives (tested); a request whose
   rows make the joined call fail is scored alone, so it alone gets its 4xx. A model
   whose one-row call takes less than
   :data:`~serving.batching.INLINE_CALL_SECONDS` (timed at load: the
   :class:`~serving.fast_path.FastPath` of the project's own pipelines) is scored on
   the event loop instead: handing it to a thread and back would cost more than it
   blocks the loop.
4. ``explain()`` returns per-feature attributions (:mod:`serving.explain`), under
   the same bounds and checks.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from kserve import Model
from kserve.errors import ModelNotReady
from kserve.model import InferenceVerb
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from mlops.core.settings import ServingSettings
from mlops.model.packaging import METADATA_FILE, MODEL_FILE, REFERENCE_FILE, SIGNATURE_FILE
from mlops.model.schema import NUMERIC, FeatureSchema, coerce
from serving import metrics
from serving.batching import ARRIVALS, BatchPolicy, MicroBatcher
from serving.explain import Explainer
from serving.fast_path import FastPath
from serving.limits import RequestLimits
from serving.request_ids import (
    STABLE,
    BadRequestId,
    check_client_id,
    note_role,
    resolve,
    row_ids,
)
from serving.scoring import PipelineScorer, check_probabilities
from serving.validation import (
    OUTPUTS,
    V2Request,
    out_of_range_counts,
    read_v1,
    read_v2,
    v1_columns,
    v1_frame,
    v2_columns,
    v2_frame,
)

logger = logging.getLogger(__name__)

#: What ``_prepare`` returns: the request's model-input columns, its rows, its row ids, and
#: how to turn its (probabilities, labels) into the response.
Respond = Callable[[np.ndarray, np.ndarray], dict | InferResponse]


def _request_id(body_id: str | None = None) -> str:
    """The current request's id (:func:`serving.request_ids.resolve`).

    A V2 body ``id`` that is no usable request id (outside ``[A-Za-z0-9._:-]``, too
    long) is still echoed in the answer, as the OIP asks, but the request gets a
    generated id for its header, row ids and inference-log rows.
    """
    try:
        return resolve(body_id)
    except BadRequestId:
        return resolve(None)


def _labels_datatype(classes: np.ndarray) -> tuple[np.ndarray, str]:
    """The class labels as a response array and its V2 datatype."""
    kind = classes.dtype.kind
    if kind in "iu":
        return classes.astype(np.int64), "INT64"
    if kind == "f":
        return classes.astype(np.float64), "FP64"
    if kind == "b":
        return classes.astype(bool), "BOOL"
    return np.array([str(c) for c in classes], dtype=object), "BYTES"


def _usable(body_id: str) -> bool:
    """Whether a V2 body id can be a request id (else the answer echoes it, ids are generated)."""
    try:
        check_client_id(body_id, "request body id")
    except BadRequestId:
        return False
    return True


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """Everything ``load()`` read and built from one verified model directory.

    Built once, never changed: a reload makes a new one, so a request that took
    it keeps a consistent view (model, schema and version of the same folder).

    Attributes:
        version: The version label.
        model: The fitted scikit-learn pipeline.
        metadata: ``metadata.json``, read-only.
        schema: The feature schema from ``metadata.json``.
        classes: The class labels as plain Python values.
        labels: The class labels as the response array (index = class position).
        labels_datatype: V2 datatype of ``labels``.
        explainer: Attributions for ``explain()``.
        fast_path: The NumPy preprocessing when it reproduces the pipeline, else None.
        scorer: What computes probabilities: the fast path, else the checked pipeline.
        call_seconds: The best of a few one-row calls of ``scorer`` at load (inf
            when there is no reference sample to time it on).
    """

    version: str
    model: Any
    metadata: Mapping[str, Any]
    schema: FeatureSchema
    classes: tuple[Any, ...]
    labels: np.ndarray
    labels_datatype: str
    explainer: Explainer
    fast_path: FastPath | None
    scorer: FastPath | PipelineScorer
    call_seconds: float = math.inf

    @classmethod
    def read(cls, model_dir: Path, public_key: Path, expected_version: str = "") -> LoadedModel:
        """Verifies the signature of ``model_dir``, then reads and prepares everything in it.

        Raises:
            Exception: Any failure (signature, format, version mismatch): the caller fails closed.
        """
        from mlops.model.modelio import load_model
        from mlops.trust.evidence import check_release
        from mlops.trust.signing import verify_model_dir

        # Verify first: nothing in the folder is read before the signature checks out.
        verify_model_dir(model_dir, public_key, signature_name=SIGNATURE_FILE)
        metadata = json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))
        version = str(metadata.get("version") or "")
        if expected_version and version and version != expected_version:
            raise ValueError(
                f"metadata.json says version {version!r}, expected {expected_version!r}"
            )
        # A folder on disk (KServe's storage initializer) passes the same release policy
        # as a fetched version: signed evidence that every gate passed, for this version.
        check_release(model_dir, str(metadata.get("model_name") or ""), version)
        schema = FeatureSchema.from_metadata(metadata)
        model = load_model(model_dir / MODEL_FILE)
        if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
            raise ValueError("the model has no predict_proba / classes_ (not a fitted classifier)")
        reference = None
        if (model_dir / REFERENCE_FILE).is_file():
            reference = pd.read_parquet(model_dir / REFERENCE_FILE)
        labels, labels_datatype = _labels_datatype(np.asarray(model.classes_))
        fast_path = FastPath.build(model, schema, reference)
        scorer = fast_path or PipelineScorer(model)
        return cls(
            version=expected_version or version or "unknown",
            model=model,
            metadata=MappingProxyType(metadata),
            schema=schema,
            classes=tuple(c.item() if hasattr(c, "item") else c for c in model.classes_),
            labels=labels,
            labels_datatype=labels_datatype,
            explainer=Explainer(model, schema, reference),
            fast_path=fast_path,
            scorer=scorer,
            call_seconds=_call_seconds(scorer, schema, reference),
        )


def _call_seconds(
    scorer: FastPath | PipelineScorer, schema: FeatureSchema, reference: Any
) -> float:
    """The best of a few one-row calls of ``scorer`` on the reference sample (inf without one)."""
    if reference is None or not len(reference):
        return math.inf
    try:
        frame = coerce(reference.head(1), schema, source="reference sample")
        best = math.inf
        for _ in range(5):
            started = time.perf_counter()
            SklearnPredictor._probabilities_of(scorer, frame)
            best = min(best, time.perf_counter() - started)
        return best
    except Exception as exc:  # only a speed estimate: batch the model, which is always correct
        logger.info("could not time a one-row call (%s): batching the model", exc)
        return math.inf


@dataclass(frozen=True, eq=False)
class _Part:
    """One request's validated rows, as the batch worker gets them."""

    loaded: LoadedModel
    columns: list[np.ndarray]
    rows: int
    ids: list[str]
    role: str = STABLE


class SklearnPredictor(Model):
    """A verified sklearn model version.

    Args:
        name: Model name (the endpoint path segment).
        model_uri_or_dir: ``s3://bucket/models/<name>/<version>`` or a local model directory.
        public_key: PEM public key the model directory must be signed with.
        store: Object store for ``s3://`` URIs (None for a local directory).
        version: The version label; read from ``metadata.json`` when empty.
        inference_logger: Optional :class:`serving.inference_log.InferenceLogger`.
        limits: The per-request bounds; default: from the ``MLOPS_MAX_*`` settings.
        batching: The batch bounds; default: from ``MLOPS_MAX_BATCH_ROWS`` and
            ``MLOPS_MAX_BATCH_WAIT_MS``.
    """

    def __init__(
        self,
        name: str,
        model_uri_or_dir: str | Path,
        public_key: Path,
        store=None,
        version: str = "",
        inference_logger=None,
        limits: RequestLimits | None = None,
        batching: BatchPolicy | None = None,
    ) -> None:
        super().__init__(name)
        settings = ServingSettings.from_env() if limits is None or batching is None else None
        self.limits = limits or RequestLimits.from_settings(settings or ServingSettings())
        self.batching = batching or BatchPolicy.from_settings(settings or ServingSettings())
        self.model_uri = str(model_uri_or_dir)
        self.public_key = Path(public_key)
        self.store = store
        self.inference_logger = inference_logger
        self.not_ready_reason: str | None = "not loaded yet"
        self._expected_version = version or ""
        self._loaded: LoadedModel | None = None
        self._batcher: MicroBatcher | None = None

    # -- the loaded state (read-only views of LoadedModel) ----------------------------
    @property
    def loaded(self) -> LoadedModel | None:
        """What ``load()`` read, or None before a successful load."""
        return self._loaded

    @property
    def version(self) -> str:
        """The served version: the loaded one, else the one asked for ("" when unknown)."""
        return self._loaded.version if self._loaded is not None else self._expected_version

    @property
    def model(self) -> Any:
        """The fitted pipeline (None before load)."""
        return self._loaded.model if self._loaded is not None else None

    @property
    def metadata(self) -> dict[str, Any]:
        """A copy of ``metadata.json`` (empty before load)."""
        return dict(self._loaded.metadata) if self._loaded is not None else {}

    @property
    def schema(self) -> FeatureSchema | None:
        """The feature schema (None before load)."""
        return self._loaded.schema if self._loaded is not None else None

    @property
    def explainer(self) -> Explainer | None:
        """The explainer (None before load)."""
        return self._loaded.explainer if self._loaded is not None else None

    @property
    def fast_path(self) -> FastPath | None:
        """The NumPy preprocessing, when it reproduces the pipeline (None otherwise)."""
        return self._loaded.fast_path if self._loaded is not None else None

    @property
    def batcher(self) -> MicroBatcher | None:
        """What batches this version's HTTP predictions (None before load and after stop)."""
        return self._batcher

    @property
    def classes(self) -> list[Any]:
        """The class labels (empty before load)."""
        return list(self._loaded.classes) if self._loaded is not None else []

    # -- loading ------------------------------------------------------------------
    def load(self) -> bool:
        """Fetches, verifies and loads the model, then sets ``ready``; returns readiness (never raises)."""
        self.ready = False
        try:
            loaded = self._read()
        except Exception as exc:  # fail closed on anything: store, signature, format
            self.not_ready_reason = f"{type(exc).__name__}: {exc}"
            logger.error(
                "model %s version %s from %s is NOT served: %s",
                self.name,
                self.version or "?",
                self.model_uri,
                self.not_ready_reason,
            )
            return False
        self._loaded = loaded
        if self._batcher is None:
            self._batcher = MicroBatcher(self._score_parts, self.batching, self.name)
        self.not_ready_reason = None
        self.ready = True
        logger.info(
            "model %s version %s loaded from %s (verified, %s, %s)",
            self.name,
            loaded.version,
            self.model_uri,
            loaded.explainer.method,
            "batched"
            if loaded.call_seconds >= self.batching.inline_below_seconds
            else "scored on the event loop",
        )
        return True

    def _read(self) -> LoadedModel:
        if not self.model_uri.startswith("s3://"):
            return LoadedModel.read(Path(self.model_uri), self.public_key, self._expected_version)
        if self.store is None:
            raise ValueError(f"{self.model_uri} needs an object store (MLOPS_S3_* not set)")
        from mlops.model.registry import fetch_model

        workdir = Path(tempfile.mkdtemp(prefix=f"mlops-{self.name}-"))
        try:
            model_dir = fetch_model(self.store, self.model_uri, workdir / "model")
            return LoadedModel.read(model_dir, self.public_key, self._expected_version)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def stop(self) -> None:
        """Stops serving: the model is no longer ready; queued requests are still answered."""
        self.ready = False
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            batcher.close()

    # -- metadata -----------------------------------------------------------------
    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 metadata of the inputs: one per feature (FP64 numeric, BYTES categorical)."""
        if self._loaded is None:
            return []
        return [
            {"name": f.name, "datatype": "FP64" if f.kind == NUMERIC else "BYTES", "shape": [-1]}
            for f in self._loaded.schema.features
        ]

    def get_output_types(self) -> list[dict[str, Any]]:
        """V2 metadata of the outputs (:data:`~serving.validation.OUTPUTS`): labels, probabilities."""
        datatype = self._loaded.labels_datatype if self._loaded is not None else "BYTES"
        predict, probabilities = OUTPUTS
        return [
            {"name": predict, "datatype": datatype, "shape": [-1]},
            {"name": probabilities, "datatype": "FP64", "shape": [-1, len(self.classes)]},
        ]

    # -- inference ----------------------------------------------------------------
    def _ready_state(self) -> LoadedModel:
        """The loaded state of a ready model; ModelNotReady otherwise."""
        loaded = self._loaded
        if not self.ready or loaded is None:
            raise ModelNotReady(self.name, self.not_ready_reason)
        metrics.note_version(loaded.version)
        return loaded

    @staticmethod
    def _probabilities_of(scorer: FastPath | PipelineScorer, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities of validated rows from ``scorer``, every one finite (else InvalidInput)."""
        import sklearn

        # Inputs are validated already (finite or NaN-for-imputation), and the scorer checks
        # what the preprocessing made of them: skip sklearn's own (costly) re-checks. The
        # configuration is per thread: the batch worker sets it for itself.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            proba = scorer.predict_proba(frame)
        check_probabilities(proba, frame)
        return proba

    @classmethod
    def _probabilities(cls, loaded: LoadedModel, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities of validated rows, every one finite (else InvalidInput)."""
        return cls._probabilities_of(loaded.scorer, frame)

    def _score(
        self,
        loaded: LoadedModel,
        columns: list[np.ndarray],
        ids: Sequence[str] | None = None,
        role: str = STABLE,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(class probabilities, predicted labels) of validated columns, counted and logged.

        ``ids`` are the rows' ids and ``role`` the role the version answers in: both
        go to the metrics and the inference log.
        """
        frame = loaded.schema.frame(columns)
        proba = self._probabilities(loaded, frame)
        index = proba.argmax(axis=1)
        labels = loaded.labels[index]
        self._observe(loaded, frame, index, labels, ids, role)
        return proba, labels

    def _observe(
        self,
        loaded: LoadedModel,
        frame: pd.DataFrame,
        index: np.ndarray,
        labels: np.ndarray,
        ids: Sequence[str] | None,
        role: str,
    ) -> None:
        counts = np.bincount(index, minlength=len(loaded.classes))
        metrics.count_predictions(self.name, loaded.version, list(loaded.classes), counts, role)
        out_of_range = out_of_range_counts(loaded.schema, frame)
        if out_of_range:
            metrics.count_out_of_range(self.name, loaded.version, out_of_range, role)
        if self.inference_logger is not None:
            try:
                self.inference_logger.record(
                    loaded.version, frame, labels, request_ids=ids, role=role
                )
            except Exception:  # logging must never fail a prediction
                logger.exception("inference log record failed")

    # -- batches (on the batch worker thread) ---------------------------------------
    def _score_part(self, part: _Part) -> tuple[np.ndarray, np.ndarray] | Exception:
        """One request's answer, or the exception it gets."""
        try:
            return self._score(part.loaded, part.columns, part.ids, part.role)
        except Exception as exc:
            return exc

    def _score_parts(self, parts: Sequence[_Part]) -> list[Any]:
        """Per request of a batch, its (probabilities, labels) or its exception.

        The requests' columns are joined into one frame and scored in one call;
        the counts and the inference log see the same rows a call per request
        would. When the joined call fails, each request is scored alone, so only a
        request whose own rows fail gets an error (and the same one as unbatched).
        """
        first, role = parts[0].loaded, parts[0].role
        if len(parts) == 1 or any(p.loaded is not first or p.role != role for p in parts):
            return [self._score_part(part) for part in parts]
        columns = [
            np.concatenate([part.columns[i] for part in parts]) for i in range(len(first.schema))
        ]
        ids = [row_id for part in parts for row_id in part.ids]
        try:
            proba, labels = self._score(first, columns, ids, role)
        except Exception:
            return [self._score_part(part) for part in parts]
        results: list[Any] = []
        start = 0
        for part in parts:
            stop = start + part.rows
            results.append((proba[start:stop], labels[start:stop]))
            start = stop
        return results

    # -- requests -----------------------------------------------------------------
    async def __call__(
        self,
        body: dict | InferRequest,
        headers: dict[str, str] | None = None,
        verb: InferenceVerb = InferenceVerb.PREDICT,
    ) -> tuple[dict | InferResponse, dict[str, str]]:
        """What KServe's data plane awaits: predictions batched, explanations as KServe does.

        Raises:
            ModelNotReady, RequestTooLarge, InvalidInput: as :meth:`predict`.
        """
        if verb is not InferenceVerb.PREDICT:
            return await super().__call__(body, headers, verb)
        return await self.predict_batched(body), {}

    async def predict_batched(
        self, payload: dict | InferRequest, role: str = STABLE
    ) -> dict | InferResponse:
        """:meth:`predict`, with the model call shared with concurrent requests, off the event loop.

        Reading, bounding and validating the request happen here, before it is
        queued; a model cheaper than a thread round trip
        (:attr:`BatchPolicy.inline_below_seconds <serving.batching.BatchPolicy>`) is
        scored here, unbatched.

        Args:
            payload: A V1 body or a V2 ``InferRequest``.
            role: The role this version answers in (``stable``, ``canary``): in the
                answer, the metrics and the inference log.

        Raises:
            ModelNotReady, RequestTooLarge, InvalidInput: as :meth:`predict`.
        """
        loaded = self._ready_state()
        note_role(role)
        columns, rows, ids, respond = self._prepare(loaded, payload, role)
        batcher = self._batcher
        if batcher is None or loaded.call_seconds < self.batching.inline_below_seconds:
            ARRIVALS.settle()
            proba, labels = self._score(loaded, columns, ids, role)
        else:
            proba, labels = await batcher.submit(_Part(loaded, columns, rows, ids, role), rows)
        return respond(proba, labels)

    def predict(
        self,
        payload: dict | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
        role: str = STABLE,
        request_id: str | None = None,
    ) -> dict | InferResponse:
        """Predicts a V1 body (dict) or a V2 ``InferRequest`` now, unbatched, on the calling thread.

        ``role`` is the role the version answers in (``shadow`` for a mirrored copy);
        ``request_id`` overrides the request's id (a shadow copy keeps the one the
        stable answer carried).

        Raises:
            ModelNotReady: The model is not loaded.
            RequestTooLarge: The request is past a bound (413; the message names the setting).
            InvalidInput: The request is malformed (the message names the problem).
        """
        loaded = self._ready_state()
        note_role(role)
        columns, _, ids, respond = self._prepare(loaded, payload, role, request_id)
        return respond(*self._score(loaded, columns, ids, role))

    def _prepare(
        self,
        loaded: LoadedModel,
        payload: dict | InferRequest,
        role: str = STABLE,
        request_id: str | None = None,
    ) -> tuple[list[np.ndarray], int, list[str], Respond]:
        """Reads, bounds and validates a request: its columns, rows, row ids and how to answer it.

        V1 answers carry ``id`` (the request id), ``ids`` (one per row) and ``role``.
        """
        if isinstance(payload, InferRequest):
            return self._prepare_v2(loaded, payload, role, request_id)
        request = read_v1(payload)
        self.limits.check_predict(
            request.rows, len(loaded.classes), probabilities=request.probabilities
        )
        columns = v1_columns(request, loaded.schema)
        rid = request_id or _request_id()
        ids = row_ids(rid, request.rows)

        def respond(proba: np.ndarray, labels: np.ndarray) -> dict:
            response: dict[str, Any] = {
                "id": rid,
                "ids": ids,
                "predictions": labels.tolist(),
                "model_version": loaded.version,
                "role": role,
            }
            if request.probabilities:
                response["probabilities"] = proba.tolist()
                response["classes"] = list(loaded.classes)
            return response

        return columns, request.rows, ids, respond

    def _prepare_v2(
        self,
        loaded: LoadedModel,
        request: InferRequest,
        role: str = STABLE,
        request_id: str | None = None,
    ) -> tuple[list[np.ndarray], int, list[str], Respond]:
        decoded = read_v2(request, loaded.schema)
        self.limits.check_predict(
            decoded.rows,
            len(loaded.classes),
            predictions=decoded.predictions,
            probabilities=decoded.probabilities,
        )
        columns = v2_columns(decoded, loaded.schema)
        rid = request_id or _request_id(request.id)
        ids = row_ids(rid, decoded.rows)
        # The answer's id is the request id, except that a body id which cannot be one
        # is still echoed, as the OIP asks (the row ids then carry the generated id).
        answer_id = request.id if request.id and not _usable(request.id) else rid

        def respond(proba: np.ndarray, labels: np.ndarray) -> InferResponse:
            # OIP parameter values are scalars: the row ids travel as one comma-separated
            # string (ids never hold a comma). The outputs carry no parameters.
            return InferResponse(
                response_id=answer_id,
                model_name=self.name,
                model_version=loaded.version,
                infer_outputs=self._v2_outputs(loaded, decoded, proba, labels),
                use_binary_outputs=bool(request.use_binary_outputs),
                requested_outputs=request.request_outputs,
                parameters={"role": role, "row_ids": ",".join(ids)},
            )

        return columns, decoded.rows, ids, respond

    @staticmethod
    def _v2_outputs(
        loaded: LoadedModel, decoded: V2Request, proba: np.ndarray, labels: np.ndarray
    ) -> list[InferOutput]:
        """The V2 outputs the request asked for (all of them when it named none), in its order."""
        tensors = {
            "predict": lambda: InferOutput(
                name="predict", shape=[len(labels)], datatype=loaded.labels_datatype, data=labels
            ),
            "probabilities": lambda: InferOutput(
                name="probabilities",
                shape=list(proba.shape),
                datatype="FP64",
                data=np.ascontiguousarray(proba, dtype=np.float64),
            ),
        }
        return [tensors[name]() for name in decoded.outputs]

    def explain(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> dict:
        """Per-feature attributions of a V1 body or a V2 ``InferRequest``.

        Raises:
            ModelNotReady: The model is not loaded.
            RequestTooLarge: The request has too many rows (413; the message names the setting).
            InvalidInput: The request is malformed, or its values overflow the model.
        """
        loaded = self._ready_state()
        classes, features = len(loaded.classes), len(loaded.schema)
        if isinstance(payload, InferRequest):
            decoded = read_v2(payload, loaded.schema)
            self.limits.check_explain(decoded.rows, classes, features)
            frame = v2_frame(decoded, loaded.schema)
        else:
            request = read_v1(payload)
            self.limits.check_explain(request.rows, classes, features)
            frame = v1_frame(request, loaded.schema)
        proba = self._probabilities(loaded, frame)
        result = loaded.explainer.explain(frame, proba)
        return {"model_name": self.name, "model_version": loaded.version, **result}
