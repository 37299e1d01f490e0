import pytest

from mlops.core.errors import StoreError, UsageError
from mlops.core.settings import StoreSettings
from mlops.core.store import ObjectStore, S3Uri


def test_settings_from_env_requires_endpoint_and_keys():
    with pytest.raises(UsageError, match="MLOPS_S3_ENDPOINT"):
        StoreSettings.from_env({})
    with pytest.raises(UsageError, match="MLOPS_S3_SECRET_KEY"):
        StoreSettings.from_env({"MLOPS_S3_ENDPOINT": "h:9000", "MLOPS_S3_ACCESS_KEY": "a"})


def test_settings_scheme_sets_secure_and_secret_stays_out_of_repr():
    settings = StoreSettings.from_env(
        {
            "MLOPS_S3_ENDPOINT": "https://minio.example:9000/",
            "MLOPS_S3_ACCESS_KEY": "ak",
            "MLOPS_S3_SECRET_KEY": "topsecret",
        }
    )
    assert settings.endpoint == "minio.example:9000" and settings.secure
    assert "topsecret" not in repr(settings) and settings.bucket == "mlops"


def test_bad_secure_flag_is_named():
    with pytest.raises(UsageError, match="MLOPS_S3_SECURE"):
        StoreSettings.from_env(
            {
                "MLOPS_S3_ENDPOINT": "h:1",
                "MLOPS_S3_ACCESS_KEY": "a",
                "MLOPS_S3_SECRET_KEY": "b",
                "MLOPS_S3_SECURE": "maybe",
            }
        )


def test_s3_uri_parse():
    assert S3Uri.parse("s3://b/k/x.csv") == S3Uri("b", "k/x.csv")
    with pytest.raises(UsageError):
        S3Uri.parse("http://b/k")


def test_round_trip_and_folders(store, tmp_path):
    store.put_json("a/b.json", {"x": 1})
    assert store.get_json("a/b.json") == {"x": 1}
    assert store.exists("a/b.json") and not store.exists("a/missing")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "one.txt").write_text("1")
    (src / "sub" / "two.txt").write_text("2")
    assert store.upload_dir(src, "dir") == ["one.txt", "sub/two.txt"]
    dest = tmp_path / "dest"
    assert store.download_dir("dir", dest) == ["one.txt", "sub/two.txt"]
    assert (dest / "sub" / "two.txt").read_text() == "2"
    with pytest.raises(StoreError, match="nothing found"):
        store.download_dir("nope", tmp_path / "x")


def test_unreachable_store_raises_store_error():
    from mlops.core.net import free_port

    settings = StoreSettings(f"127.0.0.1:{free_port()}", "a", "b", False, "mlops")
    with pytest.raises(StoreError, match="failed"):
        ObjectStore(settings, timeout=1).get_bytes("x")


def test_each_new_bucket_reserves_one_volume_so_many_buckets_stay_writable(store, store_home):
    """Regression: a new bucket must not reserve 7 volumes.

    The master reserved 7 volumes per bucket out of a disk-sized pool, so after a
    few dozen buckets every write failed with 500 "no free volumes".
    """
    import json
    import urllib.request

    from mlops.core.embedded_store import EmbeddedStore

    store.put_bytes("first", b"1")
    master = json.loads(EmbeddedStore(store_home).state_file.read_text())["ports"]["master"]
    with urllib.request.urlopen(f"http://127.0.0.1:{master}/dir/status", timeout=5) as response:
        topology = json.load(response)["Topology"]
    layouts = [layout for layout in topology["Layouts"] if layout["collection"] == store.bucket]
    assert [len(layout["writables"]) for layout in layouts] == [1]
    assert topology["Max"] >= 1000, "volume slots must not shrink with the free disk space"
