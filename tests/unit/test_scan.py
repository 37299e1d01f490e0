"""Tests for mlops.trust.scan: static pickle / joblib / skops scanning."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlops.core.errors import UsageError
from mlops.model import modelio
from mlops.trust import scan
from mlops.trust.scan import scan_path


class _Evil:
    """Pickles to a call of os.system. Never unpickled in these tests."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _evil_bytes() -> bytes:
    # Serialising only calls __reduce__; it does not run the command.
    return pickle.dumps(_Evil(), protocol=4)


def _flagged(result: scan.ScanResult, name: str) -> list[dict[str, str]]:
    return [f for f in result.findings if Path(f["file"]).name == name]


@pytest.fixture
def forbid_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes any attempt to unpickle during the scan fail the test."""

    def boom(*_a, **_k):
        raise AssertionError("scan must never unpickle")

    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(joblib, "load", boom)


def test_malicious_pickle_flagged(tmp_path: Path, forbid_unpickling) -> None:
    evil = tmp_path / "model.pkl"
    evil.write_bytes(_evil_bytes())
    result = scan_path(evil)
    assert not result.safe
    assert result.scanned == [str(evil)]
    details = " ".join(f["detail"] for f in result.findings)
    assert "system" in details
    assert any(f["severity"] == "critical" for f in result.findings)


def test_hand_built_protocol0_pickle_flagged(tmp_path: Path, forbid_unpickling) -> None:
    # GLOBAL os.system, MARK, STRING, TUPLE, REDUCE, STOP -- protocol 0 by hand.
    raw = b"cos\nsystem\n(S'echo pwned'\ntR."
    (tmp_path / "x.pickle").write_bytes(raw)
    result = scan_path(tmp_path)
    assert not result.safe and _flagged(result, "x.pickle")


def test_pickle_without_extension_is_sniffed(tmp_path: Path, forbid_unpickling) -> None:
    (tmp_path / "weights.bin").write_bytes(_evil_bytes())
    (tmp_path / "notes.txt").write_text("hello")
    result = scan_path(tmp_path)
    assert not result.safe
    assert [Path(p).name for p in result.scanned] == ["weights.bin"]


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)])
def test_joblib_malicious_caught(tmp_path: Path, compress, forbid_unpickling) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(_Evil(), path, compress=compress)
    result = scan_path(tmp_path)
    assert not result.safe
    assert any("system" in f["detail"] for f in _flagged(result, "model.joblib")), result.findings


def test_compressed_pickle_without_extension_sniffed(tmp_path: Path, forbid_unpickling) -> None:
    path = tmp_path / "blob"
    joblib.dump(_Evil(), path, compress=("gzip", 3))
    result = scan_path(tmp_path)
    assert not result.safe and result.scanned == [str(path)]


def test_plain_data_pickle_is_safe(tmp_path: Path) -> None:
    (tmp_path / "data.pkl").write_bytes(pickle.dumps({"a": [1, 2.5, "x"], "b": (None, True)}))
    result = scan_path(tmp_path)
    assert result.safe, result.findings
    assert len(result.scanned) == 1


def test_garbage_with_pickle_extension_unsafe(tmp_path: Path) -> None:
    (tmp_path / "bad.pkl").write_bytes(b"\x00\x01garbage")
    (tmp_path / "trunc.joblib").write_bytes(b"\x1f\x8b\x08\x00garbage")
    (tmp_path / "empty.pickle").write_bytes(b"")
    result = scan_path(tmp_path)
    assert not result.safe
    assert {Path(f["file"]).name for f in result.findings} == {
        "bad.pkl",
        "trunc.joblib",
        "empty.pickle",
    }


def test_trailing_payload_after_clean_pickle(tmp_path: Path) -> None:
    data = pickle.dumps([1, 2, 3]) + _evil_bytes()
    (tmp_path / "stacked.pkl").write_bytes(data)
    result = scan_path(tmp_path)
    assert not result.safe
    assert any("pickle #1" in f["detail"] for f in result.findings)


def test_sklearn_joblib_with_arrays_is_unsafe(tmp_path: Path) -> None:
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    joblib.dump(model, tmp_path / "model.joblib")
    assert not scan_path(tmp_path).safe


@pytest.fixture
def skops_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    modelio.save_model(model, d / "model.skops")
    (d / "metadata.json").write_text(json.dumps({"name": "m"}))
    (d / "reference.parquet").write_bytes(b"PAR1" + b"\x00" * 32 + b"PAR1")
    (d / "model.sig").write_text("{}")
    return d


def test_clean_skops_model_dir_passes(skops_dir: Path) -> None:
    result = scan_path(skops_dir)
    assert result.safe, result.findings
    assert [Path(p).name for p in result.scanned] == ["model.skops"]
    assert result.to_dict() == {"safe": True, "findings": [], "scanned": result.scanned}


def test_skops_with_pickle_member_unsafe(skops_dir: Path) -> None:
    with zipfile.ZipFile(skops_dir / "model.skops", "a") as zf:
        zf.writestr("payload.pkl", _evil_bytes())
    result = scan_path(skops_dir)
    assert not result.safe
    assert any("unexpected archive member 'payload.pkl'" in f["detail"] for f in result.findings)


class _Marker:
    """A custom class: not on the skops allow-list."""

    def __init__(self) -> None:
        self.value = 1


def test_skops_with_untrusted_type_unsafe(tmp_path: Path) -> None:
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    model.extra_ = _Marker()
    path = tmp_path / "model.skops"
    modelio.save_model(model, path)
    result = scan_path(path)
    assert not result.safe
    assert any(
        "outside the allow-list" in f["detail"] and "_Marker" in f["detail"]
        for f in result.findings
    ), result.findings


def test_not_a_zip_skops_unsafe(tmp_path: Path) -> None:
    (tmp_path / "m.skops").write_bytes(b"neither a zip nor a pickle")
    result = scan_path(tmp_path)
    assert not result.safe and "not a zip" in result.findings[0]["detail"]


def test_pickle_renamed_skops_is_reported_as_a_pickle(tmp_path: Path) -> None:
    (tmp_path / "m.skops").write_bytes(_evil_bytes())
    result = scan_path(tmp_path)
    assert not result.safe
    details = [f["detail"] for f in result.findings]
    assert "pickle/joblib data, not a skops archive" in details[0]
    assert any("OVERTLY_MALICIOUS" in d or "UNSAFE" in d for d in details[1:]), details


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        scan_path(tmp_path / "nope")
