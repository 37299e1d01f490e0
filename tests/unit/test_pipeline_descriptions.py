"""The Kubeflow UI's run form: every pipeline parameter has a description that says what to give.

KFP takes each input's description from the pipeline function's Google-style
``Args:`` section. This compiles every pipeline and reads the descriptions of the
top-level parameters and of every nested pipeline (``static-gates``,
``train-and-release``, ``training`` inside ``monitoring``); the condition groups
KFP generates (``comp-condition-*``) carry only its own ``pipelinechannel--``
plumbing, which no user fills in. Tasks are checked to read as steps, not as
function names.
"""

from __future__ import annotations

import re

import pytest

from mlops.api.compiling import compile_documents
from pipelines import PIPELINES

#: What a description must name where the parameter has units or a closed set of values.
MUST_NAME = {
    "min_accuracy": r"\[0, 1\]",
    "test_size": r"\(0, 1\)",
    "drift_share_threshold": r"\(0, 1\]",
    "canary_percent": r"percent.*1-99",
    "window_hours": r"[Hh]ours",
    "deploy": r"none.*full.*canary.*sticky.*cohort.*shadow",
    "deploy_target": r"kserve.*local",
    "quality_fail_on": r"low.*medium.*high",
    "estimator": r"logistic_regression.*random_forest.*gradient_boosting",
    "data_uri": r"s3://",
    "holdout_uri": r"s3://",
    "retrain_data_uri": r"s3://",
    "recipe_uri": r"git\+https://.*s3://.*builtin:",
    "model_name": r"lowercase",
}


def _pipeline_components(document: dict) -> dict[str, dict]:
    """The root and every nested pipeline (a DAG component that is not a condition group)."""
    found = {"root": document["root"]}
    for name, component in document.get("components", {}).items():
        if "dag" in component and not name.startswith("comp-condition"):
            found[name] = component
    return found


@pytest.fixture(scope="module")
def compiled() -> dict[str, dict]:
    return {name: compile_documents(pipeline)[0] for name, pipeline in PIPELINES.items()}


def _inputs(component: dict) -> dict[str, dict]:
    definitions = component.get("inputDefinitions", {})
    return {**definitions.get("parameters", {}), **definitions.get("artifacts", {})}


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_every_parameter_has_a_description(compiled, pipeline):
    missing = [
        f"{component}.{name}"
        for component, spec in _pipeline_components(compiled[pipeline]).items()
        for name, parameter in _inputs(spec).items()
        if not str(parameter.get("description", "")).strip()
    ]
    assert not missing, f"{pipeline}: parameters without a description: {missing}"


def test_nested_pipelines_are_checked_too(compiled):
    components = _pipeline_components(compiled["monitoring"])
    assert {"comp-training", "comp-static-gates", "comp-train-and-release"} <= set(components)


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_descriptions_name_units_and_allowed_values(compiled, pipeline):
    wrong = []
    for component, spec in _pipeline_components(compiled[pipeline]).items():
        for name, parameter in _inputs(spec).items():
            pattern = MUST_NAME.get(name)
            text = " ".join(str(parameter.get("description", "")).split())
            if pattern and not re.search(pattern, text):
                wrong.append(f"{component}.{name}: {text!r} does not match {pattern!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_tasks_have_display_names(compiled, pipeline):
    """A task's name in the UI is its display name; without one it is the function's name."""
    bare = []
    for component, spec in _pipeline_components(compiled[pipeline]).items():
        for key, task in spec["dag"]["tasks"].items():
            if key.startswith("condition-"):
                continue  # dsl.If / dsl.Else groups, named by the pipeline's own `name=`
            if task["taskInfo"]["name"] == key:
                bare.append(f"{component}.{key}")
    assert not bare, f"{pipeline}: tasks without a display name: {bare}"
