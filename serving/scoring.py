"""Class probabilities of a validated frame, and the finiteness checks the server owes the model.

Request values are finite when :mod:`serving.validation` accepts them, but a
finite value can still overflow on its way through the model: ``1e306`` scaled
by a standard deviation below one is infinite, tree ensembles compute in
float32 (largest 3.4e38), and a linear model's sum of large products overflows
to infinity, then to NaN in the softmax. scikit-learn would catch the first two
(with a ValueError, a 500), but the server skips its input checks because they
cost more than the model on small requests, and nothing catches the third: the
answer was a 200 with ``null`` probabilities.

So every endpoint checks, at the points where it can go wrong, and answers a
400 naming the feature, the row and the value:

* after the model's preprocessing (:func:`check_transformed`): finite, and within
  float32 range for estimators that compute in float32 (:func:`computes_in_float32`);
* the probabilities (:func:`check_probabilities`) and, in :mod:`serving.explain`,
  the attributions.

:class:`PipelineScorer` is the plain pipeline split at its last step so the
transformed matrix can be checked; :class:`serving.fast_path.FastPath` does the
same checks on its own matrix. Both cost a vectorised pass over numbers already
in memory: microseconds on the request path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from kserve.errors import InvalidInput

FLOAT32_MAX = float(np.finfo(np.float32).max)
_ADVICE = "the model cannot score it: send values of the magnitude it was trained on"


def computes_in_float32(estimator: Any) -> bool:
    """Whether ``estimator`` converts its input to float32 (scikit-learn's trees and their ensembles)."""
    return hasattr(estimator, "tree_") or hasattr(estimator, "estimators_")


def in_range(matrix: np.ndarray, float32: bool) -> bool:
    """All finite (and within float32 range when ``float32``); NaN is never in range.

    A quick test for the request path, which may answer False for finite values
    whose sum overflows: :func:`check_transformed` then checks each value exactly.
    """
    if float32:
        return bool(np.abs(matrix).max(initial=0.0) <= FLOAT32_MAX)  # NaN: False
    return math.isfinite(matrix.sum())  # one reduction; NaN or infinity anywhere: not finite


def check_transformed(
    matrix: Any,
    frame: pd.DataFrame,
    column_features: Sequence[str | None],
    float32: bool,
) -> None:
    """Refuses rows the model's preprocessing turned into values the estimator cannot use.

    Args:
        matrix: The transformed rows (dense or scipy sparse), one column per model input.
        frame: The request frame they came from (for the message).
        column_features: Per transformed column, the request feature it comes from (None
            when unknown).
        float32: The estimator computes in float32.

    Raises:
        InvalidInput: Naming the feature, row and value of the first value out of range.
    """
    if hasattr(matrix, "tocoo"):  # sparse: only the stored values can be out of range
        coo = matrix.tocoo()
        if _in_range_mask(coo.data, float32).all():
            return
        bad = int(np.flatnonzero(~_in_range_mask(coo.data, float32))[0])
        row, column, value = int(coo.row[bad]), int(coo.col[bad]), float(coo.data[bad])
    else:
        dense = np.asarray(matrix)
        if _in_range_mask(dense, float32).all():
            return
        row, column = (int(i) for i in np.argwhere(~_in_range_mask(dense, float32))[0])
        value = float(dense[row, column])
    raise overflow_error(frame, row, column_features[column], value, float32)


def _in_range_mask(values: np.ndarray, float32: bool) -> np.ndarray:
    if float32:
        return np.abs(values) <= FLOAT32_MAX
    return np.isfinite(values)


def overflow_error(
    frame: pd.DataFrame, row: int, feature: str | None, transformed: float, float32: bool
) -> InvalidInput:
    """The 400 for a transformed value out of range, naming the request value it came from."""
    if feature is not None and feature in frame.columns:
        where = f"feature {feature!r} row {row}: value {_number(frame[feature].iloc[row])}"
    else:
        where = f"row {row}: a value"
    if float32 and np.isfinite(transformed):
        reason = (
            f"is {transformed:g} after the model's preprocessing, beyond the float32 range "
            f"(+/-{FLOAT32_MAX:.3g}) the model computes in, where it is not finite"
        )
    else:
        reason = "overflows to infinity (not finite) in the model's preprocessing"
    return InvalidInput(f"{where} {reason}; {_ADVICE}")


def check_probabilities(proba: np.ndarray, frame: pd.DataFrame) -> None:
    """Refuses a frame whose class probabilities are not finite (a 200 with null otherwise).

    Raises:
        InvalidInput: Naming the first such row and its largest numeric value.
    """
    if math.isfinite(proba.sum()):  # probabilities are at most 1: their sum cannot overflow
        return
    row = int(np.flatnonzero(~np.isfinite(proba).all(axis=1))[0])
    raise InvalidInput(f"row {row}: {not_finite_reason(frame, row, 'probabilities')}")


def not_finite_reason(frame: pd.DataFrame, row: int, what: str) -> str:
    """Why a row's model output is not finite: its values overflow the model's arithmetic."""
    numbers = frame.iloc[row].map(
        lambda v: abs(v) if isinstance(v, (int, float, np.number)) and np.isfinite(v) else -1.0
    )
    largest = numbers.idxmax() if len(numbers) and numbers.max() >= 0 else None
    detail = (
        f" (largest: feature {largest!r} = {_number(frame[largest].iloc[row])})"
        if largest is not None
        else ""
    )
    return f"the model's {what} are not finite: the input values overflow its arithmetic{detail}; {_ADVICE}"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating)) else repr(value)


class PipelineScorer:
    """``model.predict_proba`` with the transformed matrix checked before the last step.

    For a scikit-learn ``Pipeline`` this is exactly what ``Pipeline.predict_proba``
    does (transform with every step but the last, then the last step's
    ``predict_proba``), split so :func:`check_transformed` sees the matrix. Any other
    model is called as is; its probabilities are still checked by the caller.

    Args:
        model: The fitted model.
    """

    def __init__(self, model: Any) -> None:
        from sklearn.pipeline import Pipeline

        self.model = model
        split = isinstance(model, Pipeline) and len(model.steps) > 1
        self._pre = model[:-1] if split else None
        self._final = model[-1] if split else model
        self._float32 = computes_in_float32(self._final)
        self._columns: list[str | None] | None = None

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities of a validated frame.

        Raises:
            InvalidInput: A transformed value is out of the estimator's range.
        """
        if self._pre is None:
            return self.model.predict_proba(frame)
        transformed = self._pre.transform(frame)
        check_transformed(transformed, frame, self._column_features(transformed), self._float32)
        return self._final.predict_proba(transformed)

    def _column_features(self, transformed: Any) -> Sequence[str | None]:
        """Transformed column -> request feature, when the names say so (else None)."""
        if self._columns is None and self._pre is not None:
            names: list[str | None] = [None] * transformed.shape[1]
            try:
                out = [str(n) for n in self._pre.get_feature_names_out()]
                features = set(getattr(self._pre, "feature_names_in_", []))
                # ColumnTransformer names are "<transformer>__<feature>[_<category>]".
                names = [
                    next((f for f in features if n.split("__", 1)[-1] == f), None) for n in out
                ]
            except Exception:  # names are a nicety for the message, never a failure
                pass
            self._columns = names
        return self._columns or [None] * transformed.shape[1]
