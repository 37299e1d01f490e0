"""Tests for mlops.model.modelio: skops round-trips and the type allow-list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops.core.errors import UsageError, VerificationError
from mlops.model import modelio


class Doubler(BaseEstimator, TransformerMixin):
    """A custom transformer: not on the allow-list."""

    def fit(self, X, y=None):  # noqa: N803
        return self

    def transform(self, X):  # noqa: N803
        return X * 2


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(7)
    n = 60
    df = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.normal(50, 15, n),
            "city": rng.choice(["a", "b", "c"], n).astype(object),
        }
    )
    df.loc[[2, 5], "age"] = np.nan
    df.loc[[3], "city"] = np.nan
    y = pd.Series((df["income"] + rng.normal(0, 5, n) > 50).astype(int))
    return df, y


def _pipeline(estimator: BaseEstimator) -> Pipeline:
    pre = ColumnTransformer(
        [
            (
                "num",
                Pipeline([("imp", SimpleImputer()), ("sc", StandardScaler())]),
                ["age", "income"],
            ),
            (
                "cat",
                Pipeline(
                    [
                        ("imp", SimpleImputer(strategy="most_frequent")),
                        ("oh", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                ["city"],
            ),
        ]
    )
    return Pipeline([("pre", pre), ("clf", estimator)])


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(max_iter=200),
        RandomForestClassifier(n_estimators=5, random_state=0),
        GradientBoostingClassifier(n_estimators=5, random_state=0),
    ],
    ids=["logreg", "forest", "gbm"],
)
def test_round_trip_identical_predictions(tmp_path: Path, frame, estimator) -> None:
    X, y = frame
    model = _pipeline(estimator).fit(X, y)
    path = tmp_path / "model.skops"
    modelio.save_model(model, path)
    loaded = modelio.load_model(path)
    probe = pd.concat([X, pd.DataFrame({"age": [1.0], "income": [2.0], "city": ["unseen"]})])
    np.testing.assert_array_equal(loaded.predict(probe), model.predict(probe))
    np.testing.assert_array_equal(loaded.predict_proba(probe), model.predict_proba(probe))


def test_custom_type_refused(tmp_path: Path, frame) -> None:
    X, y = frame
    model = Pipeline([("pre", _pipeline(LogisticRegression()).steps[0][1]), ("dbl", Doubler())])
    model.fit(X, y)
    path = tmp_path / "model.skops"
    modelio.save_model(model, path)
    with pytest.raises(VerificationError, match="untrusted type.*Doubler"):
        modelio.load_model(path)


def test_extra_trusted_allows_reviewed_type(tmp_path: Path, frame) -> None:
    X, y = frame
    model = Pipeline([("dbl", Doubler()), ("clf", LogisticRegression())]).fit(X[["income"]], y)
    path = tmp_path / "model.skops"
    modelio.save_model(model, path)
    _, refused = modelio.untrusted_types(path)
    assert len(refused) == 1 and refused[0].endswith("Doubler")
    loaded = modelio.load_model(path, extra_trusted=refused)
    np.testing.assert_array_equal(loaded.predict(X[["income"]]), model.predict(X[["income"]]))


def test_allow_list_rules() -> None:
    assert modelio.is_trusted_type("sklearn.tree._tree.Tree")
    assert modelio.is_trusted_type("numpy.dtype")
    assert modelio.is_trusted_type("scipy.sparse._csr.csr_matrix")
    assert not modelio.is_trusted_type("sklearnx.Evil")
    assert not modelio.is_trusted_type("scipy.io.loadmat")
    assert not modelio.is_trusted_type("numpy.f2py.compile")
    assert not modelio.is_trusted_type("builtins.eval")
    assert not modelio.is_trusted_type("os.system")


def test_not_a_skops_file(tmp_path: Path) -> None:
    bad = tmp_path / "model.skops"
    bad.write_bytes(b"\x80\x04not a zip")
    with pytest.raises(VerificationError, match="not a valid skops file"):
        modelio.load_model(bad)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        modelio.load_model(tmp_path / "nope.skops")


def test_load_path_has_no_pickle() -> None:
    import ast

    tree = ast.parse(Path(modelio.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"pickle", "joblib", "dill", "cloudpickle"}
