"""The validation rules every caller shares (``mlops.core.rules``)."""

from __future__ import annotations

import pytest

from mlops.core.errors import UsageError
from mlops.core.rules import (
    DEPLOY_MODES,
    DEPLOY_TARGETS,
    check_canary_percent,
    check_deploy_mode,
    check_deploy_target,
    check_fraction,
)


@pytest.mark.parametrize("value,expected", [(1, 1), (99, 99), ("20", 20)])
def test_a_canary_takes_1_to_99_percent(value, expected):
    assert check_canary_percent(value) == expected


@pytest.mark.parametrize("value", [0, 100, -1, 101])
def test_a_canary_percent_outside_1_99_is_refused_by_its_name(value):
    with pytest.raises(UsageError, match=f"--canary-percent must be between 1 and 99, got {value}"):
        check_canary_percent(value, name="--canary-percent")


@pytest.mark.parametrize("value", [0, 100])
def test_recorded_states_may_hold_0_and_100(value):
    assert check_canary_percent(value, allow_bounds=True) == value


@pytest.mark.parametrize("value", [-1, 101])
def test_no_state_holds_more_than_everything(value):
    with pytest.raises(UsageError, match="between 0 and 100"):
        check_canary_percent(value, allow_bounds=True)


def test_a_percent_that_is_no_number_is_a_usage_error():
    with pytest.raises(UsageError, match="canary_percent must be a whole number, got 'lots'"):
        check_canary_percent("lots")


def test_deploy_modes_and_targets():
    assert DEPLOY_MODES == ("none", "full", "canary", "sticky", "cohort", "shadow")
    assert DEPLOY_TARGETS == ("local", "kserve")
    for mode in DEPLOY_MODES:
        assert check_deploy_mode(mode) == mode
    with pytest.raises(
        UsageError,
        match="deploy must be one of none, full, canary, sticky, cohort, shadow, got 'x'",
    ):
        check_deploy_mode("x", name="deploy")
    with pytest.raises(UsageError, match="target must be one of local, kserve, got 'k8s'"):
        check_deploy_target("k8s")


@pytest.mark.parametrize(
    "kwargs,inside,outside,bounds",
    [
        ({}, [0.5], [0.0, 1.0], "(0, 1)"),
        ({"inclusive": True}, [0.0, 1.0], [-0.1, 1.5], "[0, 1]"),
        ({"allow_one": True}, [1.0], [0.0, 1.01], "(0, 1]"),
    ],
)
def test_fraction_intervals(kwargs, inside, outside, bounds):
    for value in inside:
        assert check_fraction("share", value, **kwargs) == value
    for value in outside:
        with pytest.raises(UsageError, match=rf"share must be in \{bounds[0]}0, 1\{bounds[-1]}"):
            check_fraction("share", value, **kwargs)


def test_a_fraction_that_is_no_number_names_the_parameter():
    with pytest.raises(UsageError, match="min_accuracy must be a number, got 'high'"):
        check_fraction("min_accuracy", "high")
