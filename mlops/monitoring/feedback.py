"""The feedback format: ground-truth labels for logged predictions, joined by request id.

Objects ``feedback/<model>/<YYYY-MM-DD>/<stamp>-<uuid>.parquet`` in the project's
bucket, with the columns ``request_id`` (text), ``label`` (text: ``str(value)`` of
the label the client sent) and ``received_at`` (UTC timestamp). When an id has
several labels, the one received last wins (:func:`read_feedback`).

The model server writes the labels ``POST /v1/models/NAME/feedback`` receives
(its writer lives in ``serving/``); :func:`write_feedback` writes batches (the
``mlops feedback`` command) and :func:`load_labels` reads a batch from a CSV or
Parquet table. Every id and label is checked here before anything is stored:
ids are short strings of a safe alphabet (they become keys of joins and metric
reports), labels are bounded text. Labels are client data: whatever reads them
into a report escapes them.
"""

from __future__ import annotations

import io
import logging
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.core.errors import DataError, UsageError

if TYPE_CHECKING:
    from mlops.core.store import ObjectStore

logger = logging.getLogger(__name__)

FEEDBACK_PREFIX = "feedback"
FEEDBACK_COLUMNS = ("request_id", "label", "received_at")
#: Longest request id (characters).
MAX_ID_CHARS = 256
#: Characters a request id may hold: what the server generates and safe in any key or log line.
ID_ALPHABET = "A-Za-z0-9._:-"
_ID = re.compile(rf"[{ID_ALPHABET}]{{1,{MAX_ID_CHARS}}}")
#: Longest label (characters): labels are class names, not documents.
MAX_LABEL_CHARS = 1024
#: Most rows one feedback object holds; a larger batch is written as several objects.
MAX_ROWS_PER_OBJECT = 50_000
#: Id columns :func:`load_labels` accepts, in order of preference.
ID_COLUMNS = ("request_id", "id")
LABEL_COLUMN = "label"


def feedback_key(model_name: str, day: date, stamp: str) -> str:
    """The key of one new feedback object of ``model_name`` written on ``day``."""
    return (
        f"{FEEDBACK_PREFIX}/{model_name}/{day.isoformat()}/{stamp}-{uuid.uuid4().hex[:12]}.parquet"
    )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def check_request_id(value: Any, where: str = "request id") -> str:
    """``value`` when it is a valid request id.

    Raises:
        UsageError: not a string, empty, longer than :data:`MAX_ID_CHARS`, or
            holding a character outside ``[A-Za-z0-9._:-]``; the message names ``where``.
    """
    if not isinstance(value, str):
        raise UsageError(f"{where}: the id must be a string, got {type(value).__name__}")
    if not value:
        raise UsageError(f"{where}: the id is empty")
    if len(value) > MAX_ID_CHARS:
        raise UsageError(
            f"{where}: the id has {len(value)} characters, more than the limit of {MAX_ID_CHARS}"
        )
    if not _ID.fullmatch(value):
        raise UsageError(
            f"{where}: the id {_shown(value)} holds characters outside [{ID_ALPHABET}]"
        )
    return value


def label_text(value: Any, where: str = "label") -> str:
    """A label as stored: ``str(value)``, bounded.

    Raises:
        UsageError: the label is missing (None/NaN), not a scalar, or longer than
            :data:`MAX_LABEL_CHARS`.
    """
    if value is None or isinstance(value, (dict, list, tuple, set, bytes)):
        raise UsageError(
            f"{where}: the label must be a string, number or boolean, got {value!r}"[:200]
        )
    if not isinstance(value, str) and pd.isna(value):
        raise UsageError(f"{where}: the label is missing")
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_LABEL_CHARS:
        raise UsageError(
            f"{where}: the label has {len(text)} characters, more than the limit of "
            f"{MAX_LABEL_CHARS}"
        )
    return text


def _received_at(values: pd.Series | None, rows: int, now: datetime | None) -> pd.Series:
    if values is None:
        stamp = pd.Timestamp(now or datetime.now(UTC))
        stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
        return pd.Series([stamp] * rows, dtype="datetime64[us, UTC]")
    try:
        parsed = pd.to_datetime(values.reset_index(drop=True))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"received_at: not timestamps: {exc}") from exc
    if parsed.isna().any():
        raise UsageError(f"received_at: row {int(parsed.isna().argmax()) + 1} has no timestamp")
    parsed = parsed.dt.tz_localize(UTC) if parsed.dt.tz is None else parsed.dt.tz_convert(UTC)
    return parsed.astype("datetime64[us, UTC]")


def feedback_frame(frame: pd.DataFrame, now: datetime | None = None) -> pd.DataFrame:
    """``frame`` checked and in the stored format, one row per id (the last one of a duplicate wins).

    Args:
        frame: Columns ``request_id`` and ``label``, and optionally ``received_at``
            (default: ``now``).
        now: The receipt time of rows without ``received_at`` (default: the clock).

    Returns:
        ``request_id`` (str), ``label`` (str), ``received_at`` (UTC), in input order.

    Raises:
        UsageError: a missing column, an invalid id, or a missing or oversized
            label (the message names the row).
    """
    if not isinstance(frame, pd.DataFrame):
        raise UsageError(f"feedback must be a table, got {type(frame).__name__}")
    missing = [c for c in ("request_id", LABEL_COLUMN) if c not in frame.columns]
    if missing:
        raise UsageError(
            f"feedback needs the columns request_id and label; missing: {', '.join(missing)}"
        )
    ids = [check_request_id(v, f"row {n}") for n, v in enumerate(frame["request_id"].tolist(), 1)]
    labels = [label_text(v, f"row {n}") for n, v in enumerate(frame[LABEL_COLUMN].tolist(), 1)]
    received = _received_at(frame["received_at"] if "received_at" in frame else None, len(ids), now)
    out = pd.DataFrame(
        {
            "request_id": pd.Series(ids, dtype=object),
            "label": pd.Series(labels, dtype=object),
            "received_at": received,
        }
    )
    return _latest_per_id(out)


