"""Reading tabular data from a local path, ``file://`` or ``s3://`` URI."""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from mlops.core.errors import DataError, MlopsError

logger = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq")


def local_path(uri: str) -> Path:
    """The path named by a plain path or a ``file://`` URI (percent-escapes decoded)."""
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    return Path(uri).expanduser()


def _parse(data: bytes | Path, name: str) -> pd.DataFrame:
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    if name.lower().endswith(PARQUET_SUFFIXES):
        return pd.read_parquet(source)
    return pd.read_csv(source)


def _checked_uri(uri: str) -> str:
    if not uri or not uri.strip():
        raise DataError("data URI is empty")
    uri = uri.strip()
    if "://" in uri and not uri.startswith(("file://", "s3://")):
        raise DataError(f"cannot read {uri!r}: unsupported scheme (use a path, file:// or s3://)")
    return uri


def check_readable(uri: str) -> None:
    """Fails as :func:`read_table` would on a missing source, without reading the data.

    For pre-run checks of tables a run may never need (the retraining data of a
    monitoring pass without drift) or reads anyway (a large production table).

    Raises:
        DataError: empty URI, unsupported scheme, or no such file or object.
    """
    uri = _checked_uri(uri)
    if uri.startswith("s3://"):
        from mlops.core.store import ObjectStore

        try:
            found = ObjectStore.from_env().exists(uri)
        except MlopsError as exc:
            raise DataError(f"cannot read {uri!r}: {exc}") from exc
        if not found:
            raise DataError(f"cannot read {uri!r}: no such object")
    elif not local_path(uri).is_file():
        raise DataError(f"cannot read {uri!r}: no such file")


def read_table(uri: str) -> pd.DataFrame:
    """Reads a CSV or Parquet table (by suffix; CSV otherwise).

    Args:
        uri: A local path, ``file://`` URI or ``s3://bucket/key`` (store settings
            come from the ``MLOPS_S3_*`` environment).

    Raises:
        DataError: the URI cannot be read, cannot be parsed, or holds no rows.
    """
    uri = _checked_uri(uri)
    try:
        if uri.startswith("s3://"):
            from mlops.core.store import ObjectStore

            frame = _parse(ObjectStore.from_env().get_bytes(uri), uri)
        else:
            path = local_path(uri)
            if not path.is_file():
                raise DataError(f"cannot read {uri!r}: no such file")
            frame = _parse(path, path.name)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"data at {uri!r} is empty") from exc
    except MlopsError as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"cannot read {uri!r}: {exc}") from exc
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {uri!r}: {exc}") from exc
    if frame.empty:
        raise DataError(f"data at {uri!r} is empty (no rows)")
    logger.info("read %d rows x %d columns from %s", len(frame), frame.shape[1], uri)
    return frame


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a table (values, column names and order)."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()


def parse_columns(value: str | list[str] | None) -> list[str]:
    """Parses a comma-separated column list (empty string -> no columns)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [c.strip() for c in value if c.strip()]
    return [c.strip() for c in value.split(",") if c.strip()]
