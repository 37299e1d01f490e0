"""Data drift check that reproduces Evidently 0.7's ``DataDriftPreset`` verdicts, fast.

Evidently's preset (``DataDriftPreset`` with default per-column stattests and
thresholds) picks a test per column from the column type, the number of
reference rows and the number of distinct values (see
``evidently/legacy/calculations/stattests/registry.py::_get_default_stattest``):

  ref rows*  type         distinct**  test (drift when ...)
  ---------  -----------  ----------  ----------------------------------------
  <= 1000    numeric      <= 2        Z-test p_value (p < 0.05)
  <= 1000    numeric      3..5        chi-square p_value (p < 0.05)
  <= 1000    numeric      > 5         K-S p_value (p <= 0.05)
  <= 1000    categorical  <= 2        Z-test p_value (p < 0.05)
  <= 1000    categorical  > 2         chi-square p_value (p < 0.05)
  > 1000     numeric      <= 5        Jensen-Shannon distance (d >= 0.1)
  > 1000     numeric      > 5         Wasserstein distance (normed) (d >= 0.1)
  > 1000     categorical  any         Jensen-Shannon distance (d >= 0.1)

  * reference rows left after dropping NaN and +/-inf from the column
    (Evidently does ``replace([-inf, inf], nan).dropna()`` per column first).
  ** distinct non-missing values of reference and current together.

The dataset is drifted when ``drifted columns / columns >= drift_share`` (0.5).

The column kinds are not re-inferred here: they come from the model's feature
schema (``metadata.json``, :class:`mlops.model.schema.FeatureSchema`), and both
frames are compared as model input (:func:`mlops.model.schema.coerce_column`),
so the drift check sees what the model sees. Only without a model are the kinds
inferred, once, from the reference (:func:`drift_schema`).

This module computes exactly those statistics with numpy/scipy on the full data.
The only expensive one on big data is the normed Wasserstein distance; it is
computed with the same arithmetic as ``scipy.stats.wasserstein_distance``
(``sum(|U(x_i) - V(x_i)| * (x_{i+1} - x_i))`` over the merged sorted values) but
with ``np.sort`` + a linear merge instead of scipy's argsort + mergesort +
two binary searches, and columns are processed on two threads (numpy releases
the GIL while sorting). The result is bit-for-bit what scipy returns.

:func:`mlops.monitoring.evidently_reference.evidently_drift` runs the real preset
(the reference this module is checked against in tests and the benchmark) and
:func:`mlops.monitoring.report.render_report_html` renders Evidently's HTML report
from a bounded sample.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops.core.errors import DataError
from mlops.model.schema import CATEGORICAL, Feature, FeatureSchema, coerce_column

logger = logging.getLogger(__name__)
# scipy.stats and scipy.spatial are imported by the tests that use them: they take
# ~1 s to import, and big numeric data (Wasserstein) needs neither.

# Evidently display names (``StatTest.display_name``) -- also what ``evidently_drift`` parses.
KS = "K-S p_value"
Z_TEST = "Z-test p_value"
CHI_SQUARE = "chi-square p_value"
WASSERSTEIN = "Wasserstein distance (normed)"
JENSEN_SHANNON = "Jensen-Shannon distance"

_THRESHOLDS = {KS: 0.05, Z_TEST: 0.05, CHI_SQUARE: 0.05, WASSERSTEIN: 0.1, JENSEN_SHANNON: 0.1}
_SMALL_DATA_ROWS = 1000  # Evidently: reference rows <= 1000 -> p-value tests

# scipy >= 1.15 sums with np.vecdot on numpy 2, with np.sum(x * y) before: same here.
_vecdot = getattr(np, "vecdot", None) or (lambda x, y: np.sum(x * y))


@dataclass
class ColumnDrift:
    """The verdict for one column.

    Attributes:
        name: Column name.
        drifted: Whether the column drifted (``score`` compared with ``threshold``).
        score: p-value (K-S, Z-test, chi-square) or distance (Wasserstein, Jensen-Shannon).
        method: Evidently display name of the test, e.g. ``KS`` or ``WASSERSTEIN``.
        threshold: The threshold ``score`` is compared with.
    """

    name: str
    drifted: bool
    score: float
    method: str
    threshold: float


@dataclass
class DriftResult:
    """The dataset verdict and the per-column verdicts of one drift check.

    Attributes:
        drift_detected: ``drift_share >= share_threshold``.
        drift_share: Drifted columns / checked columns.
        drifted_columns: Names of the drifted columns, in column order.
        columns: Column name -> its verdict, for every checked column.
        n_reference: Rows of the reference frame.
        n_current: Rows of the current frame.
        share_threshold: The drifted-column share meaning dataset drift.
    """

    drift_detected: bool
    drift_share: float
    drifted_columns: list[str]
    columns: dict[str, ColumnDrift]
    n_reference: int
    n_current: int
    share_threshold: float

    @classmethod
    def from_columns(
        cls,
        per_column: dict[str, ColumnDrift],
        n_reference: int,
        n_current: int,
        share_threshold: float,
    ) -> DriftResult:
        """The dataset verdict of per-column verdicts: drifted when their share reaches the threshold."""
        drifted = [n for n, c in per_column.items() if c.drifted]
        share = len(drifted) / len(per_column)
        return cls(
            drift_detected=bool(share >= share_threshold),
            drift_share=share,
            drifted_columns=drifted,
            columns=per_column,
            n_reference=n_reference,
            n_current=n_current,
            share_threshold=share_threshold,
        )

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-able data (per-column verdicts under ``columns``)."""
        return {
            "drift_detected": self.drift_detected,
            "drift_share": self.drift_share,
            "share_threshold": self.share_threshold,
            "drifted_columns": list(self.drifted_columns),
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "columns": {
                name: {
                    "drifted": c.drifted,
                    "score": c.score,
                    "method": c.method,
                    "threshold": c.threshold,
                }
                for name, c in self.columns.items()
            },
        }


