"""``FastPath``: the contract's preprocessing re-done in NumPy, for per-request latency.

scikit-learn's ColumnTransformer spends milliseconds per call on pandas indexing
and input checks, dwarfing the model on small requests. For the exact contract
layout -- ColumnTransformer of Pipeline(SimpleImputer, StandardScaler) and
Pipeline(SimpleImputer, OneHotEncoder(handle_unknown="ignore")) -- the fitted
parameters are applied with the same arithmetic, and the estimator gets the
resulting matrix (for logistic regression, the probabilities come straight from
its coefficients). It is only used when, at load time, it reproduces the full
pipeline's probabilities on the reference sample plus rows with missing values
and unseen categories; otherwise (any other layout) the pipeline itself is called.

Like the pipeline path (:class:`serving.scoring.PipelineScorer`), the transformed
matrix is checked before the estimator sees it: a value the scaling made infinite,
or one past float32 for an estimator that computes in float32, is a 400 naming
the feature (:func:`serving.scoring.check_transformed`), never a silent result.

Why it is kept now that every model is batched (:mod:`serving.batching`, issue 14):
``bench/bench_serving.py`` serves the same fitted logistic-regression pipeline with
and without this path (``bench-builtin`` and ``bench-builtin-generic``). Batching
shares the pipeline's per-call cost among concurrent requests, so at 16 connections
and more the batched generic path is about as fast; but a single client pays the
whole per-call cost on every request, and without the fast path one connection gets
about a quarter of the requests per second (the README's performance section has
the figures). The single-connection goal (no regression of the built-in pipeline)
cannot be met without it. It stays behind the same interface as the pipeline
(``predict_proba`` of a validated frame) and is used only where it is proven equal
at load.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops.model.schema import NUMERIC, FeatureSchema, coerce
from serving.scoring import check_transformed, computes_in_float32, in_range

logger = logging.getLogger(__name__)

_PROBE_ROWS = 200


@dataclass(frozen=True, eq=False)
class _ScaledBlock:
    """Numeric columns: impute with the training median, then standardise."""

    positions: np.ndarray
    fill: np.ndarray
    mean: np.ndarray | None
    scale: np.ndarray | None
    start: int

    @property
    def width(self) -> int:
        return len(self.positions)

    def column_positions(self) -> list[int]:
        """Per transformed column of this block, the schema position of its feature."""
        return self.positions.tolist()

    def write(self, values: np.ndarray, out: np.ndarray) -> None:
        """Writes this block's transformed columns of ``values`` (rows x features) into ``out``."""
        block = values[:, self.positions].astype(np.float64)
        missing = np.isnan(block)
        if missing.any():
            block = np.where(missing, self.fill[None, :], block)
        if self.mean is not None:
            block = block - self.mean
        if self.scale is not None:
            block = block / self.scale
        out[:, self.start : self.start + self.width] = block


@dataclass(frozen=True, eq=False)
class _OneHotBlock:
    """Categorical columns: impute with the training mode, then one-hot (unknown -> all zeros)."""

    positions: np.ndarray
    fill: np.ndarray
    lookups: tuple[dict[str, int], ...]
    start: int

    @property
    def width(self) -> int:
        return sum(len(lookup) for lookup in self.lookups)

    def column_positions(self) -> list[int]:
        """Per transformed column of this block, the schema position of its feature."""
        return [
            int(p) for p, lookup in zip(self.positions, self.lookups, strict=True) for _ in lookup
        ]

    def write(self, values: np.ndarray, out: np.ndarray) -> None:
        """Writes this block's one-hot columns of ``values`` (rows x features) into ``out``."""
        offset = self.start
        for j, position in enumerate(self.positions):
            lookup = self.lookups[j]
            for i, value in enumerate(values[:, position].tolist()):
                if not isinstance(value, str):
                    value = self.fill[j]
                index = lookup.get(value)
                if index is not None:
                    out[i, offset + index] = 1.0
            offset += len(lookup)


