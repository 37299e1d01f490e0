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

This module computes exactly those statistics with numpy/scipy on the full data.
The only expensive one on big data is the normed Wasserstein distance; it is
computed with the same arithmetic as ``scipy.stats.wasserstein_distance``
(``sum(|U(x_i) - V(x_i)| * (x_{i+1} - x_i))`` over the merged sorted values) but
with ``np.sort`` + a linear merge instead of scipy's argsort + mergesort +
two binary searches, and columns are processed on two threads (numpy releases
the GIL while sorting). The result is bit-for-bit what scipy returns.

``evidently_drift`` runs the real preset (used for verification and the
benchmark) and ``render_report_html`` renders Evidently's HTML report from a
bounded sample.
"""

from __future__ import annotations

import html
import logging
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from mlops.core.errors import DataError

log = logging.getLogger(__name__)

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

    def to_dict(self) -> dict[str, Any]:
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


def _check_frames(reference: pd.DataFrame, current: pd.DataFrame, min_rows: int) -> None:
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
    reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str] | None
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
            log.warning("drift: ignoring columns not present in both frames: %s", missing)
    if not selected:
        wanted = "" if columns is None else f" (requested: {list(columns)})"
        raise DataError(
            "reference and current data have no columns in common to check for drift"
            f"{wanted}; reference has {list(reference.columns)[:20]}, "
            f"current has {list(current.columns)[:20]}"
        )
    return selected


def _is_categorical_dtype(ref: pd.Series, cur: pd.Series) -> bool:
    for s in (ref, cur):
        dt = s.dtype
        if pd.api.types.is_bool_dtype(dt) or not pd.api.types.is_numeric_dtype(dt):
            return True
    return False


def _column_kinds(
    reference: pd.DataFrame, current: pd.DataFrame, cols: list[str], categorical: Sequence[str]
) -> dict[str, bool]:
    """name -> True when the column is treated as categorical.

    Declared ``categorical`` columns plus every non-numeric (object, string,
    category) or bool column; the rest are numeric. ``evidently_drift`` passes
    the same split to Evidently as an explicit ``DataDefinition``.
    """
    cat = set([categorical] if isinstance(categorical, str) else categorical)
    return {c: (c in cat) or _is_categorical_dtype(reference[c], current[c]) for c in cols}


# --------------------------------------------------------------------------- stattests


def _clean_numeric(s: pd.Series, label: str, name: str) -> np.ndarray:
    try:
        a = s.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(f"column {name!r} in {label} data is not numeric: {exc}") from exc
    a = a[np.isfinite(a)]
    if a.size == 0:
        raise DataError(f"column {name!r} has no finite values in the {label} data")
    return a


def _clean_any(s: pd.Series, label: str, name: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        s = s.replace([-np.inf, np.inf], np.nan)
    s = s.dropna()
    if s.empty:
        raise DataError(f"column {name!r} has no non-missing values in the {label} data")
    return s


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
    _, r, c = _counts(ref, cur)
    k_norm = len(cur) / len(ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(list(c), [x * k_norm for x in r])[1])


def _jensen_shannon(ref: pd.Series, cur: pd.Series) -> float:
    # evidently ..._jensenshannon with get_binned_data(..., feel_zeroes=False); with the
    # default stattest choice only the "value counts" branch is reachable (numeric JS is
    # only chosen for <= 5 distinct values, the histogram branch needs > 20).
    _, r, c = _counts(ref, cur)
    return float(distance.jensenshannon(r / len(ref), c / len(cur)))


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


def _numeric_drift(name: str, ref_s: pd.Series, cur_s: pd.Series) -> tuple[str, float]:
    ref = _clean_numeric(ref_s, "reference", name)
    cur = _clean_numeric(cur_s, "current", name)
    if ref.size <= _SMALL_DATA_ROWS:
        n_values = np.unique(np.concatenate((ref, cur))).size
        if n_values <= 2:
            return Z_TEST, _z_test(pd.Series(ref), pd.Series(cur))
        if n_values <= 5:
            return CHI_SQUARE, _chi_square(pd.Series(ref), pd.Series(cur))
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


def _categorical_drift(name: str, ref_s: pd.Series, cur_s: pd.Series) -> tuple[str, float]:
    ref = _clean_any(ref_s, "reference", name)
    cur = _clean_any(cur_s, "current", name)
    if len(ref) <= _SMALL_DATA_ROWS:
        n_values = pd.concat([ref, cur]).nunique()
        if n_values > 2:
            return CHI_SQUARE, _chi_square(ref, cur)
        return Z_TEST, _z_test(ref, cur)
    return JENSEN_SHANNON, _jensen_shannon(ref, cur)


def _verdict(method: str, score: float, threshold: float) -> bool:
    if method == KS:
        return bool(score <= threshold)
    if method in (Z_TEST, CHI_SQUARE):
        return bool(score < threshold)
    return bool(score >= threshold)  # distances


def _one_column(name: str, ref: pd.Series, cur: pd.Series, is_cat: bool) -> ColumnDrift:
    method, score = (_categorical_drift if is_cat else _numeric_drift)(name, ref, cur)
    threshold = _THRESHOLDS[method]
    return ColumnDrift(
        name=name,
        drifted=_verdict(method, score, threshold),
        score=float(score),
        method=method,
        threshold=threshold,
    )


def _build_result(
    per_column: dict[str, ColumnDrift],
    n_reference: int,
    n_current: int,
    share_threshold: float,
) -> DriftResult:
    drifted = [n for n, c in per_column.items() if c.drifted]
    share = len(drifted) / len(per_column)
    return DriftResult(
        drift_detected=bool(share >= share_threshold),
        drift_share=share,
        drifted_columns=drifted,
        columns=per_column,
        n_reference=n_reference,
        n_current=n_current,
        share_threshold=share_threshold,
    )


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    drift_share_threshold: float = 0.5,
    min_rows: int = 30,
    workers: int = 2,
) -> DriftResult:
    """Per-column drift verdicts identical to Evidently's ``DataDriftPreset``, on the full data.

    Only columns present in both frames (and in ``columns`` when given) are checked;
    other columns (targets, timestamps, ids) are ignored. ``categorical`` names the
    categorical columns; non-numeric and bool columns are categorical too.

    Raises ``DataError`` when the frames share no column, ``current`` is empty or
    has fewer than ``min_rows`` rows, or a column has no finite value on one side.
    """
    _check_frames(reference, current, min_rows)
    if not 0.0 <= drift_share_threshold <= 1.0:
        raise DataError(f"drift_share_threshold must be within [0, 1], got {drift_share_threshold}")
    cols = _select_columns(reference, current, columns)
    kinds = _column_kinds(reference, current, cols, categorical)

    def run(name: str) -> ColumnDrift:
        return _one_column(name, reference[name], current[name], kinds[name])

    if workers > 1 and len(cols) > 1 and len(reference) + len(current) > 200_000:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(run, cols))
    else:
        results = [run(c) for c in cols]
    return _build_result(
        {r.name: r for r in results}, len(reference), len(current), drift_share_threshold
    )


# --------------------------------------------------------------------------- Evidently


def _evidently_inputs(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] | None,
    categorical: Sequence[str],
) -> tuple[list[str], Any, Any]:
    from evidently import DataDefinition, Dataset

    cols = _select_columns(reference, current, columns)
    kinds = _column_kinds(reference, current, cols, categorical)
    definition = DataDefinition(
        numerical_columns=[c for c in cols if not kinds[c]],
        categorical_columns=[c for c in cols if kinds[c]],
        text_columns=[],
        datetime_columns=[],
        unknown_columns=[],
        list_columns=[],
    )
    ref_ds = Dataset.from_pandas(reference[cols], data_definition=definition)
    cur_ds = Dataset.from_pandas(current[cols], data_definition=definition)
    return cols, ref_ds, cur_ds


def _run_evidently(cols: list[str], ref_ds: Any, cur_ds: Any, drift_share_threshold: float) -> Any:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    report = Report(
        [DataDriftPreset(columns=cols, drift_share=drift_share_threshold)], include_tests=True
    )
    return report.run(current_data=cur_ds, reference_data=ref_ds)


def evidently_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    drift_share_threshold: float = 0.5,
) -> DriftResult:
    """Run Evidently's ``DataDriftPreset`` (``include_tests=True``) and parse it into a ``DriftResult``."""
    _check_frames(reference, current, min_rows=1)
    cols, ref_ds, cur_ds = _evidently_inputs(reference, current, columns, categorical)
    snapshot = _run_evidently(cols, ref_ds, cur_ds, drift_share_threshold)
    data = snapshot.dict()

    values: dict[str, tuple[str, float, float]] = {}
    share = None
    for m in data["metrics"]:
        cfg = m.get("config", {})
        kind = cfg.get("type", "")
        if kind.endswith(":ValueDrift"):
            values[cfg["column"]] = (cfg["method"], float(m["value"]), float(cfg["threshold"]))
        elif kind.endswith(":DriftedColumnsCount"):
            share = float(m["value"]["share"])
    drifted_flags: dict[str, bool] = {}
    dataset_test_failed = None
    for t in data.get("tests", []):
        params = t.get("metric_config", {}).get("params", {})
        kind = params.get("type", "")
        if kind.endswith(":ValueDrift"):
            drifted_flags[params["column"]] = t["status"] == "FAIL"
        elif kind.endswith(":DriftedColumnsCount"):
            dataset_test_failed = t["status"] == "FAIL"

    per_column = {}
    for c in cols:
        method, score, threshold = values[c]
        per_column[c] = ColumnDrift(
            name=c,
            drifted=drifted_flags[c] if c in drifted_flags else _verdict(method, score, threshold),
            score=score,
            method=method,
            threshold=threshold,
        )
    result = _build_result(per_column, len(reference), len(current), drift_share_threshold)
    if share is not None and not math.isclose(share, result.drift_share):
        log.warning(
            "evidently drift share %s differs from per-column share %s", share, result.drift_share
        )
    if dataset_test_failed is not None:
        result.drift_detected = bool(dataset_test_failed)
    return result


