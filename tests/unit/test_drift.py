"""compute_drift must give Evidently's DataDriftPreset verdicts (checked against the real preset)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mlops.core.errors import DataError, UsageError
from mlops.monitoring.drift import (
    CHI_SQUARE,
    JENSEN_SHANNON,
    KS,
    WASSERSTEIN,
    Z_TEST,
    ColumnDrift,
    DriftResult,
    compute_drift,
)
from mlops.monitoring.evidently_reference import evidently_drift
from mlops.monitoring.report import render_report_html

pytestmark = pytest.mark.filterwarnings("ignore")

# Same arithmetic as Evidently/scipy; only the summation order over category keys
# (a Python set in Evidently, sorted here) can differ, i.e. a few ulp.
REL_TOL = 1e-9


def assert_same_as_evidently(reference, current, **kwargs) -> DriftResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = evidently_drift(reference, current, **kwargs)
    ours = compute_drift(reference, current, **kwargs)
    assert list(ours.columns) == list(theirs.columns)
    for name, expected in theirs.columns.items():
        got = ours.columns[name]
        assert (got.method, got.drifted, got.threshold) == (
            expected.method,
            expected.drifted,
            expected.threshold,
        ), name
        assert got.score == pytest.approx(expected.score, rel=REL_TOL, abs=1e-300), name
    assert ours.drifted_columns == theirs.drifted_columns
    assert ours.drift_share == theirs.drift_share
    assert ours.drift_detected == theirs.drift_detected
    return ours


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "normal": rng.normal(0, 1, n),
            "lognormal": rng.lognormal(0, 0.5, n),
            "rounded": np.round(rng.normal(10, 3, n), 1),  # many ties
            "count": rng.poisson(3, n),  # ints
            "binary": rng.integers(0, 2, n),
            "few": rng.integers(0, 4, n).astype(float),  # <= 5 distinct numeric values
            "colour": rng.choice(["red", "green", "blue", "black"], n, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_no_drift_same_distribution(rng):
    ref, cur = _frame(rng, 3000), _frame(rng, 2500)
    result = assert_same_as_evidently(ref, cur, categorical=["colour"])
    assert not result.drift_detected
    methods = {c.method for c in result.columns.values()}
    assert methods == {WASSERSTEIN, JENSEN_SHANNON}


def test_shifted_numeric_columns(rng):
    ref, cur = _frame(rng, 3000), _frame(rng, 3000)
    cur["normal"] += 0.4
    cur["lognormal"] *= 1.3
    cur["rounded"] += 0.05  # too small to count as drift
    result = assert_same_as_evidently(ref, cur, categorical=["colour"])
    assert set(result.drifted_columns) == {"normal", "lognormal"}
    assert result.columns["normal"].method == WASSERSTEIN


def test_categorical_frequencies_changed(rng):
    ref, cur = _frame(rng, 4000), _frame(rng, 4000)
    cur["colour"] = rng.choice(
        ["red", "green", "blue", "black", "white"], 4000, p=[0.1, 0.2, 0.3, 0.3, 0.1]
    )
    cur["binary"] = (rng.random(4000) < 0.8).astype(int)
    cur["few"] = rng.integers(0, 5, 4000).astype(float)  # new value 4
    result = assert_same_as_evidently(ref, cur, categorical=["colour"])
    assert result.columns["colour"].drifted and result.columns["colour"].method == JENSEN_SHANNON
    assert result.columns["binary"].method == JENSEN_SHANNON
    assert result.columns["few"].drifted


def test_small_data_uses_p_value_tests(rng):
    ref, cur = _frame(rng, 600), _frame(rng, 400)
    cur["normal"] += 0.5
    cur["binary"] = (rng.random(400) < 0.75).astype(int)
    result = assert_same_as_evidently(ref, cur, categorical=["colour"])
    methods = {n: c.method for n, c in result.columns.items()}
    assert methods["normal"] == KS and methods["binary"] == Z_TEST
    assert methods["few"] == CHI_SQUARE and methods["colour"] == CHI_SQUARE
    assert result.columns["normal"].drifted and result.columns["binary"].drifted


def test_small_data_no_drift(rng):
    ref, cur = _frame(rng, 1000), _frame(rng, 800)
    assert_same_as_evidently(ref, cur, categorical=["colour", "binary"])


def test_nans_and_infinities_are_dropped(rng):
    ref, cur = _frame(rng, 3000), _frame(rng, 2000)
    for frame, share in ((ref, 0.1), (cur, 0.3)):
        frame.loc[frame.sample(frac=share, random_state=1).index, "normal"] = np.nan
        frame.loc[frame.sample(frac=share, random_state=2).index, "colour"] = None
    ref.loc[5, "lognormal"] = np.inf
    cur.loc[7, "lognormal"] = -np.inf
    assert_same_as_evidently(ref, cur, categorical=["colour"])
    # after dropping NaN only 900 reference rows are left -> the small-data (K-S) path
    small_ref = ref.copy()
    small_ref.loc[small_ref.index[900:], "normal"] = np.nan
    result = assert_same_as_evidently(small_ref, cur, columns=["normal"])
    assert result.columns["normal"].method == KS


def test_constant_columns(rng):
    ref = pd.DataFrame({"const": np.ones(2000), "x": rng.normal(size=2000)})
    same = pd.DataFrame({"const": np.ones(1500), "x": rng.normal(size=1500)})
    moved = pd.DataFrame({"const": np.full(1500, 2.0), "x": rng.normal(size=1500)})
    r_same = assert_same_as_evidently(ref, same)
    assert r_same.columns["const"] == ColumnDrift("const", False, 0.0, JENSEN_SHANNON, 0.1)
    assert assert_same_as_evidently(ref, moved).columns["const"].drifted
    # small data: constant vs constant -> Z-test p-value 1
    assert assert_same_as_evidently(ref.iloc[:500], same.iloc[:300]).columns["const"].score == 1.0


def test_real_data_breast_cancer():
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True).frame
    features = [c for c in data.columns if c.startswith("mean ")]  # 10 of the 30 features
    benign, malignant = data[data.target == 1], data[data.target == 0]
    mixed = assert_same_as_evidently(data.iloc[::2], data.iloc[1::2], columns=features + ["target"])
    assert not mixed.drift_detected
    assert mixed.columns["target"].method == Z_TEST  # binary 0/1 numeric column, 284 rows
    shifted = assert_same_as_evidently(benign, malignant, columns=features)
    assert shifted.drift_detected


def test_real_data_wine_with_categorical_target():
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True).frame
    ref, cur = data[data.target != 0], data[data.target == 0]
    assert_same_as_evidently(ref, cur, categorical=["target"])


def test_larger_mixed_dtypes_and_extra_columns(rng):
    n = 5000
    ref = pd.DataFrame(
        {"a": rng.normal(size=n), "s": rng.choice(["u", "v"], n), "b": rng.random(n) < 0.3}
    )
    cur = pd.DataFrame(
        {
            "a": rng.normal(size=n) + 0.01,
            "s": rng.choice(["u", "v", "w"], n),
            "b": rng.random(n) < 0.5,
            "target": 1,  # only in current: ignored
            "ts": pd.Timestamp("2024-01-01"),
        }
    )
    result = assert_same_as_evidently(ref, cur)
    assert list(result.columns) == ["a", "s", "b"]
    assert result.n_reference == n and result.n_current == n


def test_columns_argument_and_share_threshold(rng):
    ref, cur = _frame(rng, 2000), _frame(rng, 2000)
    cur["normal"] += 1
    result = compute_drift(
        ref, cur, columns=["normal", "count", "missing"], drift_share_threshold=0.5
    )
    assert list(result.columns) == ["normal", "count"]
    assert result.drift_share == 0.5 and result.drift_detected
    assert not compute_drift(
        ref, cur, columns=["normal", "count"], drift_share_threshold=0.6
    ).drift_detected


def test_to_dict_shape(rng):
    ref, cur = _frame(rng, 1500), _frame(rng, 1500)
    d = compute_drift(ref, cur, categorical=["colour"]).to_dict()
    assert {
        "drift_detected",
        "drift_share",
        "columns",
        "drifted_columns",
        "n_reference",
        "n_current",
    } <= set(d)
    assert set(d["columns"]["normal"]) >= {"drifted", "score", "method"}
    import json

    json.dumps(d)


def test_no_common_columns():
    ref = pd.DataFrame({"a": np.arange(100.0)})
    cur = pd.DataFrame({"b": np.arange(100.0)})
    with pytest.raises(DataError, match="no columns in common"):
        compute_drift(ref, cur)
    with pytest.raises(DataError, match="no columns in common"):
        compute_drift(ref, ref, columns=["zzz"])


def test_too_few_rows():
    ref = pd.DataFrame({"a": np.arange(100.0)})
    with pytest.raises(DataError, match="fewer than min_rows=30"):
        compute_drift(ref, ref.iloc[:10])
    assert list(compute_drift(ref, ref.iloc[::10], min_rows=5).columns) == ["a"]


def test_empty_current_is_a_usage_error():
    ref = pd.DataFrame({"a": np.arange(100.0)})
    with pytest.raises(DataError, match="current data is empty") as info:
        compute_drift(ref, ref.iloc[:0])
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2


def test_all_missing_column():
    ref = pd.DataFrame({"a": np.arange(100.0)})
    cur = pd.DataFrame({"a": np.full(100, np.nan)})
    with pytest.raises(DataError, match="no finite values in the current data"):
        compute_drift(ref, cur)


def test_report_html_sampled(tmp_path, rng):
    ref, cur = _frame(rng, 3000), _frame(rng, 2000)
    cur["normal"] += 1
    verdict = compute_drift(ref, cur, categorical=["colour"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = render_report_html(
            ref,
            cur,
            tmp_path / "r" / "drift.html",
            columns=["normal", "colour"],
            categorical=["colour"],
            max_rows=500,
            verdict=verdict,
        )
    page = out.read_text(encoding="utf-8")
    assert out.exists() and out.stat().st_size > 10_000
    body = page.lower().index("<body")
    note = page.index("mlops-sample-note")
    assert note > body
    assert "verdicts come from the full data" in page
    assert "3,000 rows" in page and "500 rows" in page
    assert "full data" in page and "normal" in page


def test_report_html_not_sampled_has_no_note(tmp_path, rng):
    ref, cur = _frame(rng, 300), _frame(rng, 300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = render_report_html(
            ref, cur, tmp_path / "drift.html", columns=["normal"], max_rows=1000
        )
    page = out.read_text(encoding="utf-8")
    assert "mlops-sample-note" not in page
    assert "<html" in page.lower()


@pytest.mark.parametrize("n", [500, 3000])
def test_pandas_category_dtype_with_unused_categories(rng, n):
    dtype = pd.CategoricalDtype(["a", "b", "c", "d", "unused"])
    ref = pd.DataFrame({"c": pd.Series(rng.choice(list("abc"), n)).astype(dtype)})
    cur = pd.DataFrame({"c": pd.Series(rng.choice(list("abcd"), n)).astype(dtype)})
    result = assert_same_as_evidently(ref, cur)
    assert result.columns["c"].drifted


def test_the_jensen_shannon_distance_is_scipys_bit_for_bit():
    from scipy.spatial import distance

    from mlops.monitoring.drift import _jensenshannon

    rng = np.random.default_rng(7)
    for _ in range(500):
        k = int(rng.integers(2, 8))
        ref, cur = rng.integers(0, 1000, k).astype(float), rng.integers(1, 1000, k).astype(float)
        ref[rng.random(k) < 0.2] = 0.0  # classes only one side has
        ref[0] = max(ref[0], 1.0)
        p, q = ref / ref.sum(), cur / cur.sum()
        assert _jensenshannon(p, q) == distance.jensenshannon(p, q)
