"""Training a candidate from a model repository: the entry point runs in a clean child process.

Real repositories written to temporary folders, real Parquet splits, the real
child process (``python -m mlops.model.fit_recipe``); nothing is mocked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mlops.core.errors import DataError, UsageError
from mlops.model.candidate import train_candidate
from mlops.model.sandbox import PASSED_VARIABLES, clean_environment
from tests.training_helpers import TARGET, breast_cancer

LOGISTIC = """\
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def build_model(params):
    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=params["max_iter"]))])
"""


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("splits")
    frame = breast_cancer()
    train, test = frame.iloc[:400].reset_index(drop=True), frame.iloc[400:].reset_index(drop=True)
    train.to_parquet(folder / "train.parquet", index=False)
    test.to_parquet(folder / "test.parquet", index=False)
    return folder / "train.parquet", folder / "test.parquet"


def repository(path: Path, code: str, yaml: str = "entry_point: train:build_model\n") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "mlops.yaml").write_text(yaml)
    (path / "train.py").write_text(code)
    return path


def train(splits, repo: Path, out: Path, **kwargs):
    train_path, test_path = splits
    return train_candidate(
        train_path,
        test_path,
        out,
        repo,
        target_column=TARGET,
        model_name="cancer",
        **kwargs,
    )


def test_the_entry_point_builds_what_is_fitted_and_recorded(splits, tmp_path):
    repo = repository(
        tmp_path / "repo",
        LOGISTIC,
        "entry_point: train:build_model\nparams:\n  max_iter: 1500\n",
    )
    candidate = train(splits, repo, tmp_path / "model", repository={"uri": "dir", "commit": ""})
    metadata = json.loads((candidate.model_dir / "metadata.json").read_text())
    assert metadata["recipe"] == {
        "entry_point": "train:build_model",
        "params": {"seed": 42, "max_iter": 1500},
        "checked_in_model": None,
    }
    assert metadata["repository"] == {"uri": "dir", "commit": ""}
    assert metadata["estimator"] == "Pipeline[LogisticRegression]"
    assert candidate.metrics["test_accuracy"] > 0.9 and candidate.retrained

    from mlops.model.modelio import load_model

    fitted = load_model(candidate.model_dir / "model.skops")
    assert fitted.named_steps["model"].max_iter == 1500


@pytest.mark.parametrize(
    ("code", "yaml", "message"),
    [
        (
            LOGISTIC,
            "entry_point: missing_module:build_model\n",
            "module 'missing_module' not found",
        ),
        (LOGISTIC, "entry_point: train:make_it\n", "function 'make_it' not found in 'train'"),
        (
            "def build_model(params):\n    raise ValueError('the data scientist broke it')\n",
            "entry_point: train:build_model\n",
            "ValueError: the data scientist broke it",
        ),
        (
            "import nonexistent_dependency\n\ndef build_model(params):\n    return None\n",
            "entry_point: train:build_model\n",
            "No module named 'nonexistent_dependency'",
        ),
        (
            "def build_model(params):\n    return object()\n",
            "entry_point: train:build_model\n",
            "returned object, which has no fit or predict_proba",
        ),
        (
            "from sklearn.linear_model import LinearRegression\n\n"
            "def build_model(params):\n    return LinearRegression()\n",
            "entry_point: train:build_model\n",
            "has no predict_proba",
        ),
    ],
    ids=["no-module", "no-function", "raises", "import-fails", "not-an-estimator", "regressor"],
)
def test_entry_point_errors_name_the_problem(splits, tmp_path, code, yaml, message):
    repo = repository(tmp_path / "repo", code, yaml)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train(splits, repo, tmp_path / "model")
    assert not (tmp_path / "model" / "metadata.json").exists()


def test_the_child_environment_is_an_allow_list(tmp_path):
    source = {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "MLOPS_S3_SECRET_KEY": "s3cr3t",
        "MLOPS_SIGNING_KEY": "/keys/signing-key.pem",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "GITHUB_TOKEN": "ghp",
        "PYTHONPATH": "/somewhere/else",
    }
    env = clean_environment(tmp_path, source)
    assert env["PATH"] == "/usr/bin" and env["LANG"] == "C.UTF-8"
    assert env["HOME"] == str(tmp_path) and env["TMPDIR"].startswith(str(tmp_path))
    assert not {
        "MLOPS_S3_SECRET_KEY",
        "MLOPS_SIGNING_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_TOKEN",
    } & set(env)
    assert "/somewhere/else" not in env["PYTHONPATH"]
    assert set(env) <= set(PASSED_VARIABLES) | {
        "HOME",
        "TMPDIR",
        "PYTHONPATH",
        "PYTHONNOUSERSITE",
        "PYTHONDONTWRITEBYTECODE",
    }


def test_the_repository_code_sees_no_secret_and_its_own_folder(splits, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_S3_SECRET_KEY", "sentinel-secret-0123")
    monkeypatch.setenv("MLOPS_SIGNING_KEY", str(tmp_path / "signing-key.pem"))
    record = tmp_path / "seen.json"
    code = "import json, os, pathlib\n" + LOGISTIC.replace(
        "def build_model(params):\n",
        "def build_model(params):\n"
        f"    pathlib.Path({str(record)!r}).write_text(json.dumps("
        "{'env': dict(os.environ), 'cwd': os.getcwd()}))\n",
    )
    repo = repository(
        tmp_path / "repo", code, "entry_point: train:build_model\nparams: {max_iter: 500}\n"
    )
    train(splits, repo, tmp_path / "model")
    seen = json.loads(record.read_text())
    assert "sentinel-secret-0123" not in json.dumps(seen)
    assert not [name for name in seen["env"] if name.startswith("MLOPS_")]
    assert seen["cwd"] not in (str(repo), str(Path.cwd()))
    assert not list(repo.rglob("__pycache__")), "the fetched repository stays as it was"


def test_a_checked_in_model_is_adopted_without_running_any_code(splits, tmp_path):
    from sklearn.linear_model import LogisticRegression

    from mlops.model.modelio import save_model

    train_path, _ = splits
    frame = pd.read_parquet(train_path)
    features = frame.drop(columns=[TARGET]).iloc[:, :10]
    model = LogisticRegression(max_iter=3000).fit(features, frame[TARGET])
    repo = repository(
        tmp_path / "repo",
        "raise SystemExit('must never be imported')\n",
        "entry_point: train:build_model\nmodel: model.skops\n",
    )
    save_model(model, repo / "model.skops")
    candidate = train(splits, repo, tmp_path / "model")
    assert not candidate.retrained
    assert (candidate.model_dir / "model.skops").read_bytes() == (repo / "model.skops").read_bytes()
    metadata = json.loads((candidate.model_dir / "metadata.json").read_text())
    assert metadata["feature_names"] == list(features.columns)
    assert metadata["recipe"]["checked_in_model"] == "model.skops"
    # Retraining ignores it and runs the entry point (which here refuses to import).
    with pytest.raises(UsageError, match="must never be imported"):
        train(splits, repo, tmp_path / "retrained", use_checked_in_model=False)


def test_a_checked_in_model_whose_features_the_data_lacks_is_refused(splits, tmp_path):
    from sklearn.linear_model import LogisticRegression

    from mlops.model.modelio import save_model

    frame = pd.DataFrame({"height": [1.0, 2.0, 3.0, 4.0], "weight": [2.0, 1.0, 4.0, 3.0]})
    model = LogisticRegression().fit(frame, [0, 1, 0, 1])
    repo = repository(tmp_path / "repo", "", "entry_point: train:build_model\nmodel: model.skops\n")
    save_model(model, repo / "model.skops")
    with pytest.raises(
        DataError, match="expects feature\\(s\\) the training data lacks: height, weight"
    ):
        train(splits, repo, tmp_path / "model")
