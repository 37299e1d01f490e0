"""The model registry on the real SeaweedFS store: atomic publish, complete versions only."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from mlops.core.errors import StoreError, UsageError
from mlops.core.store import ObjectStore
from mlops.model.registry import (
    COMPLETE_MARKER,
    fetch_model,
    latest_version,
    list_versions,
    new_version,
    parse_model_uri,
    publish_model_dir,
    published_at,
    resolve,
    sha256_file,
    validate_model_name,
)


class RecordingStore(ObjectStore):
    """The real store, remembering the order in which objects were written."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.writes: list[str] = []

    def put_bytes(self, key, data, content_type="application/octet-stream"):
        self.writes.append(key)
        return super().put_bytes(key, data, content_type)

    def put_file(self, key, path):
        self.writes.append(key)
        return super().put_file(key, path)


@pytest.fixture
def model_dir(tmp_path):
    directory = tmp_path / "model"
    (directory / "sub").mkdir(parents=True)
    (directory / "model.skops").write_bytes(b"weights" * 100)
    (directory / "metadata.json").write_text(json.dumps({"model_name": "iris"}))
    (directory / "sub" / "notes.txt").write_text("nested file")
    return directory


def test_publish_writes_every_file_then_the_marker(store, model_dir):
    recording = RecordingStore(store.settings)
    ref = publish_model_dir(recording, model_dir, "iris", "v1")
    assert ref.name == "iris" and ref.version == "v1"
    assert ref.uri == f"s3://{store.bucket}/models/iris/v1"
    assert recording.writes[-1] == f"models/iris/v1/{COMPLETE_MARKER}"
    assert sorted(recording.writes[:-1]) == [
        "models/iris/v1/metadata.json",
        "models/iris/v1/model.skops",
        "models/iris/v1/sub/notes.txt",
    ]
    manifest = store.get_json(f"models/iris/v1/{COMPLETE_MARKER}")
    assert manifest["model_name"] == "iris" and manifest["version"] == "v1"
    assert manifest["files"] == {
        name: sha256_file(model_dir / name)
        for name in ("metadata.json", "model.skops", "sub/notes.txt")
    }
    assert store.get_bytes("models/iris/v1/model.skops") == b"weights" * 100


def test_marker_in_the_local_dir_is_not_uploaded_as_a_file(store, model_dir):
    (model_dir / COMPLETE_MARKER).write_text("stale")
    publish_model_dir(store, model_dir, "iris", "v1")
    assert COMPLETE_MARKER not in store.get_json(f"models/iris/v1/{COMPLETE_MARKER}")["files"]


def test_publishing_twice_is_refused(store, model_dir):
    publish_model_dir(store, model_dir, "iris", "v1")
    with pytest.raises(UsageError, match="already published"):
        publish_model_dir(store, model_dir, "iris", "v1")


def test_empty_dir_and_bad_name_are_refused(store, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="is empty"):
        publish_model_dir(store, tmp_path / "empty", "iris", "v1")
    with pytest.raises(UsageError, match="model_name 'Iris_Model' is invalid"):
        publish_model_dir(store, tmp_path / "empty", "Iris_Model", "v1")


def test_versions_without_the_marker_are_invisible(store, model_dir):
    publish_model_dir(store, model_dir, "iris", "v1")
    publish_model_dir(store, model_dir, "iris", "v3")
    # v2 and v4: files uploaded by hand, as if an upload had stopped before its marker.
    store.upload_dir(model_dir, "models/iris/v2")
    store.upload_dir(model_dir, "models/iris/v4")
    store.upload_dir(model_dir, "models/half/v1")
    assert list_versions(store, "iris") == ["v1", "v3"]
    assert latest_version(store, "iris") == "v3"
    assert resolve(store, "iris").version == "v3"
    with pytest.raises(UsageError, match="no published version 'v4'"):
        resolve(store, "iris", "v4")
    with pytest.raises(UsageError, match="'half' has no published version"):
        latest_version(store, "half")
    assert list_versions(store, "absent") == []


def test_versions_are_ordered_by_publish_time_not_by_name(store, model_dir):
    # "v10" < "v9" < "va" as strings; published in the order v9, va, v10.
    for version in ("v9", "va", "v10"):
        publish_model_dir(store, model_dir, "iris", version)
    assert list_versions(store, "iris") == ["v9", "va", "v10"]
    assert latest_version(store, "iris") == "v10"
    assert resolve(store, "iris").version == "v10"
    assert published_at(store, "iris", "va") < published_at(store, "iris", "v10")


