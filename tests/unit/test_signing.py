"""Tests for mlops.trust.signing: sign / verify model directories."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mlops.core.errors import UsageError, VerificationError
from mlops.trust import signing
from tests.release_helpers import release_and_sign, write_release


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    home = tmp_path_factory.mktemp("home")
    priv, pub = signing.default_key_paths(home)
    signing.generate_keypair(priv, pub)
    return priv, pub


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "model.skops").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    (d / "metadata.json").write_text('{"name": "churn", "version": 1}')
    (d / "reference.parquet").write_bytes(b"PAR1" + b"\x00" * 64 + b"PAR1")
    return d


def test_default_key_paths(tmp_path: Path) -> None:
    priv, pub = signing.default_key_paths(tmp_path)
    assert priv == tmp_path / "keys" / "signing-key.pem"
    assert pub == tmp_path / "keys" / "signing-key.pub.pem"


def test_generate_keypair_modes_and_refuses_overwrite(tmp_path: Path) -> None:
    priv, pub = signing.default_key_paths(tmp_path)
    signing.generate_keypair(priv, pub)
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in priv.read_bytes()
    assert b"PUBLIC KEY" in pub.read_bytes()
    before = priv.read_bytes()
    with pytest.raises(UsageError, match="refusing to overwrite"):
        signing.generate_keypair(priv, pub)
    assert priv.read_bytes() == before
    signing.generate_keypair(priv, pub, overwrite=True)
    assert priv.read_bytes() != before
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600


def test_sign_then_verify(model_dir: Path, keys) -> None:
    priv, pub = keys
    sig = signing.sign_model_dir(model_dir, priv)
    assert sig == model_dir / "model.sig" and sig.is_file()
    signing.verify_model_dir(model_dir, pub)
    # re-signing replaces the bundle and still verifies
    signing.sign_model_dir(model_dir, priv)
    signing.verify_model_dir(model_dir, pub)


def test_renamed_dir_still_verifies(model_dir: Path, keys) -> None:
    priv, pub = keys
    signing.sign_model_dir(model_dir, priv)
    moved = model_dir.rename(model_dir.parent / "elsewhere")
    signing.verify_model_dir(moved, pub)


def test_byte_flip_detected(model_dir: Path, keys) -> None:
    priv, pub = keys
    signing.sign_model_dir(model_dir, priv)
    data = bytearray((model_dir / "model.skops").read_bytes())
    data[100] ^= 0x01
    (model_dir / "model.skops").write_bytes(bytes(data))
    with pytest.raises(VerificationError, match=r"changed since signing: model\.skops") as err:
        signing.verify_model_dir(model_dir, pub)
    assert "added" not in str(err.value) and "missing" not in str(err.value)


def test_added_file_detected(model_dir: Path, keys) -> None:
    priv, pub = keys
    signing.sign_model_dir(model_dir, priv)
    (model_dir / "extra.pkl").write_bytes(b"\x80\x04.")
    with pytest.raises(VerificationError, match=r"unsigned file\(s\) added: extra\.pkl"):
        signing.verify_model_dir(model_dir, pub)


def test_added_git_file_detected(model_dir: Path, keys) -> None:
    priv, pub = keys
    signing.sign_model_dir(model_dir, priv)
    (model_dir / "sub").mkdir()
    (model_dir / "sub" / ".gitattributes").write_text("* filter=evil")
    with pytest.raises(VerificationError, match=r"added: sub/\.gitattributes"):
        signing.verify_model_dir(model_dir, pub)


def test_removed_file_detected(model_dir: Path, keys) -> None:
    priv, pub = keys
    signing.sign_model_dir(model_dir, priv)
    (model_dir / "reference.parquet").unlink()
    with pytest.raises(VerificationError, match=r"signed file\(s\) missing: reference\.parquet"):
        signing.verify_model_dir(model_dir, pub)


def test_wrong_public_key(model_dir: Path, keys, tmp_path: Path) -> None:
    priv, _ = keys
    other_priv, other_pub = tmp_path / "o.pem", tmp_path / "o.pub.pem"
    signing.generate_keypair(other_priv, other_pub)
    signing.sign_model_dir(model_dir, priv)
    with pytest.raises(
        VerificationError, match="wrong key: model.sig was signed by a different key"
    ):
        signing.verify_model_dir(model_dir, other_pub)


def test_missing_signature(model_dir: Path, keys) -> None:
    _, pub = keys
    with pytest.raises(VerificationError, match="missing signature: model.sig not found"):
        signing.verify_model_dir(model_dir, pub)


def test_tampered_bundle(model_dir: Path, keys) -> None:
    import base64
    import json

    priv, pub = keys
    sig = signing.sign_model_dir(model_dir, priv)
    bundle = json.loads(sig.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["serialization"]["ignore_paths"].append("model.skops")
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    sig.write_text(json.dumps(bundle))
    with pytest.raises(VerificationError, match="invalid signature"):
        signing.verify_model_dir(model_dir, pub)


def test_garbage_bundle(model_dir: Path, keys) -> None:
    _, pub = keys
    (model_dir / "model.sig").write_text("not json")
    with pytest.raises(VerificationError, match="malformed signature bundle"):
        signing.verify_model_dir(model_dir, pub)


def test_custom_signature_name(model_dir: Path, keys) -> None:
    priv, pub = keys
    signing.sign_model_dir(model_dir, priv, signature_name="release.sig")
    signing.verify_model_dir(model_dir, pub, signature_name="release.sig")
    with pytest.raises(UsageError):
        signing.sign_model_dir(model_dir, priv, signature_name="../x.sig")


def test_missing_inputs(tmp_path: Path, keys) -> None:
    priv, pub = keys
    with pytest.raises(UsageError, match="model directory not found"):
        signing.verify_model_dir(tmp_path / "nope", pub)
    with pytest.raises(UsageError, match="private key not found"):
        signing.sign_model_dir(tmp_path, tmp_path / "nope.pem")


def test_symlink_added_after_signing(model_dir: Path, keys, tmp_path: Path) -> None:
    priv, pub = keys
    signing.sign_model_dir(model_dir, priv)
    target = tmp_path / "outside.bin"
    target.write_bytes(b"x")
    (model_dir / "link.bin").symlink_to(target)
    with pytest.raises(VerificationError, match="symlink"):
        signing.verify_model_dir(model_dir, pub)
    with pytest.raises(UsageError, match="symlink"):
        signing.sign_model_dir(model_dir, priv)


def _write_metadata(model_dir: Path, text: str) -> None:
    (model_dir / "metadata.json").write_text(text)


def test_verify_identity_accepts_the_version_the_metadata_names(model_dir: Path) -> None:
    _write_metadata(model_dir, '{"model_name": "churn", "version": "v2"}')
    signing.verify_identity(model_dir, "churn", "v2")


@pytest.mark.parametrize(
    ("name", "version"), [("churn", "v3"), ("other", "v2"), ("churn", "V2"), ("churn", "")]
)
def test_verify_identity_names_both_on_a_mismatch(model_dir: Path, name, version) -> None:
    _write_metadata(model_dir, '{"model_name": "churn", "version": "v2"}')
    with pytest.raises(VerificationError) as info:
        signing.verify_identity(model_dir, name, version)
    assert "says model 'churn' version 'v2'" in str(info.value)
    assert f"published as model {name!r} version {version!r}" in str(info.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"name": "churn", "version": 1}', "records no model_name and version"),
        ('{"model_name": "churn"}', "records no model_name and version"),
        ('["churn", "v2"]', "records no model_name and version"),
        ("{not json", "missing or unreadable"),
        (None, "missing or unreadable"),
    ],
)
def test_verify_identity_fails_closed(model_dir: Path, text, match) -> None:
    if text is None:
        (model_dir / "metadata.json").unlink()
    else:
        _write_metadata(model_dir, text)
    with pytest.raises(VerificationError, match=match):
        signing.verify_identity(model_dir, "churn", "v2")


def test_verify_version_dir_checks_the_signature_then_the_identity(
    model_dir: Path, keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLOPS_MIN_ACCURACY", raising=False)
    priv, pub = keys
    _write_metadata(model_dir, '{"model_name": "churn", "version": "v2"}')
    release_and_sign(model_dir, priv)
    evidence = signing.verify_version_dir(model_dir, pub, "churn", "v2")
    assert (evidence["model_name"], evidence["version"]) == ("churn", "v2")
    with pytest.raises(VerificationError, match="says model 'churn' version 'v2'"):
        signing.verify_version_dir(model_dir, pub, "churn", "v3")
    # Rewriting the metadata to match another path breaks the signature instead.
    _write_metadata(model_dir, '{"model_name": "churn", "version": "v3"}')
    with pytest.raises(VerificationError, match="changed since signing: metadata.json"):
        signing.verify_version_dir(model_dir, pub, "churn", "v3")


def test_verify_version_dir_then_checks_the_release(model_dir: Path, keys) -> None:
    # Signed by the right key, named right, but never released: refused all the same.
    priv, pub = keys
    _write_metadata(model_dir, '{"model_name": "churn", "version": "v2"}')
    signing.sign_model_dir(model_dir, priv)
    signing.verify_identity(model_dir, "churn", "v2")
    with pytest.raises(VerificationError, match="has no release.json: it was never released"):
        signing.verify_version_dir(model_dir, pub, "churn", "v2")
    # Evidence added after signing is an unsigned file, not a release.
    write_release(model_dir)
    with pytest.raises(VerificationError, match="unsigned file.*added: release.json"):
        signing.verify_version_dir(model_dir, pub, "churn", "v2")