# --------------------------------------------------------------------------- HTML report


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed).sort_index()


def _banner(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    ref_sample: pd.DataFrame,
    cur_sample: pd.DataFrame,
    seed: int,
    verdict: DriftResult | None,
) -> str:
    esc = html.escape
    lines = [
        "<strong>Sampled report.</strong> The drift verdicts come from the full data "
        f"(reference: {len(reference):,} rows, current: {len(current):,} rows). "
        f"The charts and the scores shown below come from a random sample "
        f"(reference: {len(ref_sample):,} rows, current: {len(cur_sample):,} rows, seed {seed}) "
        "and may differ slightly from the full-data verdicts."
    ]
    if verdict is not None:
        state = "DETECTED" if verdict.drift_detected else "not detected"
        lines.append(
            f"<br>Full-data verdict: dataset drift <strong>{state}</strong> "
            f"({len(verdict.drifted_columns)} of {len(verdict.columns)} columns drifted, "
            f"share {verdict.drift_share:.3f}, threshold {verdict.share_threshold:g})."
        )
        rows = "".join(
            f"<tr><td>{esc(str(c.name))}</td><td>{esc(c.method)}</td>"
            f"<td>{c.score:.6g}</td><td>{c.threshold:g}</td>"
            f"<td>{'drift' if c.drifted else 'no drift'}</td></tr>"
            for c in verdict.columns.values()
        )
        lines.append(
            '<table style="margin-top:6px;border-collapse:collapse" border="1" cellpadding="3">'
            "<tr><th>column</th><th>method</th><th>score (full data)</th><th>threshold</th>"
            f"<th>verdict (full data)</th></tr>{rows}</table>"
        )
    return (
        '<div id="mlops-sample-note" style="background:#fff3cd;color:#533f03;'
        "border:1px solid #ffe08a;padding:10px 14px;margin:8px;font-family:sans-serif;"
        'font-size:14px">' + "".join(lines) + "</div>"
    )


