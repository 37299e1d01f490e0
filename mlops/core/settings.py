"""Every ``MLOPS_*`` setting, read here and only here, as a typed value.

:data:`VARIABLES` is the one table of the project's environment variables: name,
type, default and meaning. The README's configuration table is generated from it
(:func:`markdown_table`) and tested against it.
Code asks for a value with :func:`get` (or one of the grouped readers below:
:class:`StoreSettings`, :class:`ServingSettings`); a value that does not parse is a
:class:`~mlops.core.errors.UsageError` naming the variable, never a silent default.

Who reads them: the CLI, ``compile.py`` (nothing is baked into YAML), component
bodies at run time and the model server. On a cluster the variables come from the
Secrets and ConfigMap named in :mod:`mlops.runtime`; locally the CLI exports them
for the pipeline's subprocesses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.core.errors import UsageError
from mlops.runtime import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, PUBLIC_KEY_MOUNT, SIGNING_MOUNT

DEFAULT_BUCKET = "mlops"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# -- parsers: one per type, each naming the variable on a bad value -------------------------
def parse_bool(value: str, name: str) -> bool:
    """Parses a boolean setting (1/0, true/false, yes/no, on/off; empty is false)."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE or lowered == "":
        return False
    raise UsageError(f"{name}={value!r} is not a boolean (use true or false)")


def parse_positive_int(value: str, name: str) -> int:
    """Parses a whole number greater than zero."""
    try:
        number = int(value.strip())
    except ValueError:
        raise UsageError(f"{name}={value!r} is not a whole number") from None
    if number <= 0:
        raise UsageError(f"{name}={value!r} must be greater than 0")
    return number


def parse_positive_float(value: str, name: str) -> float:
    """Parses a finite number greater than zero."""
    try:
        number = float(value.strip())
    except ValueError:
        raise UsageError(f"{name}={value!r} is not a number") from None
    if not 0 < number < float("inf"):
        raise UsageError(f"{name}={value!r} must be a finite number greater than 0")
    return number


def parse_fraction(value: str, name: str) -> float:
    """Parses a number in [0, 1]."""
    try:
        number = float(value.strip())
    except ValueError:
        raise UsageError(f"{name}={value!r} is not a number") from None
    if not 0 <= number <= 1:
        raise UsageError(f"{name}={value!r} must be between 0 and 1")
    return number


def parse_text(value: str, name: str) -> str:
    """A string setting, surrounding blanks removed."""
    return value.strip()


def parse_path(value: str, name: str) -> Path:
    """A filesystem path (``~`` expanded)."""
    return Path(value.strip()).expanduser()


@dataclass(frozen=True)
class Variable:
    """One environment variable of the project.

    Attributes:
        name: The variable, ``MLOPS_*``.
        parse: Turns the raw text into the typed value (raises ``UsageError``).
        default: The value when the variable is unset or empty (``None``: unset).
        description: What it means, for the README table.
        secret: Never logged or shown.
        default_text: How the README states the default when the value alone
            does not say it (a default worked out elsewhere, e.g. from ``MLOPS_HOME``).
    """

    name: str
    parse: Callable[[str, str], Any] = field(repr=False)
    default: Any
    description: str
    secret: bool = False
    default_text: str | None = None

    def documented_default(self) -> str:
        """The default as the README shows it: ``default_text``, else the value, else "unset"."""
        if self.default_text is not None:
            return self.default_text
        if self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        if isinstance(self.default, float):
            return f"`{self.default:g}`"
        return f"`{self.default}`"


def _var(
    name: str,
    parse: Callable[[str, str], Any],
    default: Any,
    description: str,
    secret: bool = False,
    default_text: str | None = None,
) -> str:
    VARIABLES[name] = Variable(name, parse, default, description, secret, default_text)
    return name


VARIABLES: dict[str, Variable] = {}

