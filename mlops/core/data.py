"""Reading tabular data from a local path, ``file://`` or ``s3://`` URI.

Every table read is held to size limits per text cell and per row
(:data:`MAX_CELL_CHARS`, :data:`MAX_ROW_CHARS`): one huge cell in a training
table otherwise travels into the model's categories, its ``metadata.json`` and
its drift reference (a 1 GB cell once made a 1.07 GB model), and in a
production table into the drift report.

pandas and numpy are imported by the functions that use them: the trust gates
import this module for :func:`local_path` alone, and their tasks need no pandas.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from mlops.core.errors import DataError, MlopsError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

logger = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq")
#: Longest text cell a table may hold (characters; 64 Ki). Tabular features are
#: numbers and short category labels; anything longer is a broken export or free text.
MAX_CELL_CHARS = 64 * 1024
#: Most text characters one row may hold over all its cells (1 Mi).
MAX_ROW_CHARS = 1024 * 1024
#: How many characters of an offending value an error message shows.
SHOWN_CHARS = 40


def local_path(uri: str) -> Path:
    """The path named by a plain path or a ``file://`` URI (percent-escapes decoded)."""
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    return Path(uri).expanduser()


def _parse(data: bytes | Path, name: str) -> pd.DataFrame:
    import pandas as pd

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
    import pandas as pd

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
    check_text_sizes(frame, f"data at {uri!r}")
    logger.info("read %d rows x %d columns from %s", len(frame), frame.shape[1], uri)
    return frame


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Writes ``frame`` (no index) as Parquet: the format of the tables tasks hand each other.

    Float columns are written without dictionary encoding: their values are
    nearly all distinct, and pyarrow would build a dictionary for each column
    only to give it up, which makes the write of a wide numeric table about 1.5x
    slower. Every other column keeps it (categories are stored once).
    """
    import pandas as pd

    dictionary = [
        str(name) for name, dtype in frame.dtypes.items() if not pd.api.types.is_float_dtype(dtype)
    ]
    frame.to_parquet(path, index=False, use_dictionary=dictionary)


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``value`` for an error message: at most ``limit`` characters, quoted and escaped (``repr``)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        return repr(text[:limit]) + f"... ({len(text):,} characters)"
    return repr(text)


def _text_lengths(column: pd.Series) -> np.ndarray | None:
    """Characters of each text cell of ``column`` (0 for other cells); None for a column without text."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        return None
    try:
        lengths = column.str.len()
    except AttributeError:  # an object column without any text (numbers, lists, None)
        return None
    return lengths.fillna(0).to_numpy(dtype=np.int64)


def check_text_sizes(
    frame: pd.DataFrame,
    source: str,
    max_cell_chars: int = MAX_CELL_CHARS,
    max_row_chars: int = MAX_ROW_CHARS,
) -> None:
    """Requires every text cell and every row of ``frame`` to stay within the size limits.

    Args:
        frame: The table.
        source: What it is, for the message ("data at 's3://...'").
        max_cell_chars: Longest text cell (:data:`MAX_CELL_CHARS`).
        max_row_chars: Most text characters in one row (:data:`MAX_ROW_CHARS`).

    Raises:
        DataError: naming the first column with a cell over the limit (its row,
            length and the limit), else the first row over the row limit.
    """
    row_chars: np.ndarray | None = None  # only text counts: numeric columns are skipped
    for position, name in enumerate(frame.columns):
        lengths = _text_lengths(frame.iloc[:, position])  # by position: names may repeat
        if lengths is None or not len(lengths):
            continue
        longest = int(lengths.argmax())
        if lengths[longest] > max_cell_chars:
            raise DataError(
                f"column {shown(name)} in {source} has a cell of {int(lengths[longest]):,} "
                f"characters (data row {longest + 1}, {int((lengths > max_cell_chars).sum())} such "
                f"cell(s)); the limit is {max_cell_chars:,} characters per cell: "
                "a feature value is a number or a short category label"
            )
        row_chars = lengths if row_chars is None else row_chars + lengths
    if row_chars is not None and row_chars.max() > max_row_chars:
        row = int(row_chars.argmax())
        raise DataError(
            f"data row {row + 1} of {source} holds {int(row_chars[row]):,} characters of text; "
            f"the limit is {max_row_chars:,} characters per row"
        )


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a table (values, column names and order)."""
    import pandas as pd

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
