"""Settings read from the environment.

Only the CLI, ``compile.py`` and component bodies at run time call these: on a
cluster the variables come from a Kubernetes Secret (see ``pipelines/_cluster.py``),
locally the CLI exports them for the pipeline's subprocesses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from mlops.core.errors import UsageError
from mlops.runtime import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, PUBLIC_KEY_MOUNT, SIGNING_MOUNT

ENDPOINT_VAR = "MLOPS_S3_ENDPOINT"
ACCESS_KEY_VAR = "MLOPS_S3_ACCESS_KEY"
SECRET_KEY_VAR = "MLOPS_S3_SECRET_KEY"
SECURE_VAR = "MLOPS_S3_SECURE"
BUCKET_VAR = "MLOPS_BUCKET"
HOME_VAR = "MLOPS_HOME"
SIGNING_KEY_VAR = "MLOPS_SIGNING_KEY"
PUBLIC_KEY_VAR = "MLOPS_SIGNING_PUBLIC_KEY"
DEFAULT_BUCKET = "mlops"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def mlops_home(env: Mapping[str, str] | None = None) -> Path:
    """Where the embedded store, keys and local state live (``MLOPS_HOME``, default ``~/.mlops``)."""
    env = os.environ if env is None else env
    return Path(env.get(HOME_VAR) or Path.home() / ".mlops").expanduser()


def signing_key_paths(env: Mapping[str, str] | None = None) -> tuple[Path, Path]:
    """Private and public key paths: ``MLOPS_SIGNING_KEY`` / ``MLOPS_SIGNING_PUBLIC_KEY``, else
    where the cluster mounts the signing Secrets (the private key only into the sign step).

    Returns:
        ``(private, public)`` PEM key paths.
    """
    env = os.environ if env is None else env
    private = Path(env.get(SIGNING_KEY_VAR) or Path(SIGNING_MOUNT) / PRIVATE_KEY_FILE)
    public = Path(env.get(PUBLIC_KEY_VAR) or Path(PUBLIC_KEY_MOUNT) / PUBLIC_KEY_FILE)
    return private, public


def parse_bool(value: str, name: str) -> bool:
    """Parses a boolean setting, naming the variable when the value is not one."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UsageError(f"{name}={value!r} is not a boolean (use true or false)")


@dataclass(frozen=True)
class StoreSettings:
    """How to reach the S3-compatible object store.

    Attributes:
        endpoint: ``host:port`` of the S3 API (no scheme).
        access_key: S3 access key.
        secret_key: S3 secret key; kept out of ``repr`` so it never reaches a log.
        secure: Use TLS.
        bucket: Bucket that holds everything the project owns.
    """

    endpoint: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    secure: bool = False
    bucket: str = DEFAULT_BUCKET

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "StoreSettings":
        """Reads ``MLOPS_S3_*`` and ``MLOPS_BUCKET``.

        Raises:
            UsageError: the endpoint or credentials are not set.
        """
        env = os.environ if env is None else env
        endpoint = env.get(ENDPOINT_VAR, "").strip()
        if not endpoint:
            raise UsageError(f"{ENDPOINT_VAR} is not set: no object store configured")
        secure = parse_bool(env.get(SECURE_VAR, "false"), SECURE_VAR)
        for scheme in ("https://", "http://"):
            if endpoint.startswith(scheme):
                secure = scheme == "https://"
                endpoint = endpoint[len(scheme) :]
        endpoint = endpoint.rstrip("/")
        missing = [v for v in (ACCESS_KEY_VAR, SECRET_KEY_VAR) if not env.get(v)]
        if missing:
            raise UsageError(f"{', '.join(missing)} not set for store {endpoint}")
        return cls(
            endpoint=endpoint,
            access_key=env[ACCESS_KEY_VAR],
            secret_key=env[SECRET_KEY_VAR],
            secure=secure,
            bucket=env.get(BUCKET_VAR) or DEFAULT_BUCKET,
        )

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in a child process."""
        return {
            ENDPOINT_VAR: self.endpoint,
            ACCESS_KEY_VAR: self.access_key,
            SECRET_KEY_VAR: self.secret_key,
            SECURE_VAR: "true" if self.secure else "false",
            BUCKET_VAR: self.bucket,
        }
