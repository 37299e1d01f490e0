"""A CycloneDX SBOM of an image's Python environment, from its lock.

Each model folder carries ``sbom.cdx.json``: the packages of the serving image
that runs the model (``requirements-serving.lock``, the same closure
:func:`mlops.core.environment.serving_requirements` prints from the installed
environment, since the images carry no source tree), plus this project's own
wheel. It is written before the folder is signed, so the signature covers it.
The release-images workflow attaches the same document to the serving image as
a cosign attestation (``python -m mlops.core.sbom --lock requirements-serving.lock``).

The SBOM lists the Python packages only, each as ``pkg:pypi/<name>@<version>``;
the Debian packages of the base image are not in it.

The lock format is the one ``make lock`` writes: one ``name==version`` per line.
Anything else (a marker, a URL, an editable install) is refused rather than
skipped, so the SBOM never silently leaves a package out.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import logging
import re
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from mlops.core.errors import DataError, UsageError

__all__ = [
    "SBOM_FILE",
    "SERVING_IMAGE_NAME",
    "SPEC_VERSION",
    "parse_lock",
    "sbom_from_lock",
    "serving_sbom",
    "write_sbom",
]

logger = logging.getLogger(__name__)

#: The SBOM's file name in a model folder.
SBOM_FILE = "sbom.cdx.json"
#: The CycloneDX specification version written.
SPEC_VERSION = "1.6"
#: The component the serving SBOM describes (the image's title in the Dockerfile).
SERVING_IMAGE_NAME = "kfp-mlops-serving"
PROJECT = "kfp-mlops"
#: A property holding the lock's digest, so an SBOM can be matched to the lock it came from.
LOCK_DIGEST_PROPERTY = "kfp-mlops:lock:sha256"

_PIN = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)==([A-Za-z0-9][A-Za-z0-9.+!_-]*)$")


def parse_lock(text: str) -> dict[str, str]:
    """The exact pins of a lock file.

    Args:
        text: The lock's text: ``name==version`` lines; blank lines and ``#`` comments allowed.

    Returns:
        ``{normalized name: version}``, sorted by name.

    Raises:
        DataError: a line that is not an exact pin, a package pinned twice, or no pin at all.
    """
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if match is None:
            raise DataError(
                f"lock line {number} is not an exact name==version pin: {raw.strip()!r}"
            )
        name = canonicalize_name(match.group(1))
        if name in pins:
            raise DataError(f"lock line {number} pins {name} a second time")
        pins[name] = match.group(2)
    if not pins:
        raise DataError("the lock pins no package")
    return dict(sorted(pins.items()))


def _project_version() -> str:
    try:
        return md.version(PROJECT)
    except md.PackageNotFoundError:  # a source checkout without an install
        return "0+unknown"


def sbom_from_lock(
    lock_text: str,
    *,
    image_name: str = SERVING_IMAGE_NAME,
    image_version: str | None = None,
    serial_number: uuid.UUID | None = None,
    timestamp: datetime | None = None,
) -> dict[str, Any]:
    """A CycloneDX document of an image whose Python environment is ``lock_text``.

    The image's own wheel (``kfp-mlops``) is listed beside the pins, since both
    images install it with ``--no-deps`` on top of their lock.

    Args:
        lock_text: The lock (see :func:`parse_lock`).
        image_name: The container component the SBOM describes.
        image_version: Its version (default: the installed ``kfp-mlops`` version).
        serial_number: The BOM's serial number (default: a random UUID, as the spec asks).
        timestamp: When it was made (default: now, UTC).

    Returns:
        The CycloneDX JSON document (spec :data:`SPEC_VERSION`) as a dict.

    Raises:
        DataError: the lock is not a list of exact pins.
    """
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.tool import ToolRepository
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    version = image_version or _project_version()
    pins = parse_lock(lock_text)
    pins.setdefault(PROJECT, _project_version())
    root = Component(
        name=image_name,
        version=version,
        type=ComponentType.CONTAINER,
        bom_ref=f"{image_name}@{version}",
        properties=[
            Property(
                name=LOCK_DIGEST_PROPERTY,
                value=hashlib.sha256(lock_text.encode("utf-8")).hexdigest(),
            )
        ],
    )
    tool = Component(name=PROJECT, version=_project_version(), type=ComponentType.APPLICATION)
    metadata = BomMetaData(
        component=root, timestamp=timestamp, tools=ToolRepository(components=[tool])
    )
    bom = Bom(metadata=metadata, serial_number=serial_number or uuid.uuid4())
    packages = []
    for name, pin in sorted(pins.items()):
        purl = PackageURL(type="pypi", name=name, version=pin)
        packages.append(Component(name=name, version=pin, purl=purl, bom_ref=purl.to_string()))
    bom.components.update(packages)
    # The lock is flat: the image depends on every package, nothing more is claimed.
    bom.register_dependency(root, packages)
    document: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    logger.debug("SBOM of %s %s: %d packages", image_name, version, len(packages))
    return document


def serving_sbom(lock_text: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """The SBOM of the serving image (``requirements-serving.lock``).

    Args:
        lock_text: The serving lock; default: the serving closure of the installed
            environment, which ``tests/unit/test_environment.py`` keeps equal to
            ``requirements-serving.lock``.
        **kwargs: Passed to :func:`sbom_from_lock` (``serial_number``, ``timestamp``...).

    Returns:
        The CycloneDX JSON document as a dict.
    """
    if lock_text is None:
        from mlops.core.environment import serving_requirements

        lock_text = serving_requirements()
    return sbom_from_lock(lock_text, image_name=SERVING_IMAGE_NAME, **kwargs)


def write_sbom(path: Path, lock_text: str | None = None, **kwargs: Any) -> Path:
    """Writes the serving SBOM (:func:`serving_sbom`) as indented JSON.

    Args:
        path: The file, normally ``model_dir / SBOM_FILE``.
        lock_text: The serving lock (default: the installed serving closure).
        **kwargs: Passed to :func:`sbom_from_lock`.

    Returns:
        ``path``.
    """
    document = serving_sbom(lock_text, **kwargs)
    path = Path(path)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m mlops.core.sbom``: prints (or writes) the SBOM of a lock.

    Args:
        argv: Command-line arguments; ``None`` reads ``sys.argv``.

    Returns:
        The exit code: 0, or 2 for a lock that cannot be read or is not a list of exact pins.
    """
    parser = argparse.ArgumentParser(
        prog="python -m mlops.core.sbom", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--lock",
        default=None,
        help="lock file, '-' for stdin (default: the installed serving closure)",
    )
    parser.add_argument(
        "--image-name",
        default=SERVING_IMAGE_NAME,
        help=f"the image the SBOM describes (default {SERVING_IMAGE_NAME})",
    )
    parser.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    if args.lock is None:
        from mlops.core.environment import serving_requirements

        lock_text = serving_requirements()
    elif args.lock == "-":
        lock_text = sys.stdin.read()
    else:
        try:
            lock_text = Path(args.lock).read_text(encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot read lock {args.lock}: {exc.strerror}", file=sys.stderr)
            return UsageError.exit_code
    try:
        document = sbom_from_lock(lock_text, image_name=args.image_name)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