# --------------------------------------------------------------------------- inputs


def check_frames(reference: pd.DataFrame, current: pd.DataFrame, min_rows: int) -> None:
    """Both frames are DataFrames, neither is empty, and current has at least ``min_rows`` rows.

    Raises:
        DataError: naming the problem.
    """
    for label, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"{label} data must be a pandas DataFrame, got {type(frame).__name__}")
    if len(reference) == 0:
        raise DataError("reference data is empty: nothing to compare against")
    if len(current) == 0:
        raise DataError("current data is empty: no rows to check for drift")
    if len(current) < min_rows:
        raise DataError(
            f"current data has {len(current)} rows, fewer than min_rows={min_rows}; "
            "too few rows for a meaningful drift check"
        )


def _select_columns(
    reference: pd.DataFrame, current: pd.DataFrame, columns: Iterable[str] | str | None
) -> list[str]:
    cur = set(current.columns)
    if columns is None:
        selected = [c for c in reference.columns if c in cur]
    else:
        if isinstance(columns, str):
            columns = [columns]
        ref = set(reference.columns)
        selected = [c for c in dict.fromkeys(columns) if c in ref and c in cur]
        missing = [c for c in columns if c not in selected]
        if missing and selected:
            logger.warning("drift: ignoring columns not present in both frames: %s", missing)
    if not selected:
        wanted = "" if columns is None else f" (requested: {list(columns)})"
        raise DataError(
            "reference and current data have no columns in common to check for drift"
            f"{wanted}; reference has {list(reference.columns)[:20]}, "
            f"current has {list(current.columns)[:20]}"
        )
    return selected


def drift_schema(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    schema: FeatureSchema | None = None,
) -> FeatureSchema:
    """The columns to compare and their kinds, decided once.

    Args:
        reference: Reference data.
        current: Current data.
        columns: Only these columns (default: all the candidates).
        categorical: Without ``schema``: columns that are categorical whatever their dtype.
        schema: The model's feature schema: its features present in both frames are
            compared, with the kinds it records (nothing is re-inferred).

    Returns:
        With ``schema``: its features present in both frames (and in ``columns``).
        Without: the columns both frames share (and in ``columns``), kinds inferred
        from the reference by :meth:`FeatureSchema.from_frame` (bool and
        non-numeric columns, and the ``categorical`` ones, are categorical).

    Raises:
        DataError: No column to compare.
        ValueError: Both ``schema`` and ``categorical`` are given.
    """
    if schema is None:
        cols = _select_columns(reference, current, columns)
        # reference[cols] copies every column: only subset when some are left out.
        shared = reference if list(reference.columns) == cols else reference[cols]
        return FeatureSchema.from_frame(shared, categorical=categorical)
    if categorical:
        raise ValueError("give the kinds either as a schema or as categorical columns, not both")
    wanted = schema.names if columns is None else [c for c in columns if c in schema.name_set]
    return schema.select(_select_columns(reference, current, wanted))


# --------------------------------------------------------------------------- stattests


def _model_input(feature: Feature, s: pd.Series, label: str) -> np.ndarray:
    """The column as the model sees it (:func:`coerce_column`)."""
    try:
        return coerce_column(feature, s)
    except (TypeError, ValueError) as exc:
        raise DataError(f"column {feature.name!r} in {label} data is not numeric: {exc}") from exc


