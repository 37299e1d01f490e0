"""read_table, fingerprint and parse_columns on real files and the real store."""

from __future__ import annotations

import pandas as pd
import pytest

from mlops.core.data import fingerprint, parse_columns, read_table
from mlops.core.errors import DataError, UsageError
from tests.training_helpers import iris_with_color


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    return iris_with_color()


def test_reads_csv_by_path(tmp_path, iris):
    path = tmp_path / "iris.csv"
    iris.to_csv(path, index=False)
    frame = read_table(str(path))
    pd.testing.assert_frame_equal(frame, iris)


def test_reads_parquet_by_suffix_and_file_uri(tmp_path, iris):
    for suffix in (".parquet", ".pq"):
        path = tmp_path / f"iris{suffix}"
        iris.to_parquet(path, index=False)
        pd.testing.assert_frame_equal(read_table(path.as_uri()), iris)
        pd.testing.assert_frame_equal(read_table(str(path)), iris)


def test_file_uri_with_escaped_characters(tmp_path, iris):
    path = tmp_path / "with space" / "iris.csv"
    path.parent.mkdir()
    iris.to_csv(path, index=False)
    assert "%20" in path.as_uri()
    assert len(read_table(path.as_uri())) == len(iris)


def test_reads_csv_and_parquet_from_s3(store_env, iris):
    store = store_env
    uri_csv = store.put_bytes("data/iris.csv", iris.to_csv(index=False).encode())
    uri_parquet = store.put_bytes("data/iris.parquet", iris.to_parquet(index=False))
    pd.testing.assert_frame_equal(read_table(uri_csv), iris)
    pd.testing.assert_frame_equal(read_table(uri_parquet), iris)


def test_missing_s3_object_names_the_uri(store_env):
    uri = store_env.uri("data/absent.csv")
    with pytest.raises(DataError, match="absent.csv") as info:
        read_table(uri)
    assert uri in str(info.value)


def test_missing_file_names_the_uri(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="no such file") as info:
        read_table(str(missing))
    assert str(missing) in str(info.value)
    with pytest.raises(DataError, match="nope.csv"):
        read_table(missing.as_uri())


def test_empty_file_and_header_only_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty") as info:
        read_table(str(empty))
    assert str(empty) in str(info.value)
    header = tmp_path / "header.csv"
    header.write_text("a,b,target\n")
    with pytest.raises(DataError, match="no rows") as info:
        read_table(str(header))
    assert str(header) in str(info.value)


def test_blank_uri():
    for uri in ("", "   "):
        with pytest.raises(DataError, match="empty"):
            read_table(uri)


@pytest.mark.parametrize(
    "uri", ["http://example.com/data.csv", "gs://bucket/data.csv", "ftp://host/data.parquet"]
)
def test_unsupported_scheme_names_the_uri(uri):
    with pytest.raises(DataError, match="unsupported scheme") as info:
        read_table(uri)
    assert uri in str(info.value)


def test_corrupt_parquet_names_the_uri(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match="cannot read") as info:
        read_table(str(path))
    assert str(path) in str(info.value)


def test_data_error_is_a_usage_error():
    assert issubclass(DataError, UsageError)
    assert DataError("x").exit_code == 2


def test_fingerprint_is_stable_and_content_sensitive(tmp_path, iris):
    path = tmp_path / "iris.csv"
    iris.to_csv(path, index=False)
    first = fingerprint(read_table(str(path)))
    assert first == fingerprint(read_table(str(path)))
    assert first == fingerprint(iris.copy())
    assert len(first) == 64 and int(first, 16) >= 0
    # The index does not matter; values, column names and order do.
    assert fingerprint(iris.set_axis(range(1000, 1000 + len(iris)))) == first
    changed = iris.copy()
    changed.loc[0, "sepal_length"] += 0.1
    assert fingerprint(changed) != first
    assert fingerprint(iris.rename(columns={"color": "colour"})) != first
    assert fingerprint(iris[list(reversed(iris.columns))]) != first
    assert fingerprint(iris.iloc[::-1]) != first


def test_parse_columns():
    assert parse_columns(None) == []
    assert parse_columns("") == []
    assert parse_columns(" a, b ,,c ") == ["a", "b", "c"]
    assert parse_columns(["a ", " ", "b"]) == ["a", "b"]


def test_check_readable_finds_missing_sources_without_reading(tmp_path, store_env):
    from mlops.core.data import check_readable

    present = tmp_path / "present.csv"
    present.write_text("a\n1\n")
    check_readable(str(present))
    check_readable(f"file://{present}")
    store_env.put_bytes("tables/t.csv", b"a\n1\n")
    check_readable(store_env.uri("tables/t.csv"))
    for uri, message in (
        (str(tmp_path / "absent.csv"), "no such file"),
        (store_env.uri("tables/absent.csv"), "no such object"),
        ("http://example.invalid/t.csv", "unsupported scheme"),
        ("  ", "empty"),
    ):
        with pytest.raises(DataError, match=message):
            check_readable(uri)