_Block = _ScaledBlock | _OneHotBlock


@dataclass(frozen=True, eq=False)
class FastPath:
    """The fitted preprocessing as NumPy blocks plus the estimator (or its linear head).

    Attributes:
        estimator: The pipeline's final estimator.
        blocks: The transformed column blocks, in output order.
        width: Number of transformed columns.
        schema: The model's features (request frames come in this order).
        column_features: Per transformed column, the feature it comes from.
        float32: The estimator computes in float32 (its input must fit float32).
        linear_head: ``(weights, intercept)`` of a logistic regression, used instead
            of ``estimator.predict_proba`` when it gives the same probabilities.
    """

    estimator: Any
    blocks: tuple[_Block, ...]
    width: int
    schema: FeatureSchema
    column_features: tuple[str, ...]
    float32: bool
    linear_head: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def build(
        cls, model: Any, schema: FeatureSchema, reference: pd.DataFrame | None
    ) -> FastPath | None:
        """The fast path of ``model`` when it reproduces the pipeline on probe rows, else None."""
        try:
            fast = cls._compile(model, schema)
            if fast is None or reference is None or not len(reference):
                return None
            probe = cls._probe_frame(schema, reference)
            slow = model.predict_proba(probe)
            # The linear head first (when there is one), then the estimator itself.
            linear_head = cls._linear_head(fast.estimator)
            for head in ([linear_head] if linear_head is not None else []) + [None]:
                candidate = dataclasses.replace(fast, linear_head=head)
                if cls._agrees(candidate.predict_proba(probe), slow):
                    return candidate
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
    def _linear_head(estimator: Any) -> tuple[np.ndarray, np.ndarray] | None:
        from sklearn.linear_model import LogisticRegression

        if type(estimator) is not LogisticRegression:
            return None
        return np.asarray(estimator.coef_, dtype=np.float64).T.copy(), np.asarray(
            estimator.intercept_, dtype=np.float64
        )

    @staticmethod
    def _probe_frame(schema: FeatureSchema, reference: pd.DataFrame) -> pd.DataFrame:
        """Reference rows plus copies with missing values and unseen categories."""
        sample = reference.head(_PROBE_ROWS).reset_index(drop=True)
        frame = coerce(sample, schema, source="reference sample")
        odd = frame.head(min(len(frame), 8)).copy()
        for j, feature in enumerate(schema.features):
            rows = odd.index[j % len(odd) :: 3] if len(odd) else []
            odd.loc[rows, feature.name] = np.nan if feature.kind == NUMERIC else "__unseen__"
            odd.loc[odd.index[(j + 1) % len(odd)], feature.name] = np.nan
        return pd.concat([frame, odd], ignore_index=True)

    @classmethod
    def _compile(cls, model: Any, schema: FeatureSchema) -> FastPath | None:
        """The NumPy blocks of a contract-layout pipeline; None for any other layout."""
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        if not isinstance(model, Pipeline) or len(model.steps) != 2:
            return None
        ct, estimator = model.steps[0][1], model.steps[1][1]
        if type(ct) is not ColumnTransformer:
            return None
        blocks = []
        for name, trans, cols in ct.transformers_:
            if name == "remainder":
                if trans != "drop":
                    return None
                continue
            out = ct.output_indices_[name]
            if _selects_nothing(cols) and out.stop == out.start:
                # A column selector that matched no column at fit (the recipe's
                # make_column_selector on a table without categorical columns) leaves
                # its transformer unfitted in transformers_; it writes no output column,
                # so there is nothing to re-implement, and reading its fitted
                # attributes would fail and throw the whole fast path away.
                continue
            block = _compile_block(trans, cols, schema, out.start)
            if block is None or out.stop - out.start != block.width:
                return None
            blocks.append(block)
        width = sum(block.width for block in blocks)
        if not width:
            return None
        columns = [0] * width
        for block in blocks:
            columns[block.start : block.start + block.width] = block.column_positions()
        names = tuple(schema.names[p] for p in columns)
        return cls(estimator, tuple(blocks), width, schema, names, computes_in_float32(estimator))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The transformed matrix of a validated request frame.

        Raises:
            InvalidInput: A value the scaling made infinite (or past float32 for a
                float32 estimator), naming the feature, row and value.
        """
        out = np.zeros((len(frame), self.width), dtype=np.float64)
        # One conversion of the whole frame: selecting columns by name (frame[c] or
        # frame[cols]) costs more than the model itself for a one-row request.
        values = self.schema.ordered(frame).to_numpy()
        for block in self.blocks:
            block.write(values, out)
        if not in_range(out, self.float32):  # one vectorised pass; the rest only on error
            check_transformed(out, frame, self.column_features, self.float32)
        return out

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities of a validated request frame, as the pipeline computes them."""
        features = self.transform(frame)
        if self.linear_head is None:
            return self.estimator.predict_proba(features)
        from scipy.special import expit, softmax

        weights, intercept = self.linear_head
        # Not ``features @ weights``: BLAS picks its kernel (and so its summation order)
        # by the number of rows, so a row scored in a batch could differ in the last bit
        # from the same row scored alone. A broadcast product summed over the feature
        # axis adds each row's terms in the same order whatever the batch size, so
        # batched answers equal unbatched ones exactly (tests/unit/test_batching_predictor.py).
        scores = (features[:, :, None] * weights[None, :, :]).sum(axis=1) + intercept
        if scores.shape[1] == 1:  # binary: one logit for the second class
            positive = expit(scores[:, 0])
            return np.column_stack([1.0 - positive, positive])
        return softmax(scores, axis=1)