# Object store
ENDPOINT_VAR = _var(
    "MLOPS_S3_ENDPOINT",
    parse_text,
    None,
    "S3 API `host:port` (or `https://host`) of your MinIO / S3",
    default_text="unset: the embedded store",
)
_EMBEDDED_CREDENTIALS = "generated for the embedded store"
ACCESS_KEY_VAR = _var(
    "MLOPS_S3_ACCESS_KEY", parse_text, None, "S3 access key", default_text=_EMBEDDED_CREDENTIALS
)
SECRET_KEY_VAR = _var(
    "MLOPS_S3_SECRET_KEY",
    parse_text,
    None,
    "S3 secret key",
    secret=True,
    default_text=_EMBEDDED_CREDENTIALS,
)
SECURE_VAR = _var("MLOPS_S3_SECURE", parse_bool, False, "TLS to the store")
CA_BUNDLE_VAR = _var(
    "MLOPS_S3_CA_BUNDLE",
    parse_path,
    None,
    "PEM file of the CA(s) the store's TLS certificate must chain to (a private CA; "
    "`mlops store start --tls` exports its own)",
    default_text="unset: the system's CAs",
)
CA_CONFIGMAP_VAR = _var(
    "MLOPS_S3_CA_CONFIGMAP",
    parse_text,
    None,
    "on a cluster: the ConfigMap (`NAME` or `NAME/KEY`, key `ca.crt` by default) holding the "
    "store's CA, mounted into the predictors the deploy step builds (`compile.py "
    "--s3-ca-configmap` sets it in the pipeline's tasks)",
    default_text="unset: predictors trust the system's CAs",
)
BUCKET_VAR = _var(
    "MLOPS_BUCKET", parse_text, DEFAULT_BUCKET, "bucket for everything the project owns"
)
# Local state and trust
HOME_VAR = _var(
    "MLOPS_HOME",
    parse_path,
    None,
    "embedded store data, signing keys, local runs",
    default_text="`~/.mlops`",
)
SIGNING_KEY_VAR = _var(
    "MLOPS_SIGNING_KEY",
    parse_path,
    None,
    "private key of the sign step",
    default_text=(
        "`$MLOPS_HOME/keys/signing-key.pem` locally; on a cluster "
        f"`{SIGNING_MOUNT}/{PRIVATE_KEY_FILE}` (mounted into the sign step only)"
    ),
)
PUBLIC_KEY_VAR = _var(
    "MLOPS_SIGNING_PUBLIC_KEY",
    parse_path,
    None,
    "public key signatures are checked with (sign, publish, deploy, serving)",
    default_text=(
        "`$MLOPS_HOME/keys/signing-key.pub.pem` locally; on a cluster "
        f"`{PUBLIC_KEY_MOUNT}/{PUBLIC_KEY_FILE}`"
    ),
)
ADVISORY_DB_VAR = _var(
    "MLOPS_ADVISORY_DB",
    parse_text,
    None,
    "offline advisory database (path or `s3://` prefix) for `mlops audit` and, as their "
    "`advisory_db_uri` unless `-p advisory_db_uri=...` is given, every local "
    "`mlops run training` / `mlops run monitoring`",
)
PUSHGATEWAY_VAR = _var(
    "MLOPS_PUSHGATEWAY",
    parse_text,
    None,
    "Prometheus Pushgateway URL for drift and release metrics",
)
MIN_ACCURACY_VAR = _var(
    "MLOPS_MIN_ACCURACY",
    parse_fraction,
    None,
    "release policy: the holdout accuracy a model's signed `release.json` must show before "
    "deploy or the model server accepts it; raises (never lowers) the model's own threshold",
    default_text="unset: the model's own `min_accuracy`",
)
# Model repositories
GIT_TOKEN_VAR = _var(
    "MLOPS_GIT_TOKEN",
    parse_text,
    None,
    "token for `git+https://` model repositories: sent to git as an HTTP `Authorization` "
    "header (never in a URL, an argument or a log)",
    secret=True,
)
# Deployment
KSERVE_CRD_VAR = _var(
    "MLOPS_KSERVE_CRD",
    parse_path,
    None,
    "InferenceService CRD file: manifests are validated against its schema before they are applied",
    default_text="unset: no schema check",
)
MESH_SCHEMAS_VAR = _var(
    "MLOPS_MESH_SCHEMAS",
    parse_path,
    None,
    "folder of the Istio and Gateway API CRDs (laid out `istio/`, `gateway-api/`): the mesh "
    "routes of sticky, cohort and shadow on KServe are validated against them before anything "
    "is applied",
    default_text="unset: no schema check of the mesh routes",
)
KSERVE_DEPLOYMENT_MODE_VAR = _var(
    "MLOPS_KSERVE_DEPLOYMENT_MODE",
    parse_text,
    None,
    "KServe deployment mode of the deployed InferenceService (`Serverless`, `RawDeployment`, "
    "`Standard`); a live one never switches between Serverless and Raw",
    default_text="unset: the live InferenceService's mode, else `Serverless`",
)
# Model server
RECONCILE_SECONDS_VAR = _var(
    "MLOPS_RECONCILE_SECONDS",
    parse_positive_float,
    2.0,
    "how often `mlops serve` reads the deployment state (seconds)",
)
RETRY_FAILED_SECONDS_VAR = _var(
    "MLOPS_RETRY_FAILED_SECONDS",
    parse_positive_float,
    60.0,
    "how long `mlops serve` waits before loading a failed version again (seconds)",
)
INFERENCE_LOG_VAR = _var(
    "MLOPS_INFERENCE_LOG", parse_bool, True, "log requests and predictions to the store"
)
INFERENCE_LOG_FLUSH_SECONDS_VAR = _var(
    "MLOPS_INFERENCE_LOG_FLUSH_SECONDS",
    parse_positive_float,
    5.0,
    "inference log: write at least this often (seconds)",
)
INFERENCE_LOG_FLUSH_ROWS_VAR = _var(
    "MLOPS_INFERENCE_LOG_FLUSH_ROWS",
    parse_positive_int,
    1000,
    "inference log: write when this many rows wait",
)
INFERENCE_LOG_MAX_ROWS_VAR = _var(
    "MLOPS_INFERENCE_LOG_MAX_ROWS",
    parse_positive_int,
    10_000,
    "inference log: rows kept while the store is down (oldest dropped, counted)",
)
MAX_BODY_BYTES_VAR = _var(
    "MLOPS_MAX_BODY_BYTES",
    parse_positive_int,
    1 << 20,
    "largest request body the model server reads (bytes; larger ones get 413)",
    default_text="`1048576` (1 MiB)",
)
MAX_ROWS_VAR = _var(
    "MLOPS_MAX_ROWS",
    parse_positive_int,
    10_000,
    "model server: rows one `:predict` or V2 `infer` request may send (more get 413)",
)
MAX_EXPLAIN_ROWS_VAR = _var(
    "MLOPS_MAX_EXPLAIN_ROWS",
    parse_positive_int,
    100,
    "model server: rows one `:explain` request may send (more get 413)",
)
MAX_RESPONSE_VALUES_VAR = _var(
    "MLOPS_MAX_RESPONSE_VALUES",
    parse_positive_int,
    1_000_000,
    "model server: numbers one response may carry: a prediction per row, plus rows x classes "
    "when probabilities are returned (more get 413)",
)
MAX_SCORED_VALUES_VAR = _var(
    "MLOPS_MAX_SCORED_VALUES",
    parse_positive_int,
    2_000_000,
    "model server: work one request may ask for, as class scores the model computes "
    "(rows x classes; x features for `:explain`; more get 413)",
)
MAX_BATCH_ROWS_VAR = _var(
    "MLOPS_MAX_BATCH_ROWS",
    parse_positive_int,
    256,
    "model server: most rows one model call scores when concurrent requests for a version "
    "are batched (`1`: no batching; a larger request is scored alone)",
)
MAX_BATCH_WAIT_MS_VAR = _var(
    "MLOPS_MAX_BATCH_WAIT_MS",
    parse_positive_float,
    2.0,
    "model server: longest a request waits for requests already received (being parsed) to "
    "join its batch (milliseconds; an idle server never waits)",
)
ACCESS_LOG_VAR = _var("MLOPS_ACCESS_LOG", parse_bool, False, "model server: log every request")
LOG_LEVEL_VAR = _var("MLOPS_LOG_LEVEL", parse_text, "INFO", "model server log level")
HEADER_TIMEOUT_SECONDS_VAR = _var(
    "MLOPS_HEADER_TIMEOUT_SECONDS",
    parse_positive_float,
    10.0,
    "model server: a request's headers must arrive within this time (seconds; else 408 and "
    "the connection is closed)",
)
BODY_TIMEOUT_SECONDS_VAR = _var(
    "MLOPS_BODY_TIMEOUT_SECONDS",
    parse_positive_float,
    30.0,
    "model server: a request's body must arrive within this time after its headers "
    "(seconds; else 408 and the connection is closed)",
)
ADMIN_API_VAR = _var(
    "MLOPS_ADMIN_API",
    parse_bool,
    False,
    "model server: enable the endpoints that change what is served (the model repository's "
    "`load` / `unload`); they also need `MLOPS_ADMIN_TOKEN`",
)
ADMIN_TOKEN_VAR = _var(
    "MLOPS_ADMIN_TOKEN",
    parse_text,
    None,
    "model server: bearer token the enabled admin endpoints require "
    "(`Authorization: Bearer <token>`); without it they stay off",
    secret=True,
)
FEEDBACK_API_VAR = _var(
    "MLOPS_FEEDBACK_API",
    parse_bool,
    False,
    "model server: enable `POST /v1/models/NAME/feedback` (ground-truth labels by request "
    "id); it also needs `MLOPS_FEEDBACK_TOKEN`",
)
FEEDBACK_TOKEN_VAR = _var(
    "MLOPS_FEEDBACK_TOKEN",
    parse_text,
    None,
    "model server: bearer token the enabled feedback endpoint requires "
    "(`Authorization: Bearer <token>`); without it the endpoint stays off",
    secret=True,
)

