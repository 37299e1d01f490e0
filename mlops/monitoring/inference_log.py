"""The inference-log format: what the model server writes and the drift step reads.

Objects ``inference-logs/<model>/<YYYY-MM-DD>/<timestamp>-<uuid>.parquet`` in the
project's bucket, one per flush. Each row holds the request's feature columns plus
``prediction``, ``model_version``, ``timestamp`` (UTC), ``request_id`` (the row's id:
the request id for a one-row request, ``<request-id>-<row index>`` for a multi-row
one) and ``role`` (``stable``, ``canary``, later ``shadow``). The writer is
:class:`serving.inference_log.InferenceLogger`; :func:`read_inference_logs` reads them back.

Objects written before request ids existed have neither of the last two columns:
they read as ``request_id`` null (such rows never match a feedback label) and
``role`` ``"stable"`` (the only role that served before canaries were logged).
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from mlops.core.store import ObjectStore

LOGS_PREFIX = "inference-logs"
RESERVED_COLUMNS = ("prediction", "model_version", "timestamp", "request_id", "role")
#: The role of rows logged before the ``role`` column existed.
DEFAULT_ROLE = "stable"


def log_key(model_name: str, day: date, stamp: str) -> str:
    """The key of one new log object of ``model_name`` written on ``day``."""
    return f"{LOGS_PREFIX}/{model_name}/{day.isoformat()}/{stamp}-{uuid.uuid4().hex[:12]}.parquet"


def _utc(since: datetime) -> datetime:
    """``since`` in UTC; a naive one is taken as UTC."""
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return since.astimezone(UTC)


def _log_keys(store: ObjectStore, model_name: str, since: datetime | None) -> list[str]:
    """The model's log objects, in key (time) order, from the day of ``since`` on."""
    prefix = f"{LOGS_PREFIX}/{model_name}/"
    keys = sorted(k for k in store.list(prefix) if k.endswith(".parquet"))
    if since is not None:
        first_day = _utc(since).date().isoformat()
        keys = [k for k in keys if k[len(prefix) : len(prefix) + 10] >= first_day]
    return keys


def _with_id_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """An object's rows with ``request_id`` and ``role``, as old objects without them read."""
    if "request_id" not in frame.columns:
        frame["request_id"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    if "role" not in frame.columns:
        frame["role"] = DEFAULT_ROLE
    else:
        frame["role"] = frame["role"].fillna(DEFAULT_ROLE)
    return frame


def empty_log_frame() -> pd.DataFrame:
    """The frame :func:`read_inference_logs` returns when nothing is logged: the reserved columns."""
    return pd.DataFrame(
        {
            "prediction": pd.Series(dtype=object),
            "model_version": pd.Series(dtype=object),
            "timestamp": pd.Series(dtype="datetime64[us, UTC]"),
            "request_id": pd.Series(dtype=object),
            "role": pd.Series(dtype=object),
        }
    )


def read_inference_logs(
    store: ObjectStore, model_name: str, since: datetime | None = None
) -> pd.DataFrame:
    """All logged rows of a model (optionally only those at or after ``since``), oldest first.

    A naive ``since`` is taken as UTC. Returns an empty frame with the reserved
    columns (:data:`RESERVED_COLUMNS`) when nothing is logged. Rows of objects
    written before request ids existed have ``request_id`` None and ``role``
    :data:`DEFAULT_ROLE`.
    """
    keys = _log_keys(store, model_name, since)
    frames = [_with_id_columns(pd.read_parquet(io.BytesIO(store.get_bytes(k)))) for k in keys]
    if not frames:
        return empty_log_frame()
    frame = pd.concat(frames, ignore_index=True)
    if since is not None:
        frame = frame[frame["timestamp"] >= pd.Timestamp(_utc(since))]
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


def known_request_ids(
    store: ObjectStore, model_name: str, since: datetime | None = None
) -> set[str]:
    """The request ids of every logged row of a model (at or after ``since``).

    Reads only the ``request_id`` and ``timestamp`` columns of each object, so a
    long log is cheap to check feedback against; objects without request ids add none.
    """
    import pyarrow.parquet as pq  # type: ignore[import-untyped]  # no stubs; only its schema reader

    ids: set[str] = set()
    for key in _log_keys(store, model_name, since):
        source = io.BytesIO(store.get_bytes(key))
        names = set(pq.read_schema(source).names)
        if "request_id" not in names:
            continue
        source.seek(0)
        table = pq.read_table(source, columns=["request_id", "timestamp"]).to_pandas()
        if since is not None:
            table = table[table["timestamp"] >= pd.Timestamp(_utc(since))]
        ids.update(str(v) for v in table["request_id"].dropna())
    return ids