def _selects_nothing(cols: Any) -> bool:
    """Whether a ColumnTransformer entry's resolved column list is empty."""
    if isinstance(cols, str | int | slice):
        return False
    try:
        return len(cols) == 0
    except TypeError:  # a callable or anything else unresolved: not known to be empty
        return False


def _compile_block(trans: Any, cols: Any, schema: FeatureSchema, start: int) -> _Block | None:
    """One ColumnTransformer entry as a block; None unless it is imputer + scaler/one-hot."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cols = [cols] if isinstance(cols, str) else list(cols)
    if not all(isinstance(c, str) and c in schema.index for c in cols):
        return None
    positions = np.array([schema.index[c] for c in cols], dtype=np.intp)
    steps = [s for _, s in trans.steps] if type(trans) is Pipeline else [trans]
    if len(steps) != 2 or type(steps[0]) is not SimpleImputer or steps[0].add_indicator:
        return None
    fill = np.asarray(steps[0].statistics_, dtype=object)
    if len(fill) != len(cols) or any(isinstance(v, float) and not np.isfinite(v) for v in fill):
        return None
    if type(steps[1]) is StandardScaler:
        if any(schema.feature(c).kind != NUMERIC for c in cols):
            return None
        return _scaled_block(steps[1], positions, fill, start)
    if type(steps[1]) is OneHotEncoder:
        return _one_hot_block(steps[1], positions, fill, start)
    return None


def _scaled_block(scaler: Any, positions: np.ndarray, fill: np.ndarray, start: int) -> _ScaledBlock:
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None
    return _ScaledBlock(positions, fill.astype(np.float64), mean, scale, start)


def _one_hot_block(
    encoder: Any, positions: np.ndarray, fill: np.ndarray, start: int
) -> _OneHotBlock | None:
    if (
        encoder.drop_idx_ is not None
        or encoder.handle_unknown != "ignore"
        or getattr(encoder, "_infrequent_enabled", False)
    ):
        return None
    lookups = tuple({value: i for i, value in enumerate(c.tolist())} for c in encoder.categories_)
    if any(not all(isinstance(v, str) for v in lookup) for lookup in lookups):
        return None
    return _OneHotBlock(positions, fill, lookups, start)
