"""KFP component: read a table and split it into train and test sets."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Output

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def load_split(
    data_uri: str,
    target_column: str,
    train_data: Output[Dataset],
    test_data: Output[Dataset],
    drop_columns: str = "",
    categorical_columns: str = "",
    test_size: float = 0.2,
    seed: int = 42,
) -> NamedTuple("LoadSplitOutputs", [("rows", int), ("data_fingerprint", str)]):  # type: ignore[valid-type]
    """Reads a table and splits it into stratified train and test sets.

    Args:
        data_uri: CSV or Parquet: local path, ``file://`` or ``s3://bucket/key``.
        target_column: Label column; must hold at least two classes.
        train_data: Parquet training split.
        test_data: Parquet test split.
        drop_columns: Comma-separated columns to drop before training.
        categorical_columns: Comma-separated columns that are categorical whatever
            their values look like (not checked for stray non-numbers).
        test_size: Fraction of rows for the test split, in (0, 1).
        seed: Random seed of the split.

    Returns:
        rows: Rows read. data_fingerprint: SHA-256 of the table's content.
    """
    import logging

    from mlops.core.data import fingerprint, read_table, write_parquet
    from mlops.model.training import split_dataset

    logging.basicConfig(level=logging.INFO)
    frame = read_table(data_uri)
    train, test = split_dataset(
        frame,
        target_column,
        test_size,
        seed,
        drop_columns,
        source=data_uri,
        categorical_columns=categorical_columns,
    )
    write_parquet(train, train_data.path)
    write_parquet(test, test_data.path)
    train_data.metadata.update({"rows": len(train), "format": "parquet"})
    test_data.metadata.update({"rows": len(test), "format": "parquet"})
    return len(frame), fingerprint(frame)
