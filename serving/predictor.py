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
   names none. V1 answers carry ``model_version``; V2 answers set
   ``InferResponse.model_version`` and leave ``parameters`` out. Bad input raises
   ``InvalidInput`` (400), a request past a bound ``RequestTooLarge`` (413), a
   model that is not loaded ``ModelNotReady``.
3. ``explain()`` returns per-feature attributions (:mod:`serving.explain`), under
   the same bounds and checks.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from kserve import Model
from kserve.errors import ModelNotReady
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from mlops.core.settings import ServingSettings
from mlops.model.packaging import METADATA_FILE, MODEL_FILE, REFERENCE_FILE, SIGNATURE_FILE
from mlops.model.schema import NUMERIC, FeatureSchema
from serving import metrics
from serving.explain import Explainer
from serving.fast_path import FastPath
from serving.limits import RequestLimits
from serving.scoring import PipelineScorer, check_probabilities
from serving.validation import (
    OUTPUTS,
    V2Request,
    out_of_range_counts,
    read_v1,
    read_v2,
    v1_frame,
    v2_frame,
)

logger = logging.getLogger(__name__)


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

    @classmethod
    def read(cls, model_dir: Path, public_key: Path, expected_version: str = "") -> LoadedModel:
        """Verifies the signature of ``model_dir``, then reads and prepares everything in it.

        Raises:
            Exception: Any failure (signature, format, version mismatch): the caller fails closed.
        """
        from mlops.model.modelio import load_model
        from mlops.trust.signing import verify_model_dir

        # Verify first: nothing in the folder is read before the signature checks out.
        verify_model_dir(model_dir, public_key, signature_name=SIGNATURE_FILE)
        metadata = json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))
        version = str(metadata.get("version") or "")
        if expected_version and version and version != expected_version:
            raise ValueError(
                f"metadata.json says version {version!r}, expected {expected_version!r}"
            )
        schema = FeatureSchema.from_metadata(metadata)
        model = load_model(model_dir / MODEL_FILE)
        if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
            raise ValueError("the model has no predict_proba / classes_ (not a fitted classifier)")
        reference = None
        if (model_dir / REFERENCE_FILE).is_file():
            reference = pd.read_parquet(model_dir / REFERENCE_FILE)
        labels, labels_datatype = _labels_datatype(np.asarray(model.classes_))
        fast_path = FastPath.build(model, schema, reference)
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
            scorer=fast_path or PipelineScorer(model),
        )


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
    ) -> None:
        super().__init__(name)
        self.limits = limits or RequestLimits.from_settings(ServingSettings.from_env())
        self.model_uri = str(model_uri_or_dir)
        self.public_key = Path(public_key)
        self.store = store
        self.inference_logger = inference_logger
        self.not_ready_reason: str | None = "not loaded yet"
        self._expected_version = version or ""
        self._loaded: LoadedModel | None = None

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
        self.not_ready_reason = None
        self.ready = True
        logger.info(
            "model %s version %s loaded from %s (verified, %s)",
            self.name,
            loaded.version,
            self.model_uri,
            loaded.explainer.method,
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
        """Stops serving: the model is no longer ready."""
        self.ready = False

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
    def _probabilities(loaded: LoadedModel, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities of validated rows, every one finite (else InvalidInput)."""
        import sklearn

        # Inputs are validated already (finite or NaN-for-imputation), and the scorer checks
        # what the preprocessing made of them: skip sklearn's own (costly) re-checks.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            proba = loaded.scorer.predict_proba(frame)
        check_probabilities(proba, frame)
        return proba

    def _score(self, loaded: LoadedModel, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(class probabilities, predicted labels) of validated rows, counted and logged."""
        proba = self._probabilities(loaded, frame)
        index = proba.argmax(axis=1)
        labels = loaded.labels[index]
        self._observe(loaded, frame, index, labels)
        return proba, labels

    def _observe(
        self, loaded: LoadedModel, frame: pd.DataFrame, index: np.ndarray, labels: np.ndarray
    ) -> None:
        counts = np.bincount(index, minlength=len(loaded.classes))
        metrics.count_predictions(self.name, loaded.version, list(loaded.classes), counts)
        out_of_range = out_of_range_counts(loaded.schema, frame)
        if out_of_range:
            metrics.count_out_of_range(self.name, loaded.version, out_of_range)
        if self.inference_logger is not None:
            try:
                self.inference_logger.record(loaded.version, frame, labels)
            except Exception:  # logging must never fail a prediction
                logger.exception("inference log record failed")

    def predict(
        self,
        payload: dict | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict | InferResponse:
        """Predicts a V1 body (dict) or a V2 ``InferRequest``.

        Raises:
            ModelNotReady: The model is not loaded.
            RequestTooLarge: The request is past a bound (413; the message names the setting).
            InvalidInput: The request is malformed (the message names the problem).
        """
        loaded = self._ready_state()
        if isinstance(payload, InferRequest):
            return self._predict_v2(loaded, payload)
        request = read_v1(payload)
        self.limits.check_predict(
            request.rows, len(loaded.classes), probabilities=request.probabilities
        )
        frame = v1_frame(request, loaded.schema)
        proba, labels = self._score(loaded, frame)
        response: dict[str, Any] = {"predictions": labels.tolist(), "model_version": loaded.version}
        if request.probabilities:
            response["probabilities"] = proba.tolist()
            response["classes"] = list(loaded.classes)
        return response

    def _predict_v2(self, loaded: LoadedModel, request: InferRequest) -> InferResponse:
        decoded = read_v2(request, loaded.schema)
        self.limits.check_predict(
            decoded.rows,
            len(loaded.classes),
            predictions=decoded.predictions,
            probabilities=decoded.probabilities,
        )
        proba, labels = self._score(loaded, v2_frame(decoded, loaded.schema))
        # No "parameters" on the response or its outputs: KServe leaves empty ones out.
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()),
            model_name=self.name,
            model_version=loaded.version,
            infer_outputs=self._v2_outputs(loaded, decoded, proba, labels),
            use_binary_outputs=bool(request.use_binary_outputs),
            requested_outputs=request.request_outputs,
        )

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