#: What a task needs to reach the store: on a cluster, the keys of the store Secret.
STORE_ENV_VARS = (ENDPOINT_VAR, ACCESS_KEY_VAR, SECRET_KEY_VAR, SECURE_VAR, BUCKET_VAR)
#: Optional, non-secret settings a cluster provides in the ``mlops-config`` ConfigMap.
CONFIG_MAP_VARS = (PUSHGATEWAY_VAR,)


def markdown_table() -> str:
    """The README's configuration table: one row per variable, in :data:`VARIABLES` order."""
    rows = ["| variable | meaning | default |", "|---|---|---|"]
    rows += [
        f"| `{v.name}` | {v.description} | {v.documented_default()} |" for v in VARIABLES.values()
    ]
    return "\n".join(rows) + "\n"


def get(name: str, env: Mapping[str, str] | None = None) -> Any:
    """The typed value of one ``MLOPS_*`` variable (its default when unset or empty).

    Raises:
        UsageError: the value does not parse (the message names the variable).
        KeyError: ``name`` is not one of :data:`VARIABLES`.
    """
    variable = VARIABLES[name]
    raw = (os.environ if env is None else env).get(name, "")
    if raw.strip() == "":
        return variable.default
    return variable.parse(raw, name)


def mlops_home(env: Mapping[str, str] | None = None) -> Path:
    """Where the embedded store, keys and local state live (``MLOPS_HOME``, default ``~/.mlops``)."""
    home = get(HOME_VAR, env)
    return home if home is not None else Path.home() / ".mlops"


