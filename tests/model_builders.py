"""Signed model folders for the request-limit and hostile-value tests, trained in-process.

Made the way the training step makes them (:func:`mlops.model.training.train`,
:func:`mlops.model.packaging.write_model_dir`, :func:`mlops.trust.signing.sign_model_dir`):

* :func:`many_class_model_dir`: a 1,000-class logistic regression on synthetic data,
  the model of issue 9's "one request returns ~1 GB" (rows x classes probabilities);
* :func:`breast_cancer_model_dir`: the 30-feature breast-cancer model of issue 9's
  "``1e306`` x 30" (standard deviations below one, so scaling overflows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Features of the many-class model.
WIDE_FEATURES = ["a", "b", "c", "d"]


def _write_signed(
    dest: Path, private_key: Path, frame: pd.DataFrame, target: str, estimator: str, name: str
) -> tuple[Path, Any]:
    from mlops.model.packaging import write_model_dir
    from mlops.model.training import train
    from tests.release_helpers import release_and_sign

    model, schema = train(frame, target, estimator)
    write_model_dir(
        dest,
        model,
        model_name=name,
        version="v1",
        schema=schema,
        target_column=target,
        estimator=estimator,
        drop_columns=[],
        metrics={},
        fingerprints={},
        train_features=frame.drop(columns=[target]),
        params={},
        seed=0,
    )
    release_and_sign(dest, private_key)
    return Path(dest), model


def many_class_frame(classes: int = 1000, per_class: int = 2, seed: int = 0) -> pd.DataFrame:
    """Synthetic rows of ``classes`` classes (labels ``c0``...), ``per_class`` rows each."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    values = rng.normal(size=(len(labels), len(WIDE_FEATURES))) + labels[:, None] * 0.01
    frame = pd.DataFrame(values, columns=WIDE_FEATURES)
    frame["label"] = [f"c{i}" for i in labels]
    return frame


def many_class_model_dir(
    dest: Path, private_key: Path, classes: int = 1000, name: str = "wide"
) -> tuple[Path, Any]:
    """A signed ``classes``-class logistic regression; returns (folder, fitted pipeline)."""
    return _write_signed(
        dest, private_key, many_class_frame(classes), "label", "logistic_regression", name
    )


def breast_cancer_model_dir(
    dest: Path, private_key: Path, estimator: str = "logistic_regression", name: str = "cancer"
) -> tuple[Path, Any]:
    """The signed 30-feature breast-cancer model; returns (folder, fitted pipeline)."""
    from mlops.demo.data import TARGET, breast_cancer_frame

    return _write_signed(dest, private_key, breast_cancer_frame(), TARGET, estimator, name)


def wide_rows(rows: int, seed: int = 1) -> list[list[float]]:
    """V1 list rows for the many-class model."""
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(size=(rows, len(WIDE_FEATURES))), 6).tolist()
