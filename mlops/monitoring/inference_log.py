"""The inference-log format: what the model server writes and the drift step reads.

Objects ``inference-logs/<model>/<YYYY-MM-DD>/<timestamp>-<uuid>.parquet`` in the
project's bucket, one per flush. Each row holds the request's feature columns plus
``prediction``, ``model_version`` and ``timestamp`` (UTC). The writer is
:class:`serving.inference_log.InferenceLogger`; :func:`read_inference_logs` reads them back.
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
RESERVED_COLUMNS = ("prediction", "model_version", "timestamp")


def log_key(model_name: str, day: date, stamp: str) -> str:
    """The key of one new log object of ``model_name`` written on ``day``."""
    return f"{LOGS_PREFIX}/{model_name}/{day.isoformat()}/{stamp}-{uuid.uuid4().hex[:12]}.parquet"


def read_inference_logs(
    store: ObjectStore, model_name: str, since: datetime | None = None
) -> pd.DataFrame:
    """All logged rows of a model (optionally only those at or after ``since``), oldest first.

    A naive ``since`` is taken as UTC. Returns an empty frame with the
    ``prediction``, ``model_version`` and ``timestamp`` columns when nothing is logged.
    """
    prefix = f"{LOGS_PREFIX}/{model_name}/"
    keys = sorted(k for k in store.list(prefix) if k.endswith(".parquet"))
    if since is not None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        since = since.astimezone(UTC)
        first_day = since.date().isoformat()
        keys = [k for k in keys if k[len(prefix) : len(prefix) + 10] >= first_day]
    frames = [pd.read_parquet(io.BytesIO(store.get_bytes(k))) for k in keys]
    if not frames:
        return pd.DataFrame(
            {
                "prediction": pd.Series(dtype=object),
                "model_version": pd.Series(dtype=object),
                "timestamp": pd.Series(dtype="datetime64[us, UTC]"),
            }
        )
    frame = pd.concat(frames, ignore_index=True)
    if since is not None:
        frame = frame[frame["timestamp"] >= pd.Timestamp(since)]
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