def _clean_numeric(feature: Feature, s: pd.Series, label: str) -> np.ndarray:
    a = _model_input(feature, s, label)
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise DataError(f"column {feature.name!r} has no finite values in the {label} data")
    return a


def _clean_categories(feature: Feature, s: pd.Series, label: str) -> pd.Series:
    values = pd.Series(_model_input(feature, s, label), dtype=object).dropna()
    if values.empty:
        raise DataError(f"column {feature.name!r} has no non-missing values in the {label} data")
    return values


def _sorted_keys(keys: Sequence[Any]) -> list[Any]:
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=str)


def _counts(ref: pd.Series, cur: pd.Series) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Per-value counts of ref and cur over the union of their values (NaN excluded)."""
    rc = ref.value_counts(sort=False, dropna=True)
    cc = cur.value_counts(sort=False, dropna=True)
    # only values that occur (a pandas "category" dtype also counts unused categories as 0)
    rc, cc = rc[rc > 0], cc[cc > 0]
    keys = _sorted_keys(list(set(rc.index) | set(cc.index)))
    r = np.array([rc.get(k, 0) for k in keys], dtype=np.float64)
    c = np.array([cc.get(k, 0) for k in keys], dtype=np.float64)
    return keys, r, c


def _z_test(ref: pd.Series, cur: pd.Series) -> float:
    # evidently.legacy.calculations.stattests.z_stattest._z_stat_test
    from scipy import stats

    r_u, c_u = ref.unique(), cur.unique()
    if len(r_u) == 1 and len(c_u) == 1 and r_u[0] == c_u[0]:
        return 1.0
    key = _sorted_keys(list(set(r_u) | set(c_u)))[0]
    n1, n2 = len(ref), len(cur)
    p1 = float(int((ref != key).sum())) / n1
    p2 = float(int((cur != key).sum())) / n2
    p = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(p * (1 - p) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def _chi_square(ref: pd.Series, cur: pd.Series) -> float:
    # evidently.legacy.calculations.stattests.chisquare_stattest._chi_stat_test
    from scipy import stats

    _, r, c = _counts(ref, cur)
    k_norm = len(cur) / len(ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(list(c), [x * k_norm for x in r])[1])


def _jensen_shannon(ref: pd.Series, cur: pd.Series) -> float:
    # evidently ..._jensenshannon with get_binned_data(..., feel_zeroes=False); with the
    # default stattest choice only the "value counts" branch is reachable (numeric JS is
    # only chosen for <= 5 distinct values, the histogram branch needs > 20).
    _, r, c = _counts(ref, cur)
    return _jensenshannon(r / len(ref), c / len(cur))


def _jensenshannon(p: np.ndarray, q: np.ndarray) -> float:
    """``scipy.spatial.distance.jensenshannon(p, q)`` (natural log), its very operations.

    Importing ``scipy.spatial`` takes about twice as long as ``scipy.special``, and
    every ``mlops drift`` with a column of few values paid it.
    """
    from scipy.special import rel_entr

    p = p / np.sum(p, axis=0, keepdims=True)
    q = q / np.sum(q, axis=0, keepdims=True)
    m = (p + q) / 2.0
    js = np.sum(rel_entr(p, m), axis=0) + np.sum(rel_entr(q, m), axis=0)
    return float(np.sqrt(js / 2.0))


def _wasserstein_sorted(su: np.ndarray, sv: np.ndarray) -> float:
    """``scipy.stats.wasserstein_distance(u, v)`` from the sorted samples, same arithmetic.

    scipy: ``sum(|U(x_i) - V(x_i)| * (x_{i+1} - x_i))`` over the merged sorted values,
    with ``U(x_i) = #{u <= x_i} / n_u`` found by binary search. Here the merge is a
    stable argsort of two sorted runs (linear) and ``#{u <= x_i}`` a running count;
    inside a run of tied values the running count can be lower than scipy's, but
    there ``x_{i+1} - x_i == 0`` so those terms are 0 in both -- the summed terms are
    identical, hence the identical float result.
    """
    merged = np.concatenate((su, sv))
    order = np.argsort(merged, kind="stable")
    all_values = merged[order]
    del merged
    u_count = np.cumsum(order < su.size)[:-1]
    del order
    v_count = np.arange(1, all_values.size, dtype=np.int64)
    v_count -= u_count
    deltas = np.diff(all_values)
    del all_values
    return float(_vecdot(np.abs(u_count / su.size - v_count / sv.size), deltas))


def _numeric_drift(feature: Feature, ref_s: pd.Series, cur_s: pd.Series) -> tuple[str, float]:
    ref = _clean_numeric(feature, ref_s, "reference")
    cur = _clean_numeric(feature, cur_s, "current")
    if ref.size <= _SMALL_DATA_ROWS:
        n_values = np.unique(np.concatenate((ref, cur))).size
        if n_values <= 2:
            return Z_TEST, _z_test(pd.Series(ref), pd.Series(cur))
        if n_values <= 5:
            return CHI_SQUARE, _chi_square(pd.Series(ref), pd.Series(cur))
        from scipy import stats

        return KS, float(stats.ks_2samp(ref, cur)[1])
    su = np.sort(ref)
    sv = np.sort(cur)
    n_values = _n_unique_sorted_pair(su, sv, stop_after=5)
    if n_values <= 5:
        return JENSEN_SHANNON, _jensen_shannon(pd.Series(ref), pd.Series(cur))
    # evidently: norm = max(float(np.std(reference_data)), 0.001) on the pandas Series
    norm = max(float(np.std(pd.Series(ref))), 0.001)
    return WASSERSTEIN, _wasserstein_sorted(su, sv) / norm


def _n_unique_sorted_pair(su: np.ndarray, sv: np.ndarray, stop_after: int) -> int:
    """Distinct values in two sorted arrays together (exact when <= stop_after)."""
    nu = 1 + int(np.count_nonzero(su[1:] != su[:-1]))
    if nu > stop_after:
        return nu
    return np.unique(np.concatenate((np.unique(su), np.unique(sv)))).size


def _categorical_drift(feature: Feature, ref_s: pd.Series, cur_s: pd.Series) -> tuple[str, float]:
    ref = _clean_categories(feature, ref_s, "reference")
    cur = _clean_categories(feature, cur_s, "current")
    if len(ref) <= _SMALL_DATA_ROWS:
        n_values = pd.concat([ref, cur]).nunique()
        if n_values > 2:
            return CHI_SQUARE, _chi_square(ref, cur)
        return Z_TEST, _z_test(ref, cur)
    return JENSEN_SHANNON, _jensen_shannon(ref, cur)


def is_drifted(method: str, score: float, threshold: float) -> bool:
    """Evidently's verdict: p-values drift below the threshold (K-S: at it), distances at or above."""
    if method == KS:
        return bool(score <= threshold)
    if method in (Z_TEST, CHI_SQUARE):
        return bool(score < threshold)
    return bool(score >= threshold)  # distances


