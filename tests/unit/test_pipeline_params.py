"""-p key=value strings against the training pipeline's real inputs."""

from __future__ import annotations

import pytest

from mlops.core.errors import UsageError
from mlops.runs.params import parse_params, pipeline_inputs
from pipelines.training import training

REQUIRED = ["data_uri=/d.csv", "target_column=y", "holdout_uri=/h.csv", "model_name=m"]


def test_inputs_types_and_required():
    inputs = pipeline_inputs(training)
    assert inputs["data_uri"] == ("String", True)
    assert inputs["min_accuracy"][0] == "Float" and inputs["seed"][0] == "Integer"
    assert inputs["allow_unknown_audit"][0] == "Boolean"
    required = sorted(name for name, (_, needed) in inputs.items() if needed)
    # The target column and the model name may come from the repository's mlops.yaml.
    assert required == ["data_uri", "holdout_uri"]
    for name in ("target_column", "model_name", "min_accuracy", "recipe_uri", "estimator"):
        assert inputs[name][1] is False, name
    assert inputs["recipe_uri"][0] == "String"
    assert inputs["use_checked_in_model"][0] == "Boolean"


def test_typed_values():
    args = parse_params(
        training,
        REQUIRED
        + [
            "min_accuracy=0.9",
            "seed=7",
            "allow_unknown_audit=yes",
            "test_size=0.25",
            "canary_percent=20",
            "drop_columns=a,b",
            "recipe_uri=s3://bucket/repo/",
            "trigger=x=y",
            "use_checked_in_model=no",
        ],
    )
    assert args["data_uri"] == "/d.csv" and args["model_name"] == "m"
    assert args["min_accuracy"] == 0.9 and isinstance(args["min_accuracy"], float)
    assert args["seed"] == 7 and isinstance(args["seed"], int)
    assert args["canary_percent"] == 20
    assert args["allow_unknown_audit"] is True
    assert args["drop_columns"] == "a,b"
    assert args["recipe_uri"] == "s3://bucket/repo/"
    assert args["trigger"] == "x=y"  # only the first '=' separates
    assert args["use_checked_in_model"] is False
    assert "estimator" not in args  # defaults stay with the pipeline


@pytest.mark.parametrize(
    "text,expected", [("true", True), ("False", False), ("1", True), ("off", False)]
)
def test_booleans(text, expected):
    assert (
        parse_params(training, REQUIRED + [f"allow_unknown_audit={text}"])["allow_unknown_audit"]
        is expected
    )


def test_only_required():
    assert parse_params(training, REQUIRED) == {
        "data_uri": "/d.csv",
        "target_column": "y",
        "holdout_uri": "/h.csv",
        "model_name": "m",
    }


def test_unknown_name_lists_valid_ones():
    with pytest.raises(UsageError, match="unknown parameter 'learning_rate'") as info:
        parse_params(training, REQUIRED + ["learning_rate=0.1"])
    for name in ("data_uri", "min_accuracy", "estimator", "test_size", "seed"):
        assert name in str(info.value)


def test_only_the_tables_are_required():
    assert parse_params(training, ["data_uri=/d.csv", "holdout_uri=/h.csv"]) == {
        "data_uri": "/d.csv",
        "holdout_uri": "/h.csv",
    }


def test_missing_required_are_named():
    with pytest.raises(UsageError, match="missing required parameter") as info:
        parse_params(training, ["data_uri=/d.csv", "model_name=m"])
    named = str(info.value).split(":", 1)[1]
    assert "holdout_uri" in named
    assert "data_uri" not in named and "model_name" not in named
    assert "target_column" not in named  # optional: mlops.yaml's target
    with pytest.raises(UsageError, match="missing required parameter") as info:
        parse_params(training, ["model_name=m"])
    assert "data_uri" in str(info.value) and "holdout_uri" in str(info.value)


@pytest.mark.parametrize(
    "pair,match",
    [
        ("seed=four", r"seed='four' is not a valid integer"),
        ("seed=1.5", r"seed='1.5' is not a valid integer"),
        ("min_accuracy=high", r"min_accuracy='high' is not a valid float"),
        ("allow_unknown_audit=maybe", r"allow_unknown_audit='maybe' is not a boolean"),
    ],
)
def test_bad_values_are_named(pair, match):
    with pytest.raises(UsageError, match=match):
        parse_params(training, REQUIRED + [pair])


@pytest.mark.parametrize("pair", ["no_equals_sign", "=value", " =x"])
def test_malformed_pairs(pair):
    with pytest.raises(UsageError, match="is not key=value"):
        parse_params(training, REQUIRED + [pair])


def test_empty_value_is_allowed_for_strings():
    assert parse_params(training, REQUIRED + ["advisory_db_uri="])["advisory_db_uri"] == ""
