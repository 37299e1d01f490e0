"""``SklearnPredictor``: one signed, published scikit-learn model version as a KServe model.

Shaped like KServe's own sklearnserver (``load()`` then ``predict()``), with the
project's trust rules on the load path:

1. ``load()`` fetches the model directory (``s3://.../models/<name>/<version>``
   through :func:`mlops.model.registry.fetch_model`, or a local folder), verifies its
   signature with :func:`mlops.trust.signing.verify_model_dir` and only then
   loads ``model.skops`` with :func:`mlops.model.modelio.load_model` (skops with a
   trusted-type allow-list, never pickle). Any failure fails closed: the model
   never becomes ready and ``not_ready_reason`` says why.
2. ``predict()`` validates the request strictly (:mod:`serving.validation`), runs
   ``predict_proba`` once and returns class labels (and, when asked with the
   ``probabilities`` parameter, the class probabilities). V1 answers carry
   ``model_version``; V2 answers set ``InferResponse.model_version``.
3. ``explain()`` returns per-feature attributions (:mod:`serving.explain`).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import pandas as pd
from kserve import Model
from kserve.errors import ModelNotReady
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from mlops.model.packaging import METADATA_FILE, MODEL_FILE, REFERENCE_FILE, SIGNATURE_FILE
from serving import metrics
from serving.explain import Explainer
from serving.validation import NUMERIC, FeatureSchema, out_of_range_counts, parse_v1, parse_v2

logger = logging.getLogger(__name__)


def _labels_datatype(classes: np.ndarray) -> tuple[np.ndarray, str]:
    kind = classes.dtype.kind
    if kind in "iu":
        return classes.astype(np.int64), "INT64"
    if kind == "f":
        return classes.astype(np.float64), "FP64"
    if kind == "b":
        return classes.astype(bool), "BOOL"
    return np.array([str(c) for c in classes], dtype=object), "BYTES"


class SklearnPredictor(Model):
    """A verified sklearn model version.

    Args:
        name: Model name (the endpoint path segment).
        model_uri_or_dir: ``s3://bucket/models/<name>/<version>`` or a local model directory.
        public_key: PEM public key the model directory must be signed with.
        store: Object store for ``s3://`` URIs (None for a local directory).
        version: The version label; read from ``metadata.json`` when empty.
        inference_logger: Optional :class:`serving.inference_log.InferenceLogger`.
    """

    def __init__(
        self,
        name: str,
        model_uri_or_dir: Union[str, Path],
        public_key: Path,
        store=None,
        version: str = "",
        inference_logger=None,
    ) -> None:
        super().__init__(name)
        self.model_uri = str(model_uri_or_dir)
        self.public_key = Path(public_key)
        self.store = store
        self.version = version or ""
        self.inference_logger = inference_logger
        self.not_ready_reason: Optional[str] = "not loaded yet"
        self.model = None
        self.metadata: dict = {}
        self.schema: Optional[FeatureSchema] = None
        self.explainer: Optional[Explainer] = None
        self.classes: list = []
        self._labels: Optional[np.ndarray] = None
        self._labels_datatype = "BYTES"
        self.fast_path: Optional["FastPath"] = None

    # -- loading ------------------------------------------------------------------
    def load(self) -> bool:
        """Fetches, verifies and loads the model; returns readiness (never raises)."""
        self.ready = False
        workdir = None
        try:
            if self.model_uri.startswith("s3://"):
                if self.store is None:
                    raise ValueError(f"{self.model_uri} needs an object store (MLOPS_S3_* not set)")
                from mlops.model.registry import fetch_model

                workdir = Path(tempfile.mkdtemp(prefix=f"mlops-{self.name}-"))
                model_dir = fetch_model(self.store, self.model_uri, workdir / "model")
            else:
                model_dir = Path(self.model_uri)
            self._load_dir(model_dir)
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
        finally:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
        self.not_ready_reason = None
        self.ready = True
        logger.info(
            "model %s version %s loaded from %s (verified, %s)",
            self.name,
            self.version,
            self.model_uri,
            self.explainer.method if self.explainer else "-",
        )
        return True

    def _load_dir(self, model_dir: Path) -> None:
        from mlops.model.modelio import load_model
        from mlops.trust.signing import verify_model_dir

        # Verify first: nothing in the folder is read before the signature checks out.
        verify_model_dir(model_dir, self.public_key, signature_name=SIGNATURE_FILE)
        metadata = json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))
        version = str(metadata.get("version") or "")
        if self.version and version and version != self.version:
            raise ValueError(f"metadata.json says version {version!r}, expected {self.version!r}")
        self.version = self.version or version or "unknown"
        schema = FeatureSchema.from_metadata(metadata)
        model = load_model(model_dir / MODEL_FILE)
        if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
            raise ValueError("the model has no predict_proba / classes_ (not a fitted classifier)")
        reference = None
        if (model_dir / REFERENCE_FILE).is_file():
            reference = pd.read_parquet(model_dir / REFERENCE_FILE)
        self.model, self.metadata, self.schema = model, metadata, schema
        self.classes = [c.item() if hasattr(c, "item") else c for c in model.classes_]
        self._labels, self._labels_datatype = _labels_datatype(np.asarray(model.classes_))
        self.explainer = Explainer(model, schema, reference)
        self.fast_path = FastPath.build(model, schema, reference)

    def stop(self) -> None:
        self.ready = False

    # -- metadata -----------------------------------------------------------------
    def get_input_types(self):
        if self.schema is None:
            return []
        return [
            {"name": f.name, "datatype": "FP64" if f.kind == NUMERIC else "BYTES", "shape": [-1]}
            for f in self.schema.features
        ]

    def get_output_types(self):
        return [
            {"name": "predict", "datatype": self._labels_datatype, "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(self.classes)]},
        ]

    # -- inference ----------------------------------------------------------------
    def _check_ready(self) -> None:
        if not self.ready or self.model is None:
            raise ModelNotReady(self.name, self.not_ready_reason)

    def _score(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(class probabilities, predicted labels) of validated rows, counted and logged."""
        import sklearn

        # Inputs are validated already (finite or NaN-for-imputation): skip sklearn's re-checks.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            proba = (self.fast_path or self.model).predict_proba(frame)
        index = proba.argmax(axis=1)
        labels = self._labels[index]
        self._observe(frame, index, labels)
        return proba, labels

    def _observe(self, frame: pd.DataFrame, index: np.ndarray, labels: np.ndarray) -> None:
        metrics.count_predictions(
            self.name, self.version, self.classes, np.bincount(index, minlength=len(self.classes))
        )
        counts = out_of_range_counts(self.schema, frame)
        if counts:
            metrics.count_out_of_range(self.name, self.version, counts)
        if self.inference_logger is not None:
            try:
                self.inference_logger.record(self.version, frame, labels)
            except Exception:  # logging must never fail a prediction
                logger.exception("inference log record failed")

    def predict(
        self,
        payload: Union[Dict, InferRequest],
        headers: Dict[str, str] = None,
        response_headers: Dict[str, str] = None,
    ) -> Union[Dict, InferResponse]:
        self._check_ready()
        metrics.note_version(self.version)
        if isinstance(payload, InferRequest):
            return self._predict_v2(payload)
        frame, want_proba = parse_v1(payload, self.schema)
        proba, labels = self._score(frame)
        response: Dict[str, Any] = {"predictions": labels.tolist(), "model_version": self.version}
        if want_proba:
            response["probabilities"] = proba.tolist()
            response["classes"] = list(self.classes)
        return response

    def _predict_v2(self, request: InferRequest) -> InferResponse:
        frame, want_proba, want_predict = parse_v2(request, self.schema)
        proba, labels = self._score(frame)
        outputs = []
        if want_predict:
            outputs.append(
                InferOutput(
                    name="predict", shape=[len(labels)], datatype=self._labels_datatype, data=labels
                )
            )
        if want_proba:
            outputs.append(
                InferOutput(
                    name="probabilities",
                    shape=list(proba.shape),
                    datatype="FP64",
                    data=np.ascontiguousarray(proba, dtype=np.float64),
                )
            )
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()),
            model_name=self.name,
            model_version=self.version,
            infer_outputs=outputs,
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )

    def explain(self, payload: Union[Dict, InferRequest], headers: Dict[str, str] = None) -> Dict:
        self._check_ready()
        metrics.note_version(self.version)
        if isinstance(payload, InferRequest):
            frame = parse_v2(payload, self.schema)[0]
        else:
            frame = parse_v1(payload, self.schema)[0]
        result = self.explainer.explain(frame)
        return {"model_name": self.name, "model_version": self.version, **result}


