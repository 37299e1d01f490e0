"""Validation rules shared by the CLI, the pre-run checks, the components and deployment.

Each rule is defined here once; callers pass the name they know the value by
(``--canary-percent`` on the command line, ``canary_percent`` as a pipeline
parameter) so the :class:`~mlops.core.errors.UsageError` speaks the caller's
language while the bounds stay the same everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlops.core.errors import UsageError

__all__ = [
    "DEPLOY_MODES",
    "DEPLOY_TARGETS",
    "ROUTING_STRATEGIES",
    "WEIGHTED_STRATEGIES",
    "ImageRef",
    "check_canary_percent",
    "check_config_map_key_ref",
    "check_deploy_mode",
    "check_deploy_target",
    "check_fraction",
    "check_image_reference",
    "check_routing_strategy",
]

#: How a candidate beside the stable release gets traffic: a weighted random share
#: (``canary``), a weighted share keyed by a stable hash of a client header (``sticky``),
#: the requests of a header-selected cohort (``cohort``), or a copy of the traffic off the
#: request path whose answers are never returned (``shadow``).
ROUTING_STRATEGIES = ("canary", "sticky", "cohort", "shadow")
#: The strategies whose candidate takes ``canary_percent`` of the traffic (1-99).
WEIGHTED_STRATEGIES = ("canary", "sticky")
#: How a released model is rolled out: not at all, in place of the stable one, or as a
#: candidate next to it with one of the :data:`ROUTING_STRATEGIES`.
DEPLOY_MODES = ("none", "full", *ROUTING_STRATEGIES)
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


def check_routing_strategy(strategy: str, name: str = "strategy") -> str:
    """Requires one of :data:`ROUTING_STRATEGIES`.

    Args:
        strategy: The value to check.
        name: What the caller calls it (``--strategy`` on the command line).

    Returns:
        ``strategy``, unchanged.

    Raises:
        UsageError: any other value.
    """
    if strategy not in ROUTING_STRATEGIES:
        raise UsageError(f"{name} must be one of {', '.join(ROUTING_STRATEGIES)}, got {strategy!r}")
    return strategy


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


# -- container image references ---------------------------------------------------
# The distribution reference grammar (github.com/distribution/reference): an optional
# registry host[:port], lowercase path components joined by "/", then ":tag" and/or
# "@sha256:<64 hex>". Only sha256 digests are accepted: it is what registries, cosign and
# the admission policies (deploy/k8s/) name images by.
_HOST = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)"
)
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REFERENCE = re.compile(
    rf"^(?P<repository>(?:{_HOST}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Za-z=_-]+))?$"
)
_SHA256_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_MAX_REPOSITORY = 255


@dataclass(frozen=True)
class ImageRef:
    """A checked container image reference.

    Attributes:
        repository: Registry and path, e.g. ``ghcr.io/kfp-mlops/kfp-mlops-serving``.
        tag: The tag, or ``None`` (no tag, or only a digest).
        digest: ``sha256:<64 hex>``, or ``None`` when the image is named by tag.
    """

    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def pinned(self) -> bool:
        """Whether the reference names one image by its content (a digest)."""
        return self.digest is not None

    def canonical(self) -> str:
        """The reference to run: ``repository@digest`` when pinned, else ``repository:tag``.

        A tag next to a digest is dropped: the runtime ignores it, and keeping it would
        suggest the tag matters.
        """
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag or 'latest'}"

    def tag_warning(self, name: str = "image") -> str | None:
        """A warning when the image is named by a tag (which can be moved), else ``None``.

        Args:
            name: What the caller calls the image (``--image``, ``serving_image``).
        """
        if self.pinned:
            return None
        return (
            f"{name} {self.canonical()} is named by tag, not by digest: the tag can later point "
            "at another image, and signatures are checked per digest; "
            f"pass {self.repository}@sha256:<digest> (printed by the release-images workflow)"
        )


def check_image_reference(ref: str, name: str = "image") -> ImageRef:
    """Parses a container image reference: ``repo[:tag]`` or ``repo[:tag]@sha256:<64 hex>``.

    Args:
        ref: The reference, e.g. ``ghcr.io/kfp-mlops/kfp-mlops-serving@sha256:...``.
        name: What the caller calls it, for the message.

    Returns:
        The parsed reference; :meth:`ImageRef.tag_warning` says when it is only a tag.

    Raises:
        UsageError: empty, not a reference (uppercase path, spaces, bad tag), a digest
            other than ``sha256:`` with 64 lowercase hex digits, or a repository longer
            than 255 characters.
    """
    text = ref if isinstance(ref, str) else ""
    match = _IMAGE_REFERENCE.match(text)
    if not text or match is None:
        raise UsageError(
            f"{name} must be an image reference like registry/path:tag or "
            f"registry/path@sha256:<64 hex>, got {ref!r}"
        )
    repository, tag, digest = match.group("repository", "tag", "digest")
    first, _, rest = repository.partition("/")
    # A first component is a registry host only when it looks like one (docker's rule);
    # otherwise it is a path component, and those are lowercase.
    if rest and not ("." in first or ":" in first or first == "localhost"):
        if not re.fullmatch(_PATH_COMPONENT, first):
            raise UsageError(f"{name} {ref!r}: repository names are lowercase")
    if len(repository) > _MAX_REPOSITORY:
        raise UsageError(
            f"{name} {ref!r}: the repository is longer than {_MAX_REPOSITORY} characters"
        )
    if digest is not None and not _SHA256_DIGEST.match(digest):
        raise UsageError(
            f"{name} {ref!r}: the digest must be sha256: followed by 64 lowercase hex digits"
        )
    return ImageRef(repository=repository, tag=tag, digest=digest)


# -- Kubernetes object references -----------------------------------------------------
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_CONFIG_MAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def check_config_map_key_ref(name: str, key: str, what: str = "ConfigMap") -> tuple[str, str]:
    """Checks a ConfigMap name and one of its keys against Kubernetes' rules.

    Args:
        name: The ConfigMap's name (a DNS-1123 subdomain, at most 253 characters).
        key: The key (letters, digits, ``-``, ``_``, ``.``; not ``.``/``..``-prefixed).
        what: What the caller calls it (``store CA ConfigMap``), for the message.

    Returns:
        ``(name, key)``.

    Raises:
        UsageError: a name or key Kubernetes would refuse.
    """
    if not isinstance(name, str) or len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        raise UsageError(
            f"{what} name {name!r} is not a Kubernetes object name: lowercase letters, digits, "
            "'-' and '.', starting and ending alphanumeric, at most 253 characters"
        )
    if (
        not isinstance(key, str)
        or len(key) > 253
        or not _CONFIG_MAP_KEY.match(key)
        or key.startswith("..")
        or key == "."
    ):
        raise UsageError(
            f"{what} key {key!r} is not a ConfigMap key: letters, digits, '-', '_' and '.', "
            "not starting with '..'"
        )
    return name, key