def _one_column(feature: Feature, ref: pd.Series, cur: pd.Series) -> ColumnDrift:
    test = _categorical_drift if feature.kind == CATEGORICAL else _numeric_drift
    method, score = test(feature, ref, cur)
    threshold = _THRESHOLDS[method]
    return ColumnDrift(
        name=feature.name,
        drifted=is_drifted(method, score, threshold),
        score=float(score),
        method=method,
        threshold=threshold,
    )


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    drift_share_threshold: float = 0.5,
    min_rows: int = 30,
    workers: int = 2,
    *,
    schema: FeatureSchema | None = None,
) -> DriftResult:
    """Per-column drift verdicts identical to Evidently's ``DataDriftPreset``, on the full data.

    Only columns present in both frames (and in ``columns`` when given) are checked;
    other columns (targets, timestamps, ids) are ignored. The kinds come from
    ``schema`` (a model's, from its ``metadata.json``); without one they are
    inferred once from the reference (:func:`drift_schema`; ``categorical`` names
    columns that are categorical whatever their dtype).

    Raises:
        DataError: The frames share no column, ``current`` is empty or has fewer
            than ``min_rows`` rows, or a column has no usable value on one side
            (or a numeric one holds non-numbers).
    """
    check_frames(reference, current, min_rows)
    if not 0.0 <= drift_share_threshold <= 1.0:
        raise DataError(f"drift_share_threshold must be within [0, 1], got {drift_share_threshold}")
    schema = drift_schema(reference, current, columns, categorical, schema)

    def run(feature: Feature) -> ColumnDrift:
        return _one_column(feature, reference[feature.name], current[feature.name])

    # Columns are coerced one at a time inside run(): memory stays at one column per worker.
    if workers > 1 and len(schema) > 1 and len(reference) + len(current) > 200_000:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(run, schema.features))
    else:
        results = [run(f) for f in schema.features]
    return DriftResult.from_columns(
        {r.name: r for r in results}, len(reference), len(current), drift_share_threshold
    )


__all__ = [
    "CHI_SQUARE",
    "JENSEN_SHANNON",
    "KS",
    "WASSERSTEIN",
    "Z_TEST",
    "ColumnDrift",
    "DriftResult",
    "check_frames",
    "compute_drift",
    "drift_schema",
    "is_drifted",
]