class FastPath:
    """NumPy re-implementation of the contract's preprocessing, for per-request latency.

    scikit-learn's ColumnTransformer spends milliseconds per call on pandas
    indexing and input checks, dwarfing the model on small requests. For the
    exact contract layout -- ColumnTransformer of Pipeline(SimpleImputer,
    StandardScaler) and Pipeline(SimpleImputer, OneHotEncoder(handle_unknown=
    "ignore")) -- the fitted parameters are applied with the same arithmetic, and
    the estimator gets the resulting matrix (for logistic regression, the
    probabilities come straight from its coefficients). It is only used when, at load
    time, it reproduces the full pipeline's probabilities on the reference
    sample plus rows with missing values and unseen categories; otherwise (any
    other layout) the pipeline itself is called.
    """

    def __init__(self, estimator, parts: list, width: int, schema: FeatureSchema) -> None:
        self.estimator = estimator
        self.parts = parts
        self.width = width
        self.schema = schema
        # Linear models: probabilities straight from coef_/intercept_, skipping
        # sklearn's per-call input checks; kept only if it matches predict_proba.
        self.linear_head: Optional[tuple[np.ndarray, np.ndarray]] = None

    @classmethod
    def build(
        cls, model, schema: FeatureSchema, reference: Optional[pd.DataFrame]
    ) -> Optional["FastPath"]:
        try:
            fast = cls._compile(model, schema)
            if fast is None or reference is None or not len(reference):
                return None
            probe = cls._probe_frame(model, schema, reference)
            slow = model.predict_proba(probe)
            # The linear head first (when there is one), then the estimator itself.
            linear_head = cls._linear_head(fast.estimator)
            for head in ([linear_head] if linear_head is not None else []) + [None]:
                fast.linear_head = head
                if cls._agrees(fast.predict_proba(probe), slow):
                    return fast
            logger.info("fast path disagrees with the pipeline; using the pipeline")
        except Exception as exc:  # anything unexpected: the plain pipeline is always correct
            logger.info("fast path unavailable (%s); using the pipeline", exc)
        return None

    @staticmethod
    def _agrees(quick: np.ndarray, slow: np.ndarray) -> bool:
        return (
            quick.shape == slow.shape
            and np.allclose(quick, slow, rtol=1e-9, atol=1e-12)
            and bool((quick.argmax(axis=1) == slow.argmax(axis=1)).all())
        )

    @staticmethod
    def _linear_head(estimator) -> Optional[tuple[np.ndarray, np.ndarray]]:
        from sklearn.linear_model import LogisticRegression

        if type(estimator) is not LogisticRegression:
            return None
        return np.asarray(estimator.coef_, dtype=np.float64).T.copy(), np.asarray(
            estimator.intercept_, dtype=np.float64
        )

    @staticmethod
    def _probe_frame(model, schema: FeatureSchema, reference: pd.DataFrame) -> pd.DataFrame:
        from serving.explain import coerce_reference

        frame = coerce_reference(reference, schema).head(200).reset_index(drop=True)
        odd = frame.head(min(len(frame), 8)).copy()
        for j, feature in enumerate(schema.features):
            rows = odd.index[j % len(odd) :: 3] if len(odd) else []
            odd.loc[rows, feature.name] = np.nan if feature.kind == NUMERIC else "__unseen__"
            odd.loc[odd.index[(j + 1) % len(odd)], feature.name] = np.nan
        return pd.concat([frame, odd], ignore_index=True)

    @classmethod
    def _compile(cls, model, schema: FeatureSchema) -> Optional["FastPath"]:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        if not isinstance(model, Pipeline) or len(model.steps) != 2:
            return None
        ct, estimator = model.steps[0][1], model.steps[1][1]
        if type(ct) is not ColumnTransformer:
            return None
        parts, width = [], 0
        for name, trans, cols in ct.transformers_:
            if name == "remainder":
                if trans != "drop":
                    return None
                continue
            cols = [cols] if isinstance(cols, str) else list(cols)
            if not all(isinstance(c, str) and c in schema.index for c in cols):
                return None
            positions = np.array([schema.index[c] for c in cols], dtype=np.intp)
            steps = [s for _, s in trans.steps] if type(trans) is Pipeline else [trans]
            if not steps or type(steps[0]) is not SimpleImputer or steps[0].add_indicator:
                return None
            fill = np.asarray(steps[0].statistics_, dtype=object)
            if len(fill) != len(cols) or any(
                isinstance(v, float) and not np.isfinite(v) for v in fill
            ):
                return None
            out = ct.output_indices_[name]
            if len(steps) == 2 and type(steps[1]) is StandardScaler:
                scaler = steps[1]
                if any(schema.features[schema.index[c]].kind != NUMERIC for c in cols):
                    return None
                mean = scaler.mean_ if scaler.with_mean else None
                scale = scaler.scale_ if scaler.with_std else None
                parts.append(("num", positions, fill.astype(np.float64), mean, scale, out.start))
                width_here = len(cols)
            elif len(steps) == 2 and type(steps[1]) is OneHotEncoder:
                encoder = steps[1]
                if (
                    encoder.drop_idx_ is not None
                    or encoder.handle_unknown != "ignore"
                    or getattr(encoder, "_infrequent_enabled", False)
                ):
                    return None
                lookups = [
                    {value: i for i, value in enumerate(c.tolist())} for c in encoder.categories_
                ]
                if any(not all(isinstance(v, str) for v in lookup) for lookup in lookups):
                    return None
                parts.append(("cat", positions, fill, lookups, None, out.start))
                width_here = sum(len(lookup) for lookup in lookups)
            else:
                return None
            if out.stop - out.start != width_here:
                return None
            width += width_here
        return cls(estimator, parts, width, schema) if width else None

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(frame), self.width), dtype=np.float64)
        # One conversion of the whole frame: selecting columns by name (frame[c] or
        # frame[cols]) costs more than the model itself for a one-row request.
        # Request frames come in schema order (validation builds them so).
        if frame.columns is not self.schema.columns and frame.columns.tolist() != self.schema.names:
            frame = frame[self.schema.names]
        values = frame.to_numpy()
        for kind, positions, fill, a, b, start in self.parts:
            if kind == "num":
                block = values[:, positions].astype(np.float64)
                missing = np.isnan(block)
                if missing.any():
                    block = np.where(missing, fill[None, :], block)
                if a is not None:
                    block = block - a
                if b is not None:
                    block = block / b
                out[:, start : start + len(positions)] = block
            else:
                offset = start
                for j, position in enumerate(positions):
                    lookup = a[j]
                    for i, value in enumerate(values[:, position].tolist()):
                        if not isinstance(value, str):
                            value = fill[j]
                        index = lookup.get(value)
                        if index is not None:
                            out[i, offset + index] = 1.0
                    offset += len(lookup)
        return out

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        features = self.transform(frame)
        if self.linear_head is None:
            return self.estimator.predict_proba(features)
        from scipy.special import expit, softmax

        weights, intercept = self.linear_head
        scores = features @ weights + intercept
        if scores.shape[1] == 1:  # binary: one logit for the second class
            positive = expit(scores[:, 0])
            return np.column_stack([1.0 - positive, positive])
        return softmax(scores, axis=1)
