"""Model repositories end to end: real git repositories, the real CLI, store and model server.

Each scenario commits a data scientist's repository (``mlops.yaml``, code,
requirements, maybe a checked-in model) to a git repository in a temporary
folder, then runs ``mlops run training --json -p recipe_uri=git+file://...@HEAD``
against the session's SeaweedFS store. The runs start together as subprocesses
and are awaited one by one, so the module costs about its slowest run.

Shift left: repositories whose static gates fail carry code that would write a
marker file at import time and in ``build_model``; the marker must never appear.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from mlops.core.store import ObjectStore
from mlops.model.registry import fetch_model, list_versions
from tests.conftest import shared_path
from tests.training_helpers import (
    REPO_ROOT,
    TARGET,
    cli_command,
    cli_env,
    demo_data,
    make_keypair,
    single_json,
)

pytestmark = pytest.mark.slow
RUN_TIMEOUT = 400
SHA = 40

HIST_GRADIENT_BOOSTING = '''\
"""A recipe with its own preprocessing: a ColumnTransformer before HistGradientBoosting."""

from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder


def build_model(params):
    """The unfitted pipeline; the flow fits it on the training split."""
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                SimpleImputer(strategy="median"),
                make_column_selector(dtype_include="number"),
            ),
            (
                "categorical",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                make_column_selector(dtype_exclude="number"),
            ),
        ]
    )
    model = HistGradientBoostingClassifier(
        max_iter=params["max_iter"], random_state=params["seed"]
    )
    return Pipeline([("preprocess", preprocess), ("model", model)])
'''

LOGISTIC = '''\
"""A small logistic-regression recipe."""

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def build_model(params):
    """Scaled logistic regression."""
    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=2000))])
'''


def marker_code(marker: Path) -> str:
    """Code that leaves ``marker`` behind when imported and when ``build_model`` runs.

    Paths are written as their parts: a ``"/tmp/..."`` literal is a bandit finding
    (B108) of its own, and each scenario must fail only the gate it is about.
    """
    return f'''\
"""Leaves a marker when imported or run; the static gates must stop it first."""

import pathlib

pathlib.Path(*{marker.parts!r}).write_text("imported")


def build_model(params):
    """Writes the marker, then builds a model."""
    pathlib.Path(*{marker.parts!r}).write_text("build_model ran")
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000)
'''


def env_recording_code(record: Path) -> str:
    """A clean recipe that writes what it can see (environment, working directory) to ``record``."""
    return f'''\
"""Records the environment the repository's code runs with."""

import json
import os
import pathlib

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def build_model(params):
    """Writes os.environ and the working directory, then builds a model."""
    seen = {{"environ": dict(os.environ), "cwd": os.getcwd(), "files": sorted(os.listdir("."))}}
    pathlib.Path(*{record.parts!r}).write_text(json.dumps(seen))
    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=2000))])
