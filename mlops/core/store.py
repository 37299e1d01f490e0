"""Object store access through the MinIO client (works with MinIO, SeaweedFS, S3).

Keys are plain strings under the configured bucket; ``s3://bucket/key`` URIs
name objects in any bucket the credentials reach.

TLS: with ``MLOPS_S3_SECURE`` (or an ``https://`` endpoint) the store's
certificate is verified against ``MLOPS_S3_CA_BUNDLE`` when set (a private CA,
e.g. the embedded store's under ``$MLOPS_HOME/store/tls/``), else against the
system's CAs. A certificate that does not verify is a :class:`StoreError` that
names ``MLOPS_S3_CA_BUNDLE``; so is a TLS mismatch (``MLOPS_S3_SECURE``).
"""

from __future__ import annotations

import builtins
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.core import settings as _settings
from mlops.core.errors import StoreError, UsageError, WriteConflict
from mlops.core.settings import CA_BUNDLE_VAR, SECURE_VAR, StoreSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class S3Uri:
    """A parsed ``s3://bucket/key`` URI."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        """Splits ``s3://bucket/key`` into its bucket and key.

        Raises:
            UsageError: ``uri`` is not an ``s3://`` URI or names no bucket.
        """
        if not uri.startswith("s3://"):
            raise UsageError(f"not an s3:// URI: {uri!r}")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket:
            raise UsageError(f"s3 URI has no bucket: {uri!r}")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def _is_missing(exc: BaseException | None) -> bool:
    """Whether an S3 error says the object (or its bucket) does not exist."""
    from minio.error import S3Error

    return isinstance(exc, S3Error) and exc.code in (
        "NoSuchKey",
        "NoSuchBucket",
        "NoSuchObject",
        "NotFound",
    )


def _tls_hint(exc: BaseException, secure: bool, ca_bundle: Path | None) -> str | None:
    """What to do about a TLS failure, naming the setting to change; None for other errors."""
    import ssl

    seen: BaseException | None = exc
    texts = []
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            texts.append("CERTIFICATE_VERIFY_FAILED")
        texts.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    text = " ".join(texts)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        trusted = f"the CA bundle {ca_bundle}" if ca_bundle else "the system's CAs"
        return (
            f"the store's TLS certificate did not verify against {trusted} (certificate "
            f"verify failed); set {CA_BUNDLE_VAR} to the PEM file of the CA that issued it"
        )
    if secure and ("WRONG_VERSION_NUMBER" in text or "wrong version number" in text):
        return f"the store does not speak TLS on this port; set {SECURE_VAR}=false (or use http://)"
    if not secure and "HTTP request to an HTTPS server" in text:
        return f"the store speaks TLS on this port; set {SECURE_VAR}=true (or use https://)"
    return None


class ObjectStore:
    """Thin, typed wrapper over ``minio.Minio`` bound to one bucket."""

    def __init__(
        self, settings: StoreSettings, timeout: float = 10.0, ca_bundle: Path | None = None
    ) -> None:
        """Binds a client to the store and bucket of ``settings``.

        Args:
            settings: Endpoint, credentials, TLS and bucket.
            timeout: Connect timeout in seconds (reads get at least 30 s).
            ca_bundle: PEM of the CA(s) to verify the store's certificate against
                (default: ``MLOPS_S3_CA_BUNDLE``, else the system's CAs); TLS only.

        Raises:
            UsageError: the CA bundle is not a readable file.
        """
        import urllib3
        from minio import Minio

        self.settings = settings
        self.bucket = settings.bucket
        bundle = ca_bundle if ca_bundle is not None else _settings.get(CA_BUNDLE_VAR)
        self.ca_bundle: Path | None = Path(bundle) if bundle is not None else None
        tls: dict[str, Any] = {}
        if settings.secure and self.ca_bundle is not None:
            if not self.ca_bundle.is_file():
                raise UsageError(f"{CA_BUNDLE_VAR} {self.ca_bundle} is not a readable PEM file")
            tls = {"cert_reqs": "CERT_REQUIRED", "ca_certs": str(self.ca_bundle)}
        # Short timeouts and few retries: a down store must fail fast, not hang a
        # pipeline step or the serving process's background log flushes.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=max(timeout, 30.0)),
            retries=urllib3.Retry(
                total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
            maxsize=16,
            **tls,
        )
        self.client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            http_client=http,
        )

    @classmethod
    def from_env(cls) -> ObjectStore:
        """Store configured by ``MLOPS_S3_*`` variables."""
        return cls(StoreSettings.from_env())

    # -- naming -------------------------------------------------------------
    def uri(self, key: str) -> str:
        """The ``s3://`` URI of ``key`` in this store's bucket."""
        return f"s3://{self.bucket}/{key}"

    def _locate(self, key_or_uri: str) -> tuple[str, str]:
        if key_or_uri.startswith("s3://"):
            parsed = S3Uri.parse(key_or_uri)
            return parsed.bucket, parsed.key
        return self.bucket, key_or_uri

    def _wrap(self, action: str, target: str, exc: Exception) -> StoreError:
        hint = _tls_hint(exc, self.settings.secure, self.ca_bundle)
        return StoreError(
            f"object store {self.settings.endpoint}: {action} {target} failed: {hint or exc}"
        )

    # -- bucket -------------------------------------------------------------
    def ensure_bucket(self) -> None:
        """Creates the bucket when it does not exist."""
        try:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)
        except Exception as exc:  # urllib3 and S3 errors alike
            raise self._wrap("create bucket", self.bucket, exc) from exc

    # -- objects ------------------------------------------------------------
    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        """Writes ``data`` to ``key`` (a key in the bucket or an ``s3://`` URI).

        Returns:
            The object's ``s3://`` URI.
        """
        bucket, name = self._locate(key)
        try:
            self.client.put_object(
                bucket, name, io.BytesIO(data), len(data), content_type=content_type
            )
        except Exception as exc:
            raise self._wrap("put", f"s3://{bucket}/{name}", exc) from exc
        return f"s3://{bucket}/{name}"

    def put_json(self, key: str, payload: Any) -> str:
        """Writes ``payload`` as indented, key-sorted JSON; returns the object's URI."""
        data = json.dumps(payload, indent=2, sort_keys=True, default=str).encode()
        return self.put_bytes(key, data, "application/json")

    def put_file(self, key: str, path: Path) -> str:
        """Uploads the local file ``path`` to ``key``; returns the object's URI."""
        bucket, name = self._locate(key)
        try:
            self.client.fput_object(bucket, name, str(path))
        except Exception as exc:
            raise self._wrap("upload", f"s3://{bucket}/{name}", exc) from exc
        return f"s3://{bucket}/{name}"

    def _read(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and ETag."""
        bucket, name = self._locate(key)
        response = None
        try:
            response = self.client.get_object(bucket, name)
            return response.read(), response.headers.get("ETag", "")
        except Exception as exc:
            raise self._wrap("get", f"s3://{bucket}/{name}", exc) from exc
        finally:
            if response is not None:
                response.close()
                response.release_conn()

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes.

        Raises:
            StoreError: the object does not exist or cannot be read.
        """
        return self._read(key)[0]

    def get_json(self, key: str) -> Any:
        """The object parsed as JSON."""
        return json.loads(self.get_bytes(key))

    # -- optimistic concurrency ------------------------------------------------
    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and ETag, or None when it does not exist."""
        try:
            return self._read(key)
        except StoreError as exc:
            if _is_missing(exc.__cause__):
                return None
            raise

    def put_if_unchanged(
        self, key: str, data: bytes, etag: str | None, content_type: str = "application/json"
    ) -> None:
        """Writes only if the object still has ``etag`` (None: only if it does not exist).

        S3 conditional writes (``If-Match`` / ``If-None-Match: *``), honoured by
        MinIO, SeaweedFS and AWS S3. minio-py's public ``put_object`` cannot send
        them, so this goes through its single-part ``_put_object``.

        Raises:
            WriteConflict: somebody else wrote the object since ``etag`` was read.
        """
        from minio.error import S3Error

        bucket, name = self._locate(key)
        condition = {"If-Match": etag} if etag else {"If-None-Match": "*"}
        try:
            # Private minio-py member on purpose: see the docstring.
            self.client._put_object(
                bucket,
                name,
                data,
                headers={"Content-Type": content_type, **condition},
            )
        except S3Error as exc:
            if exc.code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise WriteConflict(
                    f"s3://{bucket}/{name} changed while it was being updated"
                ) from exc
            raise self._wrap("put", f"s3://{bucket}/{name}", exc) from exc
        except Exception as exc:
            raise self._wrap("put", f"s3://{bucket}/{name}", exc) from exc

    def exists(self, key: str) -> bool:
        """Whether the object exists (any other store error raises :class:`StoreError`)."""
        bucket, name = self._locate(key)
        try:
            self.client.stat_object(bucket, name)
            return True
        except Exception as exc:
            if _is_missing(exc):
                return False
            raise self._wrap("stat", f"s3://{bucket}/{name}", exc) from exc

    def list(self, prefix: str, recursive: bool = True) -> Iterator[str]:
        """Yields object keys (without bucket) under ``prefix``."""
        bucket, name = self._locate(prefix)
        try:
            for obj in self.client.list_objects(bucket, prefix=name, recursive=recursive):
                yield obj.object_name
        except Exception as exc:
            raise self._wrap("list", f"s3://{bucket}/{name}", exc) from exc

    # -- folders ------------------------------------------------------------
    # (``builtins.list`` below: inside this class, ``list`` is the method above.)
    def upload_dir(
        self, local_dir: Path, prefix: str, exclude: tuple[str, ...] = ()
    ) -> builtins.list[str]:
        """Uploads every file below ``local_dir`` to ``prefix/<relative path>``.

        Returns:
            The relative paths uploaded, sorted.
        """
        prefix = prefix.rstrip("/")
        uploaded = []
        for path in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
            relative = path.relative_to(local_dir).as_posix()
            if relative in exclude:
                continue
            self.put_file(f"{prefix}/{relative}", path)
            uploaded.append(relative)
        return uploaded

    def download_dir(self, prefix: str, local_dir: Path) -> builtins.list[str]:
        """Downloads every object under ``prefix/`` into ``local_dir``.

        Raises:
            StoreError: nothing exists under the prefix, or a download failed.
        """
        bucket, name = self._locate(prefix)
        name = name.rstrip("/") + "/"
        local_dir = Path(local_dir)
        fetched = []
        for key in self.list(f"s3://{bucket}/{name}"):
            relative = key[len(name) :]
            if not relative or ".." in Path(relative).parts:
                continue
            target = local_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.client.fget_object(bucket, key, str(target))
            except Exception as exc:
                raise self._wrap("download", f"s3://{bucket}/{key}", exc) from exc
            fetched.append(relative)
        if not fetched:
            raise StoreError(f"nothing found under s3://{bucket}/{name}")
        return sorted(fetched)
