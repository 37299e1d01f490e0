"""Checks of a table's values that scikit-learn would otherwise fail on deep inside a fit.

An ``inf`` cell passes every column check and then stops the imputer with
"Input X contains infinity"; an unlabelled holdout row stops the scorer with a
type error about ``float`` and ``str``. These name the column and the count
instead, as a :class:`~mlops.core.errors.DataError` (exit 2).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from mlops.core.errors import DataError

__all__ = ["check_finite", "check_labelled", "infinite_counts"]


def infinite_counts(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> dict[str, int]:
    """How many ``inf`` / ``-inf`` cells each numeric column holds (only columns that hold some).

    Args:
        frame: The table.
        columns: The columns to look at (default: all); non-numeric ones are skipped.
    """
    names = list(frame.columns) if columns is None else [c for c in columns if c in frame]
    counts: dict[str, int] = {}
    for name in names:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
            continue
        # to_numpy with na_value: nullable dtypes (Int64, Float64) hold pd.NA, which isinf rejects.
        infinite = int(np.isinf(column.to_numpy(dtype=np.float64, na_value=np.nan)).sum())
        if infinite:
            counts[str(name)] = infinite
    return counts


def check_finite(frame: pd.DataFrame, source: str, columns: Iterable[str] | None = None) -> None:
    """Requires every numeric cell of ``columns`` (default: all) to be finite or missing.

    Missing cells are fine (training imputes them); infinite ones are not.

    Raises:
        DataError: naming each column with infinite cells and how many.
    """
    counts = infinite_counts(frame, columns)
    if counts:
        listed = ", ".join(f"{name!r} ({count})" for name, count in counts.items())
        raise DataError(
            f"{source} has infinite values (inf or -inf) in column(s) {listed}; "
            "use finite numbers, or leave the cells empty to have them imputed"
        )


def check_labelled(frame: pd.DataFrame, target_column: str, source: str) -> None:
    """Requires a value in ``target_column`` on every row (a scored table must be labelled).

    Raises:
        DataError: the target is missing, or some rows have no label (counted).
    """
    if target_column not in frame.columns:
        raise DataError(
            f"target column {target_column!r} not found in {source}; "
            f"columns are: {', '.join(map(str, frame.columns))}"
        )
    missing = int(frame[target_column].isna().sum())
    if missing:
        raise DataError(
            f"target column {target_column!r} in {source} has {missing} missing value(s) "
            f"of {len(frame)} rows; every row must be labelled"
        )
