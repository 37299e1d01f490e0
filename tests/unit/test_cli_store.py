"""``mlops store start|status|stop`` manage a real SeaweedFS server under MLOPS_HOME."""

from __future__ import annotations

import json

from mlops.cli import main
from mlops.core.embedded_store import EmbeddedStore


def test_store_lifecycle(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.delenv("MLOPS_S3_ENDPOINT", raising=False)
    try:
        assert main(["store", "status", "--check"]) == 1
        assert "not running" in capsys.readouterr().out
        assert main(["store", "start"]) == 0
        started = capsys.readouterr().out
        assert "embedded store running on http://127.0.0.1:" in started
        assert main(["store", "status", "--check"]) == 0
        assert "running on 127.0.0.1:" in capsys.readouterr().out
        credentials = home / "store" / "credentials.json"
        assert credentials.stat().st_mode & 0o777 == 0o600
        secret = json.loads(credentials.read_text())["secret_key"]
        assert secret not in started, "credentials never reach the output"
    finally:
        assert main(["store", "stop"]) == 0
    assert "stopped" in capsys.readouterr().out
    assert not EmbeddedStore(home).status().running