def _latest_per_id(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per id: the latest ``received_at``, and on a tie the one that came last."""
    ordered = frame.sort_values("received_at", kind="stable")
    latest = ordered.drop_duplicates("request_id", keep="last")
    return latest.sort_index().reset_index(drop=True)


def write_feedback(
    store: ObjectStore, model_name: str, frame: pd.DataFrame, now: datetime | None = None
) -> list[str]:
    """Checks a batch of labels and writes it as feedback objects of ``model_name``.

    Args:
        store: The project's store.
        model_name: The model the labels are for.
        frame: ``request_id`` and ``label`` (and optionally ``received_at``) per row.
        now: Receipt time of rows without ``received_at`` (default: the clock).

    Returns:
        The keys written, one per :data:`MAX_ROWS_PER_OBJECT` rows (none for an empty batch).

    Raises:
        UsageError: an invalid model name, id or label (nothing is written then).
    """
    from mlops.model.registry import validate_model_name

    validate_model_name(model_name)
    checked = feedback_frame(frame, now)
    keys = []
    for start in range(0, len(checked), MAX_ROWS_PER_OBJECT):
        part = checked.iloc[start : start + MAX_ROWS_PER_OBJECT]
        written = datetime.now(UTC)
        key = feedback_key(model_name, written.date(), written.strftime("%Y%m%dT%H%M%S%fZ"))
        buffer = io.BytesIO()
        part.to_parquet(buffer, index=False)
        store.put_bytes(key, buffer.getvalue())
        keys.append(key)
    logger.info(
        "wrote %d feedback labels of %s in %d object(s)", len(checked), model_name, len(keys)
    )
    return keys


def empty_feedback_frame() -> pd.DataFrame:
    """The frame of no feedback: the three columns, no rows."""
    return pd.DataFrame(
        {
            "request_id": pd.Series(dtype=object),
            "label": pd.Series(dtype=object),
            "received_at": pd.Series(dtype="datetime64[us, UTC]"),
        }
    )


def read_feedback(
    store: ObjectStore, model_name: str, since: datetime | None = None
) -> pd.DataFrame:
    """The labels of a model, one per id: the latest ``received_at`` wins.

    Args:
        store: The project's store.
        model_name: The model.
        since: Only labels received at or after it (a naive one is UTC).

    Returns:
        ``request_id``, ``label`` (text) and ``received_at`` (UTC), ordered by
        ``received_at``. Objects are read in key (write) order, so of two labels
        received at the same instant the one written later wins.
    """
    prefix = f"{FEEDBACK_PREFIX}/{model_name}/"
    keys = sorted(k for k in store.list(prefix) if k.endswith(".parquet"))
    cutoff = None
    if since is not None:
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        cutoff = pd.Timestamp(since)
        first_day = since.date().isoformat()
        keys = [k for k in keys if k[len(prefix) : len(prefix) + 10] >= first_day]
    frames = []
    for key in keys:
        part = pd.read_parquet(io.BytesIO(store.get_bytes(key)))
        missing = [c for c in FEEDBACK_COLUMNS if c not in part.columns]
        if missing:
            raise DataError(f"feedback object {key!r} lacks the columns {missing}")
        frames.append(part[list(FEEDBACK_COLUMNS)])
    if not frames:
        return empty_feedback_frame()
    frame = pd.concat(frames, ignore_index=True)
    frame["request_id"] = frame["request_id"].astype(str)
    frame["label"] = frame["label"].astype(str)
    frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True)
    if cutoff is not None:
        frame = frame[frame["received_at"] >= cutoff]
    latest = frame.sort_values("received_at", kind="stable").drop_duplicates(
        "request_id", keep="last"
    )
    return latest.reset_index(drop=True)


def _id_column(columns: Iterable[Any], source: str) -> str:
    names = [str(c) for c in columns]
    for name in ID_COLUMNS:
        if name in names:
            return name
    raise UsageError(
        f"labels at {source!r} need an id column (request_id or id) and a label column; "
        f"found {names[:20]}"
    )


def load_labels(uri: str) -> pd.DataFrame:
    """A batch of labels from a CSV or Parquet table (path, ``file://`` or ``s3://``).

    The table has an id column (``request_id``, else ``id``) and ``label``; other
    columns are ignored. Ids are read as text: a CSV column of plain numbers
    comes back as their decimal text (``007`` reads as ``7``: write such ids to Parquet).

    Returns:
        ``request_id`` and ``label``, as :func:`write_feedback` takes them (not yet checked).

    Raises:
        DataError: the table cannot be read or is empty.
        UsageError: the id or label column is missing.
    """
    from mlops.core.data import read_table

    table = read_table(uri)
    id_column = _id_column(table.columns, uri)
    if LABEL_COLUMN not in table.columns:
        raise UsageError(f"labels at {uri!r} need a label column; found {list(table.columns)[:20]}")
    ids = [v if isinstance(v, str) or pd.isna(v) else str(v) for v in table[id_column].tolist()]
    return pd.DataFrame({"request_id": ids, "label": table[LABEL_COLUMN].tolist()})


__all__ = [
    "FEEDBACK_COLUMNS",
    "FEEDBACK_PREFIX",
    "MAX_ID_CHARS",
    "MAX_LABEL_CHARS",
    "MAX_ROWS_PER_OBJECT",
    "check_request_id",
    "empty_feedback_frame",
    "feedback_frame",
    "feedback_key",
    "label_text",
    "load_labels",
    "read_feedback",
    "write_feedback",
]
