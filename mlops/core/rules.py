"""Validation rules shared by the CLI, the pre-run checks, the components and deployment.

Each rule is defined here once; callers pass the name they know the value by
(``--canary-percent`` on the command line, ``canary_percent`` as a pipeline
parameter) so the :class:`~mlops.core.errors.UsageError` speaks the caller's
language while the bounds stay the same everywhere.
"""

from __future__ import annotations

from typing import Any

from mlops.core.errors import UsageError

__all__ = [
    "DEPLOY_MODES",
    "DEPLOY_TARGETS",
    "check_canary_percent",
    "check_deploy_mode",
    "check_deploy_target",
    "check_fraction",
]

#: How a released model is rolled out: not at all, next to the stable one, or in its place.
DEPLOY_MODES = ("none", "canary", "full")
#: Where a deployment goes: the store's desired state only, or a KServe cluster as well.
DEPLOY_TARGETS = ("local", "kserve")


def check_deploy_mode(mode: str, name: str = "mode") -> str:
    """Requires one of :data:`DEPLOY_MODES`.

    Args:
        mode: The value to check.
        name: What the caller calls it (``deploy`` as a pipeline parameter).

    Returns:
        ``mode``, unchanged.

    Raises:
        UsageError: any other value.
    """
    if mode not in DEPLOY_MODES:
        raise UsageError(f"{name} must be one of {', '.join(DEPLOY_MODES)}, got {mode!r}")
    return mode


def check_deploy_target(target: str) -> str:
    """Requires one of :data:`DEPLOY_TARGETS`.

    Raises:
        UsageError: any other value.
    """
    if target not in DEPLOY_TARGETS:
        raise UsageError(f"target must be one of {', '.join(DEPLOY_TARGETS)}, got {target!r}")
    return target


def check_canary_percent(
    value: Any, *, allow_bounds: bool = False, name: str = "canary_percent"
) -> int:
    """A canary's share of traffic, as a whole percent.

    A canary proper takes 1-99 %. Where the percent describes a recorded or
    built state rather than a request for a canary, 0 (no canary) and 100 (the
    release takes everything, i.e. a full release) are meaningful too.

    Args:
        value: The percent (anything ``int()`` accepts).
        allow_bounds: Accept 0 and 100 as well.
        name: What the caller calls it, for the message.

    Returns:
        The percent as an ``int``.

    Raises:
        UsageError: not a whole number, or outside the range.
    """
    try:
        percent = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a whole number, got {value!r}") from None
    low, high = (0, 100) if allow_bounds else (1, 99)
    if not low <= percent <= high:
        raise UsageError(f"{name} must be between {low} and {high}, got {value}")
    return percent


def check_fraction(
    name: str, value: Any, inclusive: bool = False, *, allow_one: bool = False
) -> float:
    """A share between 0 and 1.

    Args:
        name: The parameter, for the message.
        value: The value (anything ``float()`` accepts).
        inclusive: Accept both 0 and 1 (``[0, 1]``); otherwise neither (``(0, 1)``).
        allow_one: Accept 1 but not 0 (``(0, 1]``): a threshold that must be reachable.

    Returns:
        The value as a ``float``.

    Raises:
        UsageError: not a number, or outside the interval (which the message shows).
    """
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{name} must be a number, got {value!r}") from exc
    zero_ok, one_ok = inclusive, inclusive or allow_one
    above_low = number >= 0.0 if zero_ok else number > 0.0
    below_high = number <= 1.0 if one_ok else number < 1.0
    if not (above_low and below_high):
        bounds = f"{'[' if zero_ok else '('}0, 1{']' if one_ok else ')'}"
        raise UsageError(f"{name} must be in {bounds}, got {number}")
    return number
