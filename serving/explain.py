"""Per-feature attributions for ``POST /v1/models/<name>:explain``.

Three deterministic methods, named in every response's ``method`` field:

* ``linear`` -- for a linear estimator (``coef_``: logistic regression and the
  like) behind the ColumnTransformer: the exact decomposition of the predicted
  class's decision function. With ``z`` the transformed row and ``mu`` the mean
  of the transformed reference sample, each transformed column contributes
  ``coef[c] * (z - mu)``; one-hot columns are summed back into their original
  categorical feature. ``base_value + sum(attributions)`` equals the decision
  value (logit) of the predicted class (for a binary model, the log-odds of the
  predicted class: class 0 uses ``-coef``).
* ``tree_shap`` -- for tree ensembles (random forest, gradient boosting): SHAP
  values from ``shap.TreeExplainer`` (exact TreeSHAP, path-dependent, so no
  background sample is needed) on the transformed row, summed back per input
  feature. ``base_value + sum(attributions)`` equals the model output for the
  predicted class: its probability for a random forest, its log-odds (binary)
  or raw score (multiclass) for gradient boosting.
* ``occlusion`` -- any other model, or when shap is unavailable: each feature in
  turn is replaced by its reference value (median of the reference sample for
  numeric features, most frequent category for categorical ones; the model's
  own imputation of a missing value when no reference sample exists) and the
  attribution is the drop in the predicted class's probability:
  ``p(x)[c] - p(x with feature j replaced)[c]``. One batched ``predict_proba``
  call of ``rows x features`` rows.

The caller bounds the rows (:mod:`serving.limits`) and passes the probabilities it
scored with its finiteness checks (:mod:`serving.scoring`); an explanation whose
numbers are not finite (the request's values overflow the model's arithmetic) is a
400 naming the row, never a 200 with ``null`` or a 500.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from kserve.errors import InvalidInput

from mlops.model.schema import NUMERIC, FeatureSchema, coerce
from serving.scoring import not_finite_reason

logger = logging.getLogger(__name__)

LINEAR_DESCRIPTION = (
    "exact linear decomposition of the predicted class's decision value (logit): "
    "coef * (x_transformed - reference_mean), summed per input feature; "
    "base_value + sum(attributions) = decision value"
)
TREE_SHAP_DESCRIPTION = (
    "TreeSHAP (shap.TreeExplainer, path-dependent): exact Shapley values of the tree "
    "ensemble's output for the predicted class (probability for random forests, "
    "log-odds or raw score for gradient boosting), one-hot columns summed per input "
    "feature; base_value + sum(attributions) = model output"
)
OCCLUSION_DESCRIPTION = (
    "occlusion: drop in the predicted class's probability when the feature is "
    "replaced by its reference value (numeric median / categorical mode)"
)


def _json_value(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _check_finite(frame: pd.DataFrame, attributions: np.ndarray, base: np.ndarray) -> None:
    """Refuses rows whose attributions or base value overflowed (JSON would say null)."""
    finite = np.isfinite(attributions).all(axis=1) & np.isfinite(base)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise InvalidInput(f"row {row}: {not_finite_reason(frame, row, 'attributions')}")


def _dense(matrix) -> np.ndarray:
    return np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, dtype=np.float64)


class Explainer:
    """Explains one loaded model; built once at load time."""

    def __init__(self, model, schema: FeatureSchema, reference: pd.DataFrame | None = None) -> None:
        self.model = model
        self.schema = schema
        self.classes = list(model.classes_)
        self._linear = self._linear_parts(reference)
        self._tree = self._tree_parts() if self._linear is None else None
        self.method = (
            "linear"
            if self._linear is not None
            else "tree_shap"
            if self._tree is not None
            else "occlusion"
        )
        self._baseline: dict[str, Any] | None = None
        self._baseline_frame: pd.DataFrame | None = None
        if self.method == "occlusion":
            # Built once here, not per explain request: the occlusion values and the
            # one-row frame scored for base_value.
            self._baseline = self._baseline_row(reference)
            self._baseline_frame = coerce(
                pd.DataFrame({name: [value] for name, value in self._baseline.items()}), schema
            )

    # -- setup --------------------------------------------------------------------
    def _linear_parts(self, reference: pd.DataFrame | None):
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        if not isinstance(self.model, Pipeline) or len(self.model.steps) < 2:
            return None
        estimator = self.model[-1]
        coef = getattr(estimator, "coef_", None)
        intercept = getattr(estimator, "intercept_", None)
        if coef is None or intercept is None or not hasattr(estimator, "predict_proba"):
            return None
        pre = self.model[:-1]
        columns = [step for _, step in pre.steps if isinstance(step, ColumnTransformer)]
        if len(pre.steps) != 1 or len(columns) != 1:
            return None
        mapping = self._column_mapping(columns[0], np.asarray(coef).shape[1])
        if mapping is None:
            logger.info("explain: cannot map transformed columns back to features; using occlusion")
            return None
        if reference is not None and len(reference):
            try:
                mean = _dense(
                    pre.transform(coerce(reference, self.schema, source="reference sample"))
                ).mean(axis=0)
            except Exception as exc:  # reference incompatible with the model
                logger.warning("explain: reference sample unusable (%s); centring on zero", exc)
                mean = np.zeros(mapping.shape[0])
        else:
            mean = np.zeros(mapping.shape[0])
        return (
            pre,
            np.asarray(coef, dtype=np.float64),
            np.asarray(intercept, dtype=np.float64),
            mean,
            mapping,
        )

    def _tree_parts(self):
        """(preprocessing, shap.TreeExplainer, column mapping) for a tree ensemble, else None."""
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        if not isinstance(self.model, Pipeline) or len(self.model.steps) != 2:
            return None
        pre, estimator = self.model[:-1], self.model[-1]
        if not isinstance(pre[0], ColumnTransformer):
            return None
        if not (hasattr(estimator, "estimators_") or hasattr(estimator, "tree_")):
            return None
        n_out = sum(i.stop - i.start for i in pre[0].output_indices_.values())
        mapping = self._column_mapping(pre[0], n_out)
        if mapping is None:
            return None
        try:
            import shap

            explainer = shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
        except Exception as exc:  # shap missing, or a tree model it does not support
            logger.info("explain: TreeSHAP unavailable (%s); using occlusion", exc)
            return None
        return pre, explainer, mapping

    def _column_mapping(self, transformer, n_out: int) -> np.ndarray | None:
        """0/1 matrix [transformed columns, input features]; None when the layout is unknown."""
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder

        mapping = np.zeros((n_out, len(self.schema)))
        covered = 0
        for name, trans, cols in transformer.transformers_:
            indices = transformer.output_indices_.get(name)
            if indices is None or trans == "drop":
                continue
            width = indices.stop - indices.start
            if width == 0:
                continue
            cols = [cols] if isinstance(cols, str) else list(cols)
            try:
                features = [
                    self.schema.index[str(c)] if not isinstance(c, (int, np.integer)) else int(c)
                    for c in cols
                ]
            except KeyError:
                return None
            if width == len(features):
                for offset, feature in enumerate(features):
                    mapping[indices.start + offset, feature] = 1
                covered += width
                continue
            encoder = trans[-1] if isinstance(trans, Pipeline) else trans
            if not isinstance(encoder, OneHotEncoder):
                return None
            sizes = getattr(encoder, "_n_features_outs", None) or [
                len(c) for c in encoder.categories_
            ]
            if sum(sizes) != width or len(sizes) != len(features):
                return None
            start = indices.start
            for size, feature in zip(sizes, features, strict=True):
                mapping[start : start + size, feature] = 1
                start += size
            covered += width
        return mapping if covered == n_out else None

    def _baseline_row(self, reference: pd.DataFrame | None) -> dict[str, Any]:
        baseline: dict[str, Any] = {}
        usable = (
            reference is not None
            and len(reference)
            and set(self.schema.names) <= set(reference.columns)
        )
        frame = coerce(reference, self.schema, source="reference sample") if usable else None
        for feature in self.schema.features:
            value: Any = np.nan  # the model's imputer then uses its training median / mode
            if frame is not None:
                column = frame[feature.name].dropna()
                if len(column):
                    value = (
                        float(column.median()) if feature.kind == NUMERIC else column.mode().iloc[0]
                    )
            baseline[feature.name] = value
        return baseline

    # -- explaining -------------------------------------------------------------
    def explain(self, frame: pd.DataFrame, proba: np.ndarray | None = None) -> dict[str, Any]:
        """Attributions of each validated row, in schema order.

        Args:
            frame: The validated request rows.
            proba: Their class probabilities, when the caller scored them already.

        Raises:
            InvalidInput: The attributions of a row are not finite.
        """
        if proba is None:
            proba = self.model.predict_proba(frame)
        predicted = proba.argmax(axis=1)
        if self._linear is not None:
            attributions, base = self._explain_linear(self._linear, frame, predicted)
            description = LINEAR_DESCRIPTION
        elif self._tree is not None:
            attributions, base = self._explain_tree(self._tree, frame, predicted)
            description = TREE_SHAP_DESCRIPTION
        else:
            attributions, base = self._explain_occlusion(frame, proba, predicted)
            description = OCCLUSION_DESCRIPTION
        _check_finite(frame, attributions, base)
        explanations = []
        records = frame.to_dict("records")
        for i, row in enumerate(records):
            explanations.append(
                {
                    "prediction": _json_value(self.classes[predicted[i]]),
                    "probability": float(proba[i, predicted[i]]),
                    "base_value": float(base[i]),
                    "attributions": [
                        {
                            "feature": name,
                            "value": _json_value(row[name]),
                            "attribution": float(attributions[i, j]),
                        }
                        for j, name in enumerate(self.schema.names)
                    ],
                }
            )
        return {
            "method": self.method,
            "method_description": description,
            "feature_names": list(self.schema.names),
            "explanations": explanations,
        }

    @staticmethod
    def _explain_linear(parts: tuple, frame: pd.DataFrame, predicted: np.ndarray):
        pre, coef, intercept, mean, mapping = parts
        z = _dense(pre.transform(frame)) - mean
        if coef.shape[0] == 1:  # binary: one row of coefficients for classes_[1]
            sign = np.where(predicted == 1, 1.0, -1.0)
            weights = coef[0][None, :] * sign[:, None]
            base = sign * (intercept[0] + coef[0] @ mean)
        else:
            weights = coef[predicted]
            base = intercept[predicted] + coef[predicted] @ mean
        return (z * weights) @ mapping, base

    @staticmethod
    def _explain_tree(parts: tuple, frame: pd.DataFrame, predicted: np.ndarray):
        pre, explainer, mapping = parts
        values = np.asarray(
            explainer.shap_values(_dense(pre.transform(frame)), check_additivity=False)
        )
        expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
        rows = np.arange(len(frame))
        if values.ndim == 2:  # one output (binary gradient boosting): log-odds of classes_[1]
            sign = np.where(predicted == 1, 1.0, -1.0)
            return (values * sign[:, None]) @ mapping, sign * expected[0]
        return values[rows, :, predicted] @ mapping, expected[predicted]

    def _explain_occlusion(self, frame: pd.DataFrame, proba: np.ndarray, predicted: np.ndarray):
        baseline, baseline_frame = self._baseline, self._baseline_frame
        if baseline is None or baseline_frame is None:  # built in __init__ for occlusion
            raise RuntimeError("occlusion explainer has no baseline")
        n, d = len(frame), len(self.schema)
        repeated = frame.loc[frame.index.repeat(d)].reset_index(drop=True)
        for j, feature in enumerate(self.schema.features):
            position = repeated.columns.get_loc(feature.name)
            repeated.iloc[j::d, position] = baseline[feature.name]
        scored = self.model.predict_proba(pd.concat([repeated, baseline_frame], ignore_index=True))
        occluded = scored[:-1].reshape(n, d, -1)
        rows = np.arange(n)
        chosen = proba[rows, predicted]
        attributions = chosen[:, None] - occluded[rows, :, predicted]
        # base_value: the predicted class's probability with every feature at its reference value
        return attributions, scored[-1][predicted]
