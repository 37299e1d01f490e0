"""``examples/model-repo``: the data scientist's repository the demo trains.

Its workflow is a valid GitHub Actions workflow (the SchemaStore schema in
``../shared``) whose release step fails unless the model was released; its own tests
pass; its ``mlops.yaml`` reads as the flow reads it and names the demo's model and
label; its requirements admit the serving image's pins; and the model it builds
clears the demo's holdout and loads through skops' allow-list.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import shared_path
from tests.yaml_helpers import load_workflow

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "model-repo"
WORKFLOW = EXAMPLE / ".github" / "workflows" / "mlops.yaml"
RELEASE_STEP = "Train, gate and release"


def workflow() -> dict[str, Any]:
    return load_workflow(WORKFLOW)


def example_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_model_repo_train", EXAMPLE / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # No __pycache__ in the shipped folder: the flow digests and copies it as it is.
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = writes_bytecode
    return module


def test_workflow_keeps_on_as_a_string_key():
    doc = workflow()
    assert "on" in doc and True not in doc
    assert yaml.safe_load(WORKFLOW.read_text()).get(True) == doc["on"]  # what the loader avoids
    assert doc["on"]["push"]["branches"] == ["main"]
    assert doc["concurrency"]["cancel-in-progress"] is False  # real booleans still load


def test_workflow_is_valid_against_the_github_schema():
    import jsonschema

    schema = json.loads(shared_path("schemas", "github", "github-workflow.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(workflow()))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def release_script() -> str:
    steps = workflow()["jobs"]["release"]["steps"]
    return next(step["run"] for step in steps if step.get("name") == RELEASE_STEP)


def test_release_step_trains_the_pushed_commit_on_the_cluster():
    script = release_script()
    assert 'mlops run training --host "$KFP_HOST"' in script
    assert 'recipe_uri="git+https://github.com/${GITHUB_REPOSITORY}.git@${GITHUB_SHA}"' in script
    env = workflow()["jobs"]["release"]["env"]
    assert env["KFP_HOST"] == "${{ secrets.KFP_HOST }}"
    assert all(
        env[name].startswith("${{ secrets.")
        for name in ("MLOPS_S3_ENDPOINT", "MLOPS_S3_ACCESS_KEY", "MLOPS_S3_SECRET_KEY")
    )


@pytest.mark.parametrize(
    ("status", "exit_code", "job_exit"),
    [
        ("released", 0, 0),
        ("rejected", 3, 3),
        ("error", 2, 2),
        ("error", 1, 1),
        # exit 0 without a release (e.g. a run only submitted) must not pass the job.
        ("submitted", 0, 1),
    ],
)
def test_release_step_passes_only_a_released_model(tmp_path, status, exit_code, job_exit):
    # The step's own shell script, run by bash. The `mlops` it calls is a stand-in that
    # records its arguments and answers like the CLI: no KFP API server runs here.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "mlops"
    stand_in.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{tmp_path}/argv"\n'
        f"echo '{json.dumps({'status': status, 'exit_code': exit_code})}'\n"
        f"exit {exit_code}\n"
    )
    stand_in.chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    summary = tmp_path / "summary.md"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "KFP_HOST": "https://kfp.example.com",
        "GITHUB_REPOSITORY": "acme/breast-cancer",
        "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
        "GITHUB_STEP_SUMMARY": str(summary),
        "DATA_URI": "s3://data/training.csv",
        "HOLDOUT_URI": "s3://data/holdout.csv",
    }
    # GitHub runs `run:` with `bash -e {0}`.
    done = subprocess.run(
        ["bash", "-e", "-c", release_script()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == job_exit, done.stdout + done.stderr
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[:4] == ["run", "training", "--host", "https://kfp.example.com"]
    assert (
        "recipe_uri=git+https://github.com/acme/breast-cancer.git@"
        "0123456789abcdef0123456789abcdef01234567"
    ) in argv
    assert {"data_uri=s3://data/training.csv", "holdout_uri=s3://data/holdout.csv"} <= set(argv)
    assert argv[-1] == "--json"
    assert status in summary.read_text()


def test_the_examples_own_tests_pass(tmp_path):
    # A copy: the repository must stand on its own, and the checkout stays clean.
    repo = tmp_path / "model-repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=repo,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout


def test_config_names_the_demos_model_and_label():
    from mlops.demo.data import TARGET
    from mlops.demo.story import MODEL
    from mlops.repository.config import load_config, quality_paths

    config = load_config(EXAMPLE)
    assert (config.name, config.target, config.entry_point) == (MODEL, TARGET, "train:build_model")
    assert config.model is None
    assert quality_paths(EXAMPLE, config) == [EXAMPLE / "train.py"]


def test_requirements_admit_the_serving_images_pins():
    from packaging.requirements import Requirement

    pins = {}
    for line in (REPO_ROOT / "requirements-serving.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, _, version = line.split(";")[0].strip().partition("==")
            pins[name.lower().replace("_", "-")] = version.strip()
    lines = (EXAMPLE / "requirements.txt").read_text().splitlines()
    requirements = [Requirement(line) for line in lines if line.strip() and line[0] != "#"]
    assert {r.name for r in requirements} == {"scikit-learn", "pandas", "numpy"}
    for requirement in requirements:
        assert requirement.specifier.contains(pins[requirement.name]), (
            requirement,
            pins[requirement.name],
        )


def test_build_model_returns_an_unfitted_classifier():
    model = example_module().build_model({"max_iter": 10, "seed": 1})
    assert hasattr(model, "fit") and hasattr(model, "predict_proba")
    assert not hasattr(model, "classes_")


def test_the_model_clears_the_demos_holdout_and_loads_through_the_allow_list(tmp_path):
    import pandas as pd

    from mlops.demo.data import TARGET, write_breast_cancer
    from mlops.model.modelio import load_model, save_model
    from mlops.model.schema import FeatureSchema, coerce
    from mlops.repository.config import load_config

    config = load_config(EXAMPLE)
    training_csv, holdout_csv = write_breast_cancer(tmp_path)
    training, holdout = pd.read_csv(training_csv), pd.read_csv(holdout_csv)
    schema = FeatureSchema.from_frame(training.drop(columns=[TARGET]))
    model = example_module().build_model({"seed": 42, **config.params})
    model.fit(coerce(training, schema), training[TARGET])
    save_model(model, tmp_path / "model.skops")
    loaded = load_model(tmp_path / "model.skops")
    features = coerce(holdout, schema)
    np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))
    accuracy = float((loaded.predict(features) == holdout[TARGET]).mean())
    assert config.min_accuracy is not None and accuracy >= config.min_accuracy