'''


def mlops_yaml(name: str, **extra: object) -> str:
    lines = [f"name: {name}", f"target: {TARGET}", "entry_point: train:build_model"]
    for key, value in extra.items():
        lines.append(f"{key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def commit_repository(path: Path, files: dict[str, str | bytes]) -> str:
    """Writes ``files`` into a new git repository at ``path``, commits; returns the commit SHA."""
    path.mkdir(parents=True)
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    git = [
        "git",
        "-C",
        str(path),
        "-c",
        "user.name=Data Scientist",
        "-c",
        "user.email=ds@example.org",
    ]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "model"], check=True)
    return subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def with_size_band(frame: pd.DataFrame) -> pd.DataFrame:
    """The breast-cancer table plus a categorical column (tumour size band)."""
    out = frame.copy()
    out["size_band"] = pd.cut(
        out["mean_radius"], [0, 12, 16, 100], labels=["small", "medium", "large"]
    ).astype(str)
    return out


@dataclass
class Run:
    """One ``mlops run training --json`` subprocess and its repository."""

    name: str
    process: subprocess.Popen
    store: ObjectStore
    home: Path
    out: Path
    err: Path
    commit: str
    repo: Path

    def finish(self) -> tuple[int, dict, str]:
        code = self.process.wait(timeout=RUN_TIMEOUT)
        stdout, stderr = self.out.read_text(), self.err.read_text()
        payload = single_json(stdout) if stdout.strip() else {}
        return code, payload, stderr


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("repo-data")
    training_csv, holdout_csv = demo_data(folder)
    training, holdout = pd.read_csv(training_csv), pd.read_csv(holdout_csv)
    paths = {"training": folder / "training-banded.csv", "holdout": folder / "holdout-banded.csv"}
    with_size_band(training).to_csv(paths["training"], index=False)
    with_size_band(holdout).to_csv(paths["holdout"], index=False)
    return paths


def _pretrained(tables, folder: Path, *, shuffled: bool) -> bytes:
    """A .skops model fitted on the training table (labels shuffled: a bad model)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mlops.model.modelio import save_model

    frame = pd.read_csv(tables["training"])
    features = frame.drop(columns=[TARGET, "size_band"]).astype("float64")
    labels = frame[TARGET].to_numpy()
    if shuffled:
        labels = np.random.default_rng(0).permutation(labels)
    model = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=2000))])
    model.fit(features, labels)
    path = folder / f"pretrained-{shuffled}.skops"
    save_model(model, path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, store_settings, tables):
    """Starts every scenario's run; yields them by name (awaited by the tests)."""
    advisory_db = shared_path("advisory-db")
    work = tmp_path_factory.mktemp("repo-runs")
    keys = work / "keys"
    make_keypair(keys)
    markers = work / "markers"
    markers.mkdir()
    scenarios: dict[str, tuple[dict[str, str | bytes], dict[str, str]]] = {
        "hgb": (
            {
                "mlops.yaml": mlops_yaml("cancer-hgb", min_accuracy=0.85, params={"max_iter": 60}),
                "train.py": HIST_GRADIENT_BOOSTING,
                "requirements.txt": "scikit-learn>=1.5\npandas\n",
                "tests/test_train.py": "def test_nothing_to_lint_here():\n    assert True\n",
            },
            {"deploy": "full"},
        ),
        "bandit": (
            {
                "mlops.yaml": mlops_yaml("cancer-bandit"),
                "train.py": marker_code(markers / "bandit")
                + '\n\ndef clean_up(path):\n    """Removes a path."""\n    import subprocess\n\n'
                '    subprocess.call(f"rm -rf {path}", shell=True)\n',
                "requirements.txt": "scikit-learn\n",
            },
            {},
        ),
        "vulnerable": (
            {
                "mlops.yaml": mlops_yaml("cancer-vulnerable"),
                "train.py": marker_code(markers / "vulnerable"),
                "requirements.txt": "scikit-learn\nrequests==2.19.0\n",
            },
            {},
        ),
        "unservable": (
            {
                "mlops.yaml": mlops_yaml("cancer-unservable"),
                "train.py": LOGISTIC,
                "requirements.txt": "scikit-learn\nlightgbm>=4\n",
            },
            {},
        ),
        "environment": (
            {
                "mlops.yaml": mlops_yaml("cancer-env", drop_columns=["size_band"]),
                "train.py": env_recording_code(markers / "environment.json"),
                "requirements.txt": "scikit-learn\n",
            },
            {},
        ),
        "pretrained": (
            {
                "mlops.yaml": mlops_yaml("cancer-pretrained", model="model/model.skops"),
                "train.py": marker_code(markers / "pretrained"),
                "model/model.skops": _pretrained(tables, work, shuffled=False),
                "requirements.txt": "scikit-learn\n",
            },
            {},
        ),
        "pretrained-bad": (
            {
                "mlops.yaml": mlops_yaml("cancer-pretrained-bad", model="model/model.skops"),
                "train.py": LOGISTIC,
                "model/model.skops": _pretrained(tables, work, shuffled=True),
                "requirements.txt": "scikit-learn\n",
            },
            {},
        ),
    }
    started = {}
    for name, (files, params) in scenarios.items():
        repo = work / "repos" / name
        commit = commit_repository(repo, files)
        store = ObjectStore(replace(store_settings, bucket="t-" + uuid.uuid4().hex[:12]))
        store.ensure_bucket()
        home = work / "homes" / name
        env = cli_env(
            home,
            store,
            MLOPS_SIGNING_KEY=str(keys / "signing-key.pem"),
            MLOPS_SIGNING_PUBLIC_KEY=str(keys / "signing-key.pub.pem"),
        )
        args = [
            "run",
            "training",
            "--json",
            "-p",
            f"recipe_uri=git+file://{repo}@HEAD",
            "-p",
            f"data_uri={tables['training']}",
            "-p",
            f"holdout_uri={tables['holdout']}",
            "-p",
            f"advisory_db_uri={advisory_db}",
        ]
        for key, value in params.items():
            args += ["-p", f"{key}={value}"]
        out, err = work / f"{name}.out", work / f"{name}.err"
        with open(out, "w") as stdout, open(err, "w") as stderr:
            process = subprocess.Popen(  # noqa: S603 - the project's own CLI
                cli_command(*args), env=env, cwd=REPO_ROOT, stdout=stdout, stderr=stderr
            )
        started[name] = Run(name, process, store, home, out, err, commit, repo)
    yield {"runs": started, "markers": markers, "keys": keys, "work": work}
    for run in started.values():
        if run.process.poll() is None:
            run.process.kill()


def _finish(runs, name: str) -> tuple[int, dict, Run]:
    run = runs["runs"][name]
    code, payload, stderr = run.finish()
    assert payload, f"{name}: no outcome on stdout (exit {code}):\n{stderr[-3000:]}"
    return code, payload, run


def _rejected_before_training(payload: dict, gate: str) -> None:
    assert payload["status"] == "rejected"
    failed = {name for name, result in payload["gates"].items() if not result["passed"]}
    assert failed == {gate}, payload["gates"]
    # Nothing trained: the candidate gates never ran and no training task is in the run.
    assert set(payload["gates"]) == {"code_quality", "dependency_audit", "repository_scan"}
    run_log = Path(payload["log_file"]).read_text()
    assert "train-model" not in run_log and "load-split" not in run_log


def test_a_repository_with_its_own_pipeline_is_released_and_served(runs, tables):
    code, payload, run = _finish(runs, "hgb")
    assert code == 0, payload
    assert payload["status"] == "released", payload["reason"]
    repository = payload["repository"]
    assert repository["commit"] == run.commit and len(run.commit) == SHA
    assert repository["uri"] == f"git+file://{run.repo}@{run.commit}"
    assert repository["tree_digest"].startswith("sha256:")
    # mlops.yaml supplied the name, target and threshold; the outcome says so.
    parameters = repository["parameters"]
    assert parameters["model_name"] == {"value": "cancer-hgb", "source": "mlops.yaml"}
    assert parameters["min_accuracy"] == {"value": 0.85, "source": "mlops.yaml"}

    model_dir = fetch_model(run.store, payload["model_uri"], runs["work"] / "hgb-model")
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["repository"]["commit"] == run.commit
    from mlops.trust.signing import verify_version_dir

    # Signed after the decision: the signed release.json names the commit and every gate.
    evidence = verify_version_dir(
        model_dir, runs["keys"] / "signing-key.pub.pem", "cancer-hgb", payload["model_version"]
    )
    assert evidence["repository"]["commit"] == run.commit
    assert set(evidence["gates"]) >= {"code_quality", "holdout_accuracy", "no_regression"}
    assert (model_dir / "sbom.cdx.json").is_file()
    assert metadata["recipe"]["entry_point"] == "train:build_model"
    assert metadata["recipe"]["params"]["max_iter"] == 60
    assert "HistGradientBoostingClassifier" in metadata["estimator"]

    from mlops.model.modelio import load_model
    from mlops.model.schema import FeatureSchema, coerce

    fitted = load_model(model_dir / "model.skops")
    schema = FeatureSchema.from_metadata(metadata)
    rows = pd.read_csv(tables["holdout"]).drop(columns=[TARGET]).head(20)
    expected = fitted.predict(coerce(rows, schema)).tolist()

    from tests.serving_helpers import serving_process

    (runs["work"] / "hgb-serve").mkdir()
    with serving_process(
        run.store,
        runs["keys"] / "signing-key.pub.pem",
        runs["work"] / "hgb-serve",
        ready=("cancer-hgb",),
    ) as server:
        v1 = requests.post(
            f"{server.base}/v1/models/cancer-hgb:predict",
            json={"instances": json.loads(rows.to_json(orient="records"))},
            timeout=10,
        )
        assert v1.status_code == 200, v1.text
        assert v1.json()["predictions"] == expected
        inputs = [
            {
                "name": name,
                "shape": [len(rows)],
                "datatype": "BYTES" if rows[name].dtype == object else "FP64",
                "data": rows[name].tolist(),
            }
            for name in rows.columns
        ]
        v2 = requests.post(
            f"{server.base}/v2/models/cancer-hgb/infer", json={"inputs": inputs}, timeout=10
        )
        assert v2.status_code == 200, v2.text
        predicted = next(o for o in v2.json()["outputs"] if o["name"] == "predict")
        assert predicted["data"] == expected


def test_a_bandit_high_finding_rejects_before_any_repository_code_runs(runs):
    code, payload, _ = _finish(runs, "bandit")
    assert code == 3, payload
    _rejected_before_training(payload, "code_quality")
    assert "train.py" in payload["gates"]["code_quality"]["detail"] or "high" in payload["reason"]
    assert not (runs["markers"] / "bandit").exists()


def test_a_vulnerable_requirement_rejects_before_any_repository_code_runs(runs):
    code, payload, _ = _finish(runs, "vulnerable")
    assert code == 3, payload
    _rejected_before_training(payload, "dependency_audit")
    assert "PYSEC-2018-28" in payload["gates"]["dependency_audit"]["detail"]
    assert not (runs["markers"] / "vulnerable").exists()
    store = runs["runs"]["vulnerable"].store
    record = store.get_json(payload["record_uri"].split("/", 3)[3])
    assert record["repository"]["commit"] == runs["runs"]["vulnerable"].commit


def test_a_requirement_the_serving_image_lacks_is_named(runs):
    code, payload, _ = _finish(runs, "unservable")
    assert code == 3, payload
    _rejected_before_training(payload, "dependency_audit")
    assert "lightgbm" in payload["gates"]["dependency_audit"]["detail"]


def test_repository_code_runs_without_the_projects_secrets(runs):
    code, payload, run = _finish(runs, "environment")
    assert code == 0, payload
    seen = json.loads((runs["markers"] / "environment.json").read_text())
    leaked = [name for name in seen["environ"] if name.startswith("MLOPS_") or "SECRET" in name]
    assert leaked == []
    values = "\n".join(seen["environ"].values())
    secret = run.store.settings.to_env()
    for name, value in secret.items():
        if "KEY" in name or "SECRET" in name:
            assert value not in values, name
    assert "signing-key" not in values
    assert "train.parquet" in seen["files"] and Path(seen["cwd"]) != run.repo
    assert not Path(seen["cwd"]).exists(), "the working directory is removed after training"


def test_an_accurate_checked_in_model_is_released_without_retraining(runs):
    code, payload, run = _finish(runs, "pretrained")
    assert code == 0, payload
    assert payload["status"] == "released"
    assert not (runs["markers"] / "pretrained").exists(), "the entry point must not run"
    model_dir = fetch_model(run.store, payload["model_uri"], runs["work"] / "pretrained-model")
    committed = (run.repo / "model" / "model.skops").read_bytes()
    assert (model_dir / "model.skops").read_bytes() == committed
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["recipe"]["checked_in_model"] == "model/model.skops"
    assert "size_band" not in metadata["feature_names"]


def test_an_inaccurate_checked_in_model_is_rejected_by_the_holdout_gate(runs):
    code, payload, run = _finish(runs, "pretrained-bad")
    assert code == 3, payload
    assert payload["gates"]["holdout_accuracy"]["passed"] is False
    assert payload["gates"]["code_quality"]["passed"] is True
    assert list_versions(run.store, "cancer-pretrained-bad") == []
    # A rejected candidate is never signed: no signature in the store or the run's artifacts.
    assert not [key for key in run.store.list("", recursive=True) if key.endswith("model.sig")]
    assert not list(Path(payload["run_dir"]).rglob("model.sig"))
    assert payload["evidence"]["gates"]["holdout_accuracy"]["passed"] is False