def copy_version(store, source: str, target: str) -> None:
    """Copies every object of ``models/iris/<source>/``, marker included, to ``<target>``."""
    for key in list(store.list(f"models/iris/{source}/")):
        store.put_bytes(key.replace(f"/{source}/", f"/{target}/"), store.get_bytes(key))


def test_a_copied_version_never_becomes_the_latest(store, model_dir):
    publish_model_dir(store, model_dir, "iris", "v1")
    publish_model_dir(store, model_dir, "iris", "v2")
    copy_version(store, "v1", "v99")
    copy_version(store, "v2", "v100")  # a copy of the newest one cannot win a tie either
    # The copies carry markers written for v1 and v2: their times are not theirs.
    assert published_at(store, "iris", "v99") is None
    assert list_versions(store, "iris") == ["v100", "v99", "v1", "v2"]
    assert latest_version(store, "iris") == "v2"
    assert resolve(store, "iris", "v99").version == "v99"  # still addressable, to be refused


def test_versions_without_a_usable_time_come_first_by_name(store, model_dir):
    publish_model_dir(store, model_dir, "iris", "v1")
    marker = f"models/iris/{{}}/{COMPLETE_MARKER}"
    store.upload_dir(model_dir, "models/iris/old-b")
    store.put_json(marker.format("old-b"), {"model_name": "iris", "version": "old-b"})
    store.upload_dir(model_dir, "models/iris/old-a")
    store.put_bytes(marker.format("old-a"), b"")  # a bare marker, no JSON at all
    store.upload_dir(model_dir, "models/iris/naive")
    store.put_json(
        marker.format("naive"),
        {"model_name": "iris", "version": "naive", "published_at": "2999-01-01T00:00:00"},
    )
    assert [published_at(store, "iris", v) for v in ("old-a", "old-b", "naive")] == [None] * 3
    assert list_versions(store, "iris") == ["naive", "old-a", "old-b", "v1"]
    assert latest_version(store, "iris") == "v1"


def test_an_unreadable_marker_fails_rather_than_reorder(store, model_dir, monkeypatch):
    publish_model_dir(store, model_dir, "iris", "v1")

    def broken(key):
        raise StoreError(f"cannot read {key}: connection reset")

    monkeypatch.setattr(store, "get_versioned", broken)
    with pytest.raises(StoreError, match="connection reset"):
        latest_version(store, "iris")


def test_fetch_refuses_an_incomplete_version(store, model_dir, tmp_path):
    store.upload_dir(model_dir, "models/iris/v2")
    with pytest.raises(
        StoreError, match=f"not a complete published model \\(no {COMPLETE_MARKER}\\)"
    ):
        fetch_model(store, store.uri("models/iris/v2"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fetch_downloads_a_complete_version(store, model_dir, tmp_path):
    ref = publish_model_dir(store, model_dir, "iris", "v1")
    dest = fetch_model(store, ref.uri + "/", tmp_path / "out")
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["metadata.json", "model.skops", "sub/notes.txt"]
    assert (dest / "model.skops").read_bytes() == (model_dir / "model.skops").read_bytes()


@pytest.mark.parametrize(
    "uri", ["s3://b/models/iris", "s3://b/other/iris/v1", "s3://b/models/iris/v1/x"]
)
def test_parse_model_uri_rejects_other_keys(uri):
    with pytest.raises(UsageError, match="is not a model URI"):
        parse_model_uri(uri)


def test_parse_model_uri():
    parsed, name, version = parse_model_uri("s3://bucket/models/iris/v7/")
    assert (parsed.bucket, parsed.key, name, version) == ("bucket", "models/iris/v7", "iris", "v7")


@pytest.mark.parametrize("name", ["iris", "breast-cancer", "a", "m1", "a" * 63, "0-model-9"])
def test_valid_model_names(name):
    assert validate_model_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Iris",
        "iris_model",
        "-iris",
        "iris-",
        "a" * 64,
        "iris.v1",
        "iris/v1",
        "iris model",
        None,
    ],
)
def test_invalid_model_names(name):
    with pytest.raises(UsageError, match="model_name .* is invalid: use lowercase letters"):
        validate_model_name(name)


def test_new_version_is_sortable_and_unique():
    early = new_version(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    late = new_version(datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC))
    assert early.startswith("v20260102-030405-") and early < late
    assert len({new_version() for _ in range(20)}) > 1
    validate_model_name(early)  # versions are valid path/label segments too