def _insert_after_body(page: str, fragment: str) -> str:
    match = re.search(r"<body[^>]*>", page, flags=re.IGNORECASE)
    if match is None:
        return fragment + page
    return page[: match.end()] + fragment + page[match.end() :]


def render_report_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] | None,
    categorical: Sequence[str],
    out_path: Path,
    max_rows: int = 20_000,
    seed: int = 0,
    verdict: DriftResult | None = None,
    drift_share_threshold: float | None = None,
) -> Path:
    """Render Evidently's data drift HTML report from at most ``max_rows`` rows per frame.

    When either frame is sampled, a banner is inserted right after ``<body>`` saying the
    verdicts come from the full data and the charts from the sample (plus the full-data
    per-column verdicts when ``verdict`` is given). Returns ``out_path``.
    """
    _check_frames(reference, current, min_rows=1)
    if max_rows < 1:
        raise DataError(f"max_rows must be positive, got {max_rows}")
    if drift_share_threshold is None:
        drift_share_threshold = verdict.share_threshold if verdict is not None else 0.5
    cols = _select_columns(reference, current, columns)
    ref_sample = _sample(reference[cols], max_rows, seed)
    cur_sample = _sample(current[cols], max_rows, seed + 1)
    sampled = len(ref_sample) < len(reference) or len(cur_sample) < len(current)

    cols, ref_ds, cur_ds = _evidently_inputs(ref_sample, cur_sample, cols, categorical)
    snapshot = _run_evidently(cols, ref_ds, cur_ds, drift_share_threshold)
    page = snapshot.get_html_str(as_iframe=False)
    if sampled:
        page = _insert_after_body(
            page, _banner(reference, current, ref_sample, cur_sample, seed, verdict)
        )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(page, encoding="utf-8")
    return out_path


__all__ = [
    "ColumnDrift",
    "DriftResult",
    "compute_drift",
    "evidently_drift",
    "render_report_html",
]
