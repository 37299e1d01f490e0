"""Model registry in the object store.

Layout: ``models/<model_name>/<version>/`` holds the model directory's files;
``_COMPLETE`` is written last, so a version exists for readers only once every
file is in place (S3 has no atomic multi-object write). Readers ignore versions
without the marker.

The marker records the version's name, version and ``published_at``; versions
are ordered by that time, not by name (see :func:`list_versions`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlops.core.errors import StoreError, UsageError
from mlops.core.store import ObjectStore, S3Uri

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "_COMPLETE"
MODELS_PREFIX = "models"
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def validate_model_name(name: str) -> str:
    """Model names become S3 prefixes, metric labels and Kubernetes names: DNS-1123 labels."""
    if not _NAME.match(name or ""):
        raise UsageError(
            f"model_name {name!r} is invalid: use lowercase letters, digits and '-', "
            "start and end alphanumeric, at most 63 characters"
        )
    return name


def new_version(now: datetime | None = None) -> str:
    """A sortable, unique version id such as ``v20261128-183800-a1b2``."""
    now = now or datetime.now(UTC)
    return now.strftime("v%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks so large models stay out of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelRef:
    """A published model version."""

    name: str
    version: str
    uri: str


def version_prefix(model_name: str, version: str) -> str:
    """Store prefix of one model version: ``models/<name>/<version>``."""
    return f"{MODELS_PREFIX}/{model_name}/{version}"


def publish_model_dir(
    store: ObjectStore, model_dir: Path, model_name: str, version: str
) -> ModelRef:
    """Uploads a model directory, then the completion marker listing every file's digest."""
    validate_model_name(model_name)
    prefix = version_prefix(model_name, version)
    if store.exists(f"{prefix}/{COMPLETE_MARKER}"):
        raise UsageError(f"model {model_name} version {version} is already published")
    files = store.upload_dir(Path(model_dir), prefix, exclude=(COMPLETE_MARKER,))
    if not files:
        raise UsageError(f"model directory {model_dir} is empty")
    manifest = {
        "model_name": model_name,
        "version": version,
        "published_at": datetime.now(UTC).isoformat(),
        "files": {name: sha256_file(Path(model_dir) / name) for name in files},
    }
    store.put_json(f"{prefix}/{COMPLETE_MARKER}", manifest)
    uri = store.uri(prefix)
    logger.info("published %s", uri)
    return ModelRef(model_name, version, uri)


def published_at(store: ObjectStore, model_name: str, version: str) -> datetime | None:
    """When a version was published, as its completion marker records it.

    The time counts only when the marker names this very version: a folder
    copied under another version name carries the original's marker, and the
    copy must not become the newest version merely by its name.

    Returns:
        The time (UTC), or None when the marker is gone, names another version,
        or records no usable time (hand-made or unparsable marker).

    Raises:
        StoreError: the marker exists but cannot be read.
    """
    return _marker_time(store, model_name, version)[1]


def _marker_time(store: ObjectStore, model_name: str, version: str) -> tuple[bool, datetime | None]:
    """Whether the version's marker still exists, and its usable publish time.

    A read error raises rather than counting as "no time": a transient error
    must not silently change which version is the latest.
    """
    found = store.get_versioned(f"{version_prefix(model_name, version)}/{COMPLETE_MARKER}")
    if found is None:
        return False, None
    try:
        marker = json.loads(found[0])
    except ValueError:
        marker = None
    if not isinstance(marker, dict):
        logger.warning("%s %s: completion marker is not a JSON object", model_name, version)
        return True, None
    recorded = (marker.get("model_name"), marker.get("version"))
    if recorded != (model_name, version):
        logger.warning(
            "%s %s: completion marker was written for model %r version %r (a copied "
            "folder?); its publish time is not used",
            model_name,
            version,
            *recorded,
        )
        return True, None
    return True, _parse_time(marker.get("published_at"))


def _parse_time(value: object) -> datetime | None:
    """An ISO-8601 time with a zone as UTC, else None (a naive time has no safe order)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def _complete_versions(store: ObjectStore, model_name: str) -> set[str]:
    """Names of the versions that have a completion marker."""
    base = f"{MODELS_PREFIX}/{model_name}/"
    versions = set()
    for key in store.list(base, recursive=True):
        relative = key[len(base) :]
        version, _, rest = relative.partition("/")
        if rest == COMPLETE_MARKER:
            versions.add(version)
    return versions


def list_versions(store: ObjectStore, model_name: str) -> list[str]:
    """Complete versions of a model, oldest first, by recorded publish time.

    Versions without a usable publish time (see :func:`published_at`) come
    first, by name; then the others by time (ties by name). Names alone would
    not do: :func:`new_version` ids order only to the second, and a copy can
    take any name.
    """
    untimed: list[str] = []
    timed: list[tuple[datetime, str]] = []
    for version in _complete_versions(store, model_name):
        exists, when = _marker_time(store, model_name, version)
        if not exists:  # deleted since the listing: no longer a complete version
            continue
        if when is None:
            untimed.append(version)
        else:
            timed.append((when, version))
    return sorted(untimed) + [version for _, version in sorted(timed)]


def latest_version(store: ObjectStore, model_name: str) -> str:
    """The newest complete version of a model: the last one published (see :func:`list_versions`).

    Raises:
        UsageError: the model has no complete version.
    """
    versions = list_versions(store, model_name)
    if not versions:
        raise UsageError(f"model {model_name!r} has no published version")
    return versions[-1]


def resolve(store: ObjectStore, model_name: str, version: str | None = None) -> ModelRef:
    """The published version (latest when not given) of a model."""
    version = version or latest_version(store, model_name)
    prefix = version_prefix(model_name, version)
    if not store.exists(f"{prefix}/{COMPLETE_MARKER}"):
        raise UsageError(f"model {model_name!r} has no published version {version!r}")
    return ModelRef(model_name, version, store.uri(prefix))


def parse_model_uri(uri: str) -> tuple[S3Uri, str, str]:
    """Splits ``s3://bucket/models/<name>/<version>`` into (uri, name, version)."""
    parsed = S3Uri.parse(uri.rstrip("/"))
    parts = parsed.key.split("/")
    if len(parts) != 3 or parts[0] != MODELS_PREFIX:
        raise UsageError(f"{uri!r} is not a model URI (s3://<bucket>/models/<name>/<version>)")
    return parsed, parts[1], parts[2]


def fetch_model(store: ObjectStore, model_uri: str, dest: Path) -> Path:
    """Downloads a complete published version into ``dest`` (marker excluded).

    Raises:
        StoreError: the version is not complete (still uploading, or broken).
    """
    parsed, _, _ = parse_model_uri(model_uri)
    marker = f"s3://{parsed.bucket}/{parsed.key}/{COMPLETE_MARKER}"
    if not store.exists(marker):
        raise StoreError(f"{model_uri} is not a complete published model (no {COMPLETE_MARKER})")
    dest = Path(dest)
    store.download_dir(str(parsed), dest)
    (dest / COMPLETE_MARKER).unlink(missing_ok=True)
    return dest
