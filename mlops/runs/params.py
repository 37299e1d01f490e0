"""Turning ``-p key=value`` strings into a pipeline's typed arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlops.core.errors import UsageError
from mlops.core.settings import parse_bool


def pipeline_inputs(pipeline: Any) -> dict[str, tuple[str, bool]]:
    """Name -> (KFP parameter type, required) for a ``@dsl.pipeline`` function."""
    inputs = pipeline.component_spec.inputs or {}
    return {name: (spec.type, not spec.optional) for name, spec in inputs.items()}


_CONVERTERS: dict[str, Callable[[str, str], Any]] = {
    "String": lambda name, value: value,
    "Integer": lambda name, value: int(value),
    "Float": lambda name, value: float(value),
    "Boolean": lambda name, value: parse_bool(value, name),
}


def parse_params(pipeline: Any, pairs: list[str]) -> dict[str, Any]:
    """Parses ``key=value`` pairs against the pipeline's inputs.

    Raises:
        UsageError: malformed pair, unknown name (the valid ones are listed), a
            value of the wrong type, or a required parameter missing.
    """
    inputs = pipeline_inputs(pipeline)
    arguments: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"parameter {pair!r} is not key=value")
        if name not in inputs:
            raise UsageError(
                f"unknown parameter {name!r}; parameters are: {', '.join(sorted(inputs))}"
            )
        kind = inputs[name][0]
        try:
            arguments[name] = _CONVERTERS.get(kind, _CONVERTERS["String"])(name, value)
        except ValueError as exc:
            raise UsageError(f"parameter {name}={value!r} is not a valid {kind.lower()}") from exc
    missing = [name for name, (_, required) in inputs.items() if required and name not in arguments]
    if missing:
        raise UsageError(
            f"missing required parameter(s): {', '.join(missing)} (pass -p NAME=VALUE)"
        )
    return arguments
