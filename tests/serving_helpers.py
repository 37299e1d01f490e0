"""Shared helpers for the serving tests: a tiny signed model directory trained in-process.

The directory is made the way the training step makes it -- the schema, the
pipeline and the files all come from :mod:`mlops.model.training` and
:mod:`mlops.model.packaging` -- so the served model follows the project's contract:
``model.skops`` (ColumnTransformer(numeric impute+scale, categorical
impute+one-hot) + classifier), ``metadata.json``, ``reference.parquet``,
``requirements.txt`` and ``model.sig``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.training_helpers import iris_with_color, make_keypair  # noqa: F401 - make_keypair re-exported

PROC_NET_TCP = Path("/proc/net/tcp")
NUMERIC = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CATEGORICAL = ["color"]
FEATURES = NUMERIC + CATEGORICAL


def iris_frame(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Iris plus a categorical ``color`` column: (features, integer labels 0-2)."""
    from sklearn.datasets import load_iris

    features = iris_with_color(seed).drop(columns="species")
    return features, pd.Series(load_iris().target, name="species")


def build_model_dir(
    dest: Path,
    private_key: Path,
    *,
    model_name: str = "iris",
    version: str = "v1",
    estimator: str = "logistic_regression",
    seed: int = 0,
    binary: bool = False,
):
    """Trains, writes (as the training step does) and signs a model directory.

    ``binary`` trains on "virginica or not" (labels 0/1) instead of the three species.

    Returns:
        (model_dir, fitted pipeline, feature frame used for training)
    """
    from mlops.model.packaging import write_model_dir
    from mlops.model.schema import FeatureSchema
    from mlops.model.training import build_pipeline
    from mlops.trust.signing import sign_model_dir

    features, target = iris_frame(seed)
    if binary:
        target = (target == 2).astype(int)
    schema = FeatureSchema.from_frame(features)
    model = build_pipeline(schema, estimator, seed).fit(features, target)
    accuracy = float((model.predict(features) == target).mean())
    write_model_dir(
        dest,
        model,
        model_name=model_name,
        version=version,
        schema=schema,
        target_column="species",
        estimator=estimator,
        drop_columns=[],
        metrics={"train_accuracy": accuracy},
        fingerprints={},
        train_features=features,
        params={},
        seed=seed,
    )
    sign_model_dir(dest, private_key)
    return Path(dest), model, features


def publish(store, model_dir: Path, model_name: str, version: str):
    from mlops.model.registry import publish_model_dir

    return publish_model_dir(store, model_dir, model_name, version)


def sample_rows(n: int = 10, seed: int = 1) -> pd.DataFrame:
    features, _ = iris_frame()
    return features.sample(n, random_state=seed).reset_index(drop=True)


def v1_list_rows(frame: pd.DataFrame) -> list[list]:
    return [[row[name] for name in FEATURES] for row in frame.to_dict("records")]


def v1_object_rows(frame: pd.DataFrame) -> list[dict]:
    return [{name: row[name] for name in FEATURES} for row in frame.to_dict("records")]


def flip_byte(path: Path, offset: int = 200) -> None:
    data = bytearray(Path(path).read_bytes())
    data[min(offset, len(data) - 1)] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on ``port``, from the Linux kernel's TCP table."""
    found = set()
    for line in PROC_NET_TCP.read_text().splitlines()[1:]:
        fields = line.split()
        address, _, hex_port = fields[1].partition(":")
        if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found
