"""The Parquet tables tasks hand each other (``mlops.core.data.write_parquet``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mlops.core.data import read_table, write_parquet


def test_write_parquet_round_trips_every_dtype_and_skips_dictionaries_for_floats(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=500),
            "count": rng.integers(0, 5, 500),
            "grade": rng.choice(np.array(["low", "high"], dtype=object), 500),
            "flag": rng.random(500) < 0.5,
            "maybe": pd.array([1, None] * 250, dtype="Int64"),
        }
    )
    frame.loc[3, "x"] = np.nan
    path = tmp_path / "train.parquet"
    write_parquet(frame, path)
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
    pd.testing.assert_frame_equal(read_table(str(path)), frame)
    chunk = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {
        chunk.column(i).path_in_schema: chunk.column(i).encodings for i in range(chunk.num_columns)
    }
    assert not any("DICTIONARY" in e or "RLE_DICTIONARY" in e for e in encodings["x"])
    assert any("DICTIONARY" in e for e in encodings["grade"])
