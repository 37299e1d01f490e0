"""Whether a model repository's requirements can be served by the serving image.

A released model runs in the serving image, whose packages are fixed
(``requirements-serving.lock``, :func:`mlops.core.environment.serving_requirements`);
nothing a repository asks for is installed there. So every requirement of the
repository must already be met by that image: the package is in it, and its
version there is one the requirement accepts. A requirement that is not a plain
PyPI one (a URL, a VCS checkout, a local path, an editable install, an option
line or a nested file) cannot be checked and is a problem, as is a file that
does not parse: the check fails closed.

Nothing here installs, imports or runs anything from the repository.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlops.core.errors import UsageError

if TYPE_CHECKING:
    from packaging.requirements import Requirement

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Servability:
    """How a requirements file meets the serving image.

    Attributes:
        checked: Requirements that apply here and were compared with the image.
        unservable: One reason per requirement the image cannot satisfy, naming the package.
        problems: Lines that are not plain PyPI requirements, or why the file could not be read.
        pins: The file's exact pins, ``{canonical name: specifier}`` (``"==1.2"``), served or not.
        unserved_pins: Those of ``pins`` the serving image does not have.
        skipped: Requirements whose environment marker is false for the serving interpreter.
    """

    checked: int = 0
    unservable: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    pins: dict[str, str] = field(default_factory=dict)
    unserved_pins: dict[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()

    @property
    def servable(self) -> bool:
        """True when every requirement was read and the serving image meets each one."""
        return not self.unservable and not self.problems


def serving_pins() -> dict[str, str]:
    """The serving image's packages, ``{canonical name: version}``.

    The same closure :func:`mlops.core.environment.serving_requirements` prints
    into ``requirements-serving.lock`` and into every model's ``requirements.txt``.
    """
    from mlops.core.environment import SERVING_ROOTS, installed_closure

    return installed_closure(SERVING_ROOTS)


def pin_lines(pins: Mapping[str, str]) -> str:
    """``name<specifier>`` lines for exact pins (as :attr:`Servability.pins` holds them)."""
    return "".join(f"{name}{spec}\n" for name, spec in sorted(pins.items()))


def check_servable(requirements: Path, serving: Mapping[str, str] | None = None) -> Servability:
    """Compares a requirements file with the serving image's packages.

    Args:
        requirements: The repository's requirements file (pip's format).
        serving: ``{canonical name: version}`` of the serving image; by default
            :func:`serving_pins`.

    Returns:
        What can and cannot be served; never raises for the file's content.

    Raises:
        UsageError: The file does not exist.
    """
    from pip_requirements_parser import RequirementsFile

    requirements = Path(requirements)
    if not requirements.is_file():
        raise UsageError(f"requirements file not found: {requirements}")
    serving = dict(serving_pins() if serving is None else serving)
    try:
        parsed = RequirementsFile.from_file(str(requirements))
    except Exception as exc:  # pip_requirements_parser raises its own and OS errors
        return Servability(problems=(f"cannot parse {requirements.name}: {exc}",))
    problems = [
        f"line {bad.line_number}: {bad.line.strip()} ({' '.join(bad.error_message.split())})"
        for bad in parsed.invalid_lines
    ]
    problems += [
        f"{option.line.strip()} (option lines and nested files are not accepted: "
        "the serving image is fixed, so requirements may only name packages)"
        for option in parsed.options
    ]
    checker = _Checker(serving)
    for item in parsed.requirements:
        line = item.requirement_line.line.strip() if item.requirement_line else str(item)
        if item.req is None or item.is_url or item.is_editable or item.link is not None:
            problems.append(f"{line} (not a PyPI requirement: URL, VCS, path or editable)")
            continue
        # pip_requirements_parser keeps the marker apart from the requirement.
        marker = item.marker if item.req.marker is None else None
        checker.check_line(line, str(item.req) + (f"; {marker}" if marker is not None else ""))
    return Servability(
        checked=checker.checked,
        unservable=tuple(checker.unservable),
        problems=tuple(problems + checker.problems),
        pins=checker.pins,
        unserved_pins=checker.unserved_pins,
        skipped=tuple(checker.skipped),
    )


class _Checker:
    """Checks requirements one by one against the serving image's versions."""

    def __init__(self, serving: Mapping[str, str]) -> None:
        self.serving = serving
        self.checked = 0
        self.unservable: list[str] = []
        self.problems: list[str] = []
        self.pins: dict[str, str] = {}
        self.unserved_pins: dict[str, str] = {}
        self.skipped: list[str] = []

    def check_line(self, line: str, text: str) -> None:
        """Checks one requirement line (``text``: its PEP 508 part)."""
        from packaging.requirements import InvalidRequirement, Requirement

        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            self.problems.append(f"{line} ({exc})")
            return
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            self.skipped.append(f"{_shown(requirement)}; {requirement.marker}")
            return
        self.checked += 1
        pin = _exact_pin(requirement)
        name = _canonical(requirement.name)
        if pin is not None:
            if self.pins.get(name, pin) != pin:
                self.problems.append(
                    f"{line} ({name} is pinned twice: {self.pins[name]} and {pin})"
                )
                return
            self.pins[name] = pin
        reason = self.unservable_reason(requirement)
        if reason:
            self.unservable.append(reason)
            if pin is not None:  # audited too: a repository must not pin a known advisory
                self.unserved_pins[name] = pin
            return
        for extra in sorted(requirement.extras):
            self._check_extra(requirement, extra, seen=set())

    def unservable_reason(self, requirement: Requirement) -> str | None:
        """Why the serving image cannot satisfy ``requirement``, or None when it can."""
        name = _canonical(requirement.name)
        version = self.serving.get(name)
        if version is None:
            return f"{requirement.name} is not in the serving image (requirement {_shown(requirement)})"
        # prereleases=True: the image's version is what it is; a requirement that
        # names a range containing it is met, pre-release or not.
        if not requirement.specifier.contains(version, prereleases=True):
            return (
                f"requirement {_shown(requirement)} cannot be served: "
                f"the serving image has {name}=={version}"
            )
        return None

    def _check_extra(self, parent: Requirement, extra: str, seen: set[tuple[str, str]]) -> None:
        """Checks what ``parent[extra]`` adds; the image's own metadata says what that is.

        The serving closure already holds every package's base requirements, so
        only what an extra adds can be missing.
        """
        name = _canonical(parent.name)
        if (name, extra) in seen:
            return
        seen.add((name, extra))
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            dist = None
        if dist is None or dist.version != self.serving.get(name):
            self.problems.append(
                f"{_shown(parent)} (cannot tell what extra [{extra}] needs: "
                f"{name}=={self.serving.get(name)} is not installed here)"
            )
            return
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name

        if canonicalize_name(extra) not in {
            canonicalize_name(e) for e in dist.metadata.get_all("Provides-Extra") or []
        }:
            self.unservable.append(
                f"requirement {_shown(parent)} cannot be served: {name}=={dist.version} has no extra [{extra}]"
            )
            return
        for text in dist.requires or []:
            child = Requirement(text)
            marker = child.marker
            if marker is None or not marker.evaluate({"extra": extra}):
                continue
            if marker.evaluate({"extra": ""}):
                continue  # a base requirement: in the closure already
            reason = self.unservable_reason(child)
            if reason:
                self.unservable.append(f"{reason} (needed by {parent.name}[{extra}])")
                continue
            for grandchild_extra in sorted(child.extras):
                self._check_extra(child, grandchild_extra, seen)


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def _shown(requirement: Requirement) -> str:
    """The requirement as its author would write it, without its marker: ``x[y]>=1,<2``."""
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{requirement.name}{extras}{requirement.specifier}"


def _exact_pin(requirement: Requirement) -> str | None:
    """``"==1.2"`` (or ``"===1.2"``) when the requirement pins one exact version, else None."""
    specs = list(requirement.specifier)
    if len(specs) != 1:
        return None
    spec = specs[0]
    if spec.operator == "===" or (spec.operator == "==" and "*" not in spec.version):
        return f"{spec.operator}{spec.version}"
    return None
