"""The store over TLS: ``mlops store start --tls``, ``MLOPS_S3_CA_BUNDLE`` and the messages (issue 13).

A real SeaweedFS serves S3 over HTTPS with a certificate from the local CA the
command creates; the clients are the project's own ``ObjectStore`` and the CLI.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace

import pytest

from mlops.cli import main
from mlops.core.embedded_store import EmbeddedStore
from mlops.core.errors import StoreError, UsageError
from mlops.core.settings import CA_BUNDLE_VAR, StoreSettings
from mlops.core.store import ObjectStore
from mlops.core.tls import create_ca, load_or_create

STORE_VARS = ("MLOPS_S3_ENDPOINT", "MLOPS_S3_ACCESS_KEY", "MLOPS_S3_SECRET_KEY", "MLOPS_S3_SECURE")


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_local_ca_keys_are_private_and_kept(tmp_path):
    first = load_or_create(tmp_path / "tls")
    assert _mode(first.key) == 0o600 and _mode(first.ca.key) == 0o600
    ca_pem = first.ca.cert.read_bytes()
    again = load_or_create(tmp_path / "tls")
    assert again.ca.cert.read_bytes() == ca_pem, "the CA survives a restart"


def test_a_missing_ca_bundle_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv(CA_BUNDLE_VAR, str(tmp_path / "missing.pem"))
    settings = StoreSettings("127.0.0.1:1", "a", "b", secure=True)
    with pytest.raises(UsageError, match="MLOPS_S3_CA_BUNDLE .*missing.pem is not a readable"):
        ObjectStore(settings)


@pytest.mark.slow
def test_store_start_tls_serves_https_that_every_client_verifies(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    for name in (*STORE_VARS, CA_BUNDLE_VAR):
        monkeypatch.delenv(name, raising=False)
    embedded = EmbeddedStore(home)
    try:
        assert main(["store", "start", "--tls"]) == 0
        out = capsys.readouterr().out
        assert "embedded store running on https://127.0.0.1:" in out
        assert str(embedded.ca_bundle) in out
        for key in ("ca.key", "server.key"):
            assert _mode(home / "store" / "tls" / key) == 0o600, key
        assert main(["store", "status"]) == 0 and "TLS (CA " in capsys.readouterr().out
        settings = embedded.settings()
        assert settings.secure

        # With the CA bundle: a write and a read over HTTPS.
        trusted = ObjectStore(settings, timeout=3, ca_bundle=embedded.ca_bundle)
        trusted.ensure_bucket()
        trusted.put_bytes("tls/probe", b"over https")
        assert trusted.get_bytes("tls/probe") == b"over https"

        # Without it (the system's CAs), or trusting another CA: refused, naming the setting.
        with pytest.raises(StoreError, match="certificate verify failed.*set MLOPS_S3_CA_BUNDLE"):
            ObjectStore(settings, timeout=2).get_bytes("tls/probe")
        other = create_ca(tmp_path / "other-ca")
        with pytest.raises(StoreError, match="did not verify against the CA bundle .*other-ca"):
            ObjectStore(settings, timeout=2, ca_bundle=other.cert).get_bytes("tls/probe")
        # Plain HTTP to the TLS port.
        with pytest.raises(StoreError, match="speaks TLS on this port; set MLOPS_S3_SECURE=true"):
            ObjectStore(replace(settings, secure=False), timeout=2).get_bytes("tls/probe")

        # The CLI exports the settings and the CA for itself and its tasks: a command
        # reading the store gets through (the model has no candidate: exit 2, not a TLS error).
        code = main(["canary", "analyze", "nobody", "--metrics-url", "http://127.0.0.1:9/"])
        assert code == 2 and "no candidate to analyse" in capsys.readouterr().err
        assert os.environ["MLOPS_S3_SECURE"] == "true"
        assert os.environ[CA_BUNDLE_VAR] == str(embedded.ca_bundle)
        assert ObjectStore.from_env().get_bytes("tls/probe") == b"over https"

        # A running store keeps its mode.
        assert main(["store", "start", "--no-tls"]) == 1
        assert "runs with TLS; stop it first" in capsys.readouterr().err
    finally:
        os.environ.pop(CA_BUNDLE_VAR, None)
        for name in STORE_VARS:
            os.environ.pop(name, None)
        embedded.stop()
    # Restarted on demand, it comes back with TLS (the mode is remembered).
    try:
        restarted = embedded.start()
        assert restarted.secure and embedded.status().tls
    finally:
        embedded.stop()