def signing_key_paths(env: Mapping[str, str] | None = None) -> tuple[Path, Path]:
    """The signing key pair's paths.

    ``MLOPS_SIGNING_KEY`` / ``MLOPS_SIGNING_PUBLIC_KEY``, else where the cluster
    mounts the signing Secrets (the private key only into the sign step).

    Returns:
        ``(private, public)`` PEM key paths.
    """
    private = get(SIGNING_KEY_VAR, env) or Path(SIGNING_MOUNT) / PRIVATE_KEY_FILE
    public = get(PUBLIC_KEY_VAR, env) or Path(PUBLIC_KEY_MOUNT) / PUBLIC_KEY_FILE
    return private, public


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
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreSettings:
        """Reads ``MLOPS_S3_*`` and ``MLOPS_BUCKET``.

        Raises:
            UsageError: the endpoint or credentials are not set.
        """
        endpoint = get(ENDPOINT_VAR, env)
        if not endpoint:
            raise UsageError(f"{ENDPOINT_VAR} is not set: no object store configured")
        secure = get(SECURE_VAR, env)
        for scheme in ("https://", "http://"):
            if endpoint.startswith(scheme):
                secure = scheme == "https://"
                endpoint = endpoint[len(scheme) :]
        endpoint = endpoint.rstrip("/")
        access_key, secret_key = get(ACCESS_KEY_VAR, env), get(SECRET_KEY_VAR, env)
        missing = [
            name
            for name, value in ((ACCESS_KEY_VAR, access_key), (SECRET_KEY_VAR, secret_key))
            if not value
        ]
        if missing:
            raise UsageError(f"{', '.join(missing)} not set for store {endpoint}")
        return cls(
            endpoint=endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            bucket=get(BUCKET_VAR, env),
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


@dataclass(frozen=True)
class ServingSettings:
    """The model server's settings (``mlops serve`` and the predictor container)."""

    reconcile_seconds: float = VARIABLES[RECONCILE_SECONDS_VAR].default
    retry_failed_seconds: float = VARIABLES[RETRY_FAILED_SECONDS_VAR].default
    inference_log: bool = VARIABLES[INFERENCE_LOG_VAR].default
    inference_log_flush_seconds: float = VARIABLES[INFERENCE_LOG_FLUSH_SECONDS_VAR].default
    inference_log_flush_rows: int = VARIABLES[INFERENCE_LOG_FLUSH_ROWS_VAR].default
    inference_log_max_rows: int = VARIABLES[INFERENCE_LOG_MAX_ROWS_VAR].default
    max_body_bytes: int = VARIABLES[MAX_BODY_BYTES_VAR].default
    max_rows: int = VARIABLES[MAX_ROWS_VAR].default
    max_explain_rows: int = VARIABLES[MAX_EXPLAIN_ROWS_VAR].default
    max_response_values: int = VARIABLES[MAX_RESPONSE_VALUES_VAR].default
    max_scored_values: int = VARIABLES[MAX_SCORED_VALUES_VAR].default
    max_batch_rows: int = VARIABLES[MAX_BATCH_ROWS_VAR].default
    max_batch_wait_ms: float = VARIABLES[MAX_BATCH_WAIT_MS_VAR].default
    access_log: bool = VARIABLES[ACCESS_LOG_VAR].default
    log_level: str = VARIABLES[LOG_LEVEL_VAR].default
    header_timeout_seconds: float = VARIABLES[HEADER_TIMEOUT_SECONDS_VAR].default
    body_timeout_seconds: float = VARIABLES[BODY_TIMEOUT_SECONDS_VAR].default
    admin_api: bool = VARIABLES[ADMIN_API_VAR].default
    admin_token: str | None = field(default=VARIABLES[ADMIN_TOKEN_VAR].default, repr=False)
    feedback_api: bool = VARIABLES[FEEDBACK_API_VAR].default
    feedback_token: str | None = field(default=VARIABLES[FEEDBACK_TOKEN_VAR].default, repr=False)

    @property
    def admin_enabled(self) -> bool:
        """The admin endpoints are on: opted in (``MLOPS_ADMIN_API``) *and* a token is set."""
        return bool(self.admin_api and self.admin_token)

    @property
    def feedback_enabled(self) -> bool:
        """The feedback endpoint is on: opted in (``MLOPS_FEEDBACK_API``) *and* a token is set."""
        return bool(self.feedback_api and self.feedback_token)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingSettings:
        """Reads the ``MLOPS_*`` serving variables.

        Raises:
            UsageError: a value that does not parse, named.
        """
        return cls(
            reconcile_seconds=get(RECONCILE_SECONDS_VAR, env),
            retry_failed_seconds=get(RETRY_FAILED_SECONDS_VAR, env),
            inference_log=get(INFERENCE_LOG_VAR, env),
            inference_log_flush_seconds=get(INFERENCE_LOG_FLUSH_SECONDS_VAR, env),
            inference_log_flush_rows=get(INFERENCE_LOG_FLUSH_ROWS_VAR, env),
            inference_log_max_rows=get(INFERENCE_LOG_MAX_ROWS_VAR, env),
            max_body_bytes=get(MAX_BODY_BYTES_VAR, env),
            max_rows=get(MAX_ROWS_VAR, env),
            max_explain_rows=get(MAX_EXPLAIN_ROWS_VAR, env),
            max_response_values=get(MAX_RESPONSE_VALUES_VAR, env),
            max_scored_values=get(MAX_SCORED_VALUES_VAR, env),
            max_batch_rows=get(MAX_BATCH_ROWS_VAR, env),
            max_batch_wait_ms=get(MAX_BATCH_WAIT_MS_VAR, env),
            access_log=get(ACCESS_LOG_VAR, env),
            log_level=get(LOG_LEVEL_VAR, env).upper(),
            header_timeout_seconds=get(HEADER_TIMEOUT_SECONDS_VAR, env),
            body_timeout_seconds=get(BODY_TIMEOUT_SECONDS_VAR, env),
            admin_api=get(ADMIN_API_VAR, env),
            admin_token=get(ADMIN_TOKEN_VAR, env) or None,
            feedback_api=get(FEEDBACK_API_VAR, env),
            feedback_token=get(FEEDBACK_TOKEN_VAR, env) or None,
        )
