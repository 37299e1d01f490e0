"""Checks that each training column is the feature its kind will make it, before training.

A column's kind is decided from its dtype (:func:`mlops.model.schema.infer_kind`),
so one bad cell changes it silently: a single ``abc`` in a column of numbers makes
the whole column text, hence categorical, with one category per distinct number.
These checks run where the training data is read (:func:`check_features`, from
:func:`mlops.model.training.prepare_frame`) and turn that into a
:class:`~mlops.core.errors.DataError` (exit 2) naming the column:

* a numeric-looking column (at least :data:`NUMERIC_SHARE` of its values parse as
  numbers) with values that do not parse, unless the recipe declares the column
  categorical (``categorical_columns``);
* a categorical column with more distinct values than :data:`MAX_CATEGORIES`, or
  than half the rows (once past :data:`MIN_CATEGORIES_JUDGED`), or whose categories
  together exceed :data:`MAX_CATEGORY_CHARS`: an identifier or free text, which
  would become thousands of one-hot columns and a ``metadata.json`` as large as the data.

Cell and row sizes are checked earlier, by :func:`mlops.core.data.read_table`.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd

from mlops.core.data import SHOWN_CHARS, shown
from mlops.core.errors import DataError
from mlops.model.schema import CATEGORICAL, infer_kind

__all__ = [
    "MAX_CATEGORIES",
    "MAX_CATEGORY_CHARS",
    "MAX_EXAMPLES",
    "MIN_CATEGORIES_JUDGED",
    "NUMERIC_SHARE",
    "check_categories",
    "check_features",
    "check_numeric_lookalike",
]

#: Share of a text column's values that must parse as numbers for it to look numeric.
NUMERIC_SHARE = 0.9
#: Unparsable values an error message lists.
MAX_EXAMPLES = 3
#: Most distinct values a categorical feature may have.
MAX_CATEGORIES = 10_000
#: A categorical with more distinct values than half the rows is an identifier, once
#: it has more than this many (a tiny table has few rows per value by nature).
MIN_CATEGORIES_JUDGED = 50
#: Most characters a categorical feature's categories may hold together (1 Mi):
#: they are written into ``metadata.json`` and checked on every request.
MAX_CATEGORY_CHARS = 1024 * 1024


def _parameter_value(name: str) -> str:
    """``name`` as it would be written in ``-p categorical_columns=...`` (a placeholder if it cannot be)."""
    if name.isprintable() and "," not in name and len(name) <= SHOWN_CHARS:
        return name
    return "<column>"


def check_numeric_lookalike(column: pd.Series, name: str, source: str) -> None:
    """Refuses a text column that is numbers but for a few values that do not parse.

    Args:
        column: A column whose kind would be categorical (text, objects).
        name: Its name, for the message.
        source: The table, for the message.

    Raises:
        DataError: at least :data:`NUMERIC_SHARE` of the non-missing values are
            numbers and some are not; names the column, the count and up to
            :data:`MAX_EXAMPLES` of them (quoted, truncated).
    """
    present = column.dropna()
    if present.empty or pd.api.types.is_bool_dtype(present.dtype):
        return
    parsed = pd.to_numeric(present, errors="coerce")
    unparsable = present[parsed.isna().to_numpy()]
    if unparsable.empty or len(unparsable) > (1 - NUMERIC_SHARE) * len(present):
        return
    examples = ", ".join(shown(v) for v in unparsable.drop_duplicates().head(MAX_EXAMPLES))
    raise DataError(
        f"column {shown(name)} in {source} looks numeric ({len(present) - len(unparsable):,} of "
        f"{len(present):,} values are numbers) but {len(unparsable):,} value(s) are not: "
        f"{examples}; fix them (leave a cell empty for a missing value), or declare the column "
        f"categorical with categorical_columns={_parameter_value(name)}"
    )


def check_categories(column: pd.Series, name: str, source: str) -> None:
    """Refuses a categorical feature with too many, or too long, categories.

    Args:
        column: A column that will be a categorical feature.
        name: Its name, for the message.
        source: The table, for the message.

    Raises:
        DataError: naming the column, its distinct values and the limit broken.
    """
    distinct = column.dropna().astype(str).unique()
    count, rows = len(distinct), len(column)
    if count > MAX_CATEGORIES or (count > MIN_CATEGORIES_JUDGED and count > rows / 2):
        raise DataError(
            f"categorical column {shown(name)} in {source} has {count:,} distinct values in "
            f"{rows:,} rows; the limit is {MAX_CATEGORIES:,} and half the rows: it looks like an "
            f"identifier or free text, not a category; drop it "
            f"(drop_columns={_parameter_value(name)}) or fix its "
            "values"
        )
    chars = sum(map(len, distinct))
    if chars > MAX_CATEGORY_CHARS:
        raise DataError(
            f"categorical column {shown(name)} in {source}: its {count:,} categories hold "
            f"{chars:,} characters; the limit is {MAX_CATEGORY_CHARS:,}"
        )


def check_features(frame: pd.DataFrame, source: str, categorical: Collection[str] = ()) -> None:
    """Checks every feature column of a training table (:func:`check_numeric_lookalike`, :func:`check_categories`).

    Args:
        frame: The features (the target left out).
        source: The table, for messages.
        categorical: Columns the recipe declares categorical: never taken for
            numbers, still bounded in categories.

    Raises:
        DataError: the first column that fails a check.
    """
    for position, name in enumerate(frame.columns):
        column = frame.iloc[:, position]
        if name in categorical:
            check_categories(column, str(name), source)
        elif infer_kind(column) == CATEGORICAL:
            check_numeric_lookalike(column, str(name), source)
            check_categories(column, str(name), source)
