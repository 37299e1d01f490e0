"""Tests for the trust subcommands (mlops.cli.trust) through the CLI entry point."""

from __future__ import annotations

import json
import os
import pickle
import re
import stat
from pathlib import Path

import pytest

from mlops.cli import main as cli_main
from mlops.trust import signing
from tests.release_helpers import passed_decision_json, release_and_sign

SHARED_DB = Path(__file__).resolve().parents[2].parent / "shared" / "advisory-db"


def _run(*argv: str) -> int:
    return cli_main(list(argv))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "mlops-home"
    monkeypatch.setenv("MLOPS_HOME", str(h))
    monkeypatch.delenv("MLOPS_ADVISORY_DB", raising=False)
    monkeypatch.delenv("MLOPS_MIN_ACCURACY", raising=False)
    return h


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "model.skops").write_bytes(b"skops-bytes")
    (d / "metadata.json").write_text('{"model_name": "churn", "version": "v1"}')
    (d / "reference.parquet").write_bytes(b"PAR1PAR1")
    return d


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_keys_init_prints_paths_not_keys(home: Path, capsys) -> None:
    assert _run("keys", "init") == 0
    out = capsys.readouterr().out
    priv, pub = signing.default_key_paths(home)
    assert str(priv) in out and str(pub) in out
    assert "BEGIN" not in out
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    before = priv.read_bytes()
    assert _run("keys", "init") == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert priv.read_bytes() == before
    assert _run("keys", "init", "--force") == 0
    assert priv.read_bytes() != before


def test_verify_exit_codes(home: Path, model_dir: Path, capsys) -> None:
    assert _run("keys", "init") == 0
    priv, pub = signing.default_key_paths(home)
    capsys.readouterr()
    assert _run("verify", str(model_dir)) == 4
    assert "missing signature" in capsys.readouterr().err
    # Signed, but the sign step never ran after a passed decision: not a release.
    signing.sign_model_dir(model_dir, priv)
    assert _run("verify", str(model_dir)) == 4
    assert "INVALID" in (err := capsys.readouterr().err) and "never released" in err
    release_and_sign(model_dir, priv)
    assert _run("verify", str(model_dir)) == 0
    out = capsys.readouterr().out
    assert "OK:" in out and "released" in out and "model: churn v1" in out
    assert "[pass] no_regression" in out and "holdout_accuracy: 1.0000" in out
    assert _run("verify", str(model_dir), "--public-key", str(pub)) == 0
    (model_dir / "metadata.json").write_text('{"tampered": true}')
    capsys.readouterr()
    assert _run("verify", str(model_dir)) == 4
    assert "metadata.json" in capsys.readouterr().err


def _failed_gate() -> str:
    """A decision whose model_scan gate failed (what a rejected candidate's evidence says)."""
    decision = json.loads(passed_decision_json())
    decision["gates"]["model_scan"] = {"passed": False, "detail": "unsafe type os.system"}
    return json.dumps(decision, sort_keys=True)


@pytest.mark.parametrize(
    "changes, policy, match",
    [
        ({"decision_json": _failed_gate()}, None, "failed gate.*model_scan: unsafe type"),
        ({"version": "v0"}, None, "evidence of 'churn' version 'v0', not of 'churn' version 'v1'"),
        ({"holdout_metrics": {"holdout_accuracy": 0.9}}, "0.95", "0.9000 .*below.*0.9500"),
    ],
    ids=["failed-gate", "other-version", "below-policy"],
)
def test_verify_applies_the_release_policy(
    home: Path, model_dir: Path, capsys, monkeypatch, changes, policy, match
) -> None:
    assert _run("keys", "init") == 0
    release_and_sign(model_dir, signing.default_key_paths(home)[0], **changes)
    if policy is not None:
        monkeypatch.setenv("MLOPS_MIN_ACCURACY", policy)
    capsys.readouterr()
    assert _run("verify", str(model_dir)) == 4
    err = capsys.readouterr().err
    assert err.startswith("INVALID:")
    assert re.search(match, err), err


def test_verify_missing_key_is_usage_error(home: Path, model_dir: Path, capsys) -> None:
    assert _run("verify", str(model_dir)) == 2
    assert "public key not found" in capsys.readouterr().err


def test_audit_json_unknown_without_db(home: Path, tmp_path: Path, capsys) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("requests==2.19.1\n")
    assert _run("audit", "-r", str(req), "--json") == 4
    payload = json.loads(capsys.readouterr().out)
    assert payload["state"] == "unknown"


def _mini_db(root: Path) -> Path:
    pkg = root / "vulns" / "demo-pkg"
    pkg.mkdir(parents=True)
    (pkg / "DEMO-1.yaml").write_text(
        "id: DEMO-1\ndetails: bad\naffected:\n- package: {name: demo-pkg, ecosystem: PyPI}\n"
        "  ranges:\n  - type: ECOSYSTEM\n    events: [{introduced: '0'}, {fixed: '2.0'}]\n"
    )
    return root


def test_audit_with_env_db(home: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    db = _mini_db(tmp_path / "db")
    monkeypatch.setenv("MLOPS_ADVISORY_DB", str(db))
    req = tmp_path / "requirements.txt"
    req.write_text("demo-pkg==1.0\n")
    assert _run("audit", "-r", str(req), "--json") == 4
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    payload = json.loads(out)
    assert payload["state"] == "vulnerable" and payload["findings"][0]["id"] == "DEMO-1"
    req.write_text("demo-pkg==2.0\n")
    assert _run("audit", "-r", str(req)) == 0
    assert "clean" in capsys.readouterr().out


def test_audit_flag_overrides_env(home: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MLOPS_ADVISORY_DB", str(tmp_path / "nowhere"))
    db = _mini_db(tmp_path / "db")
    req = tmp_path / "requirements.txt"
    req.write_text("demo-pkg==2.0\n")
    assert _run("audit", "-r", str(req), "--advisory-db", str(db / "vulns")) == 0


def test_audit_shared_db(home: Path, tmp_path: Path, capsys) -> None:
    if not (SHARED_DB / "vulns").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"advisory database snapshot missing at {SHARED_DB}")
        pytest.skip("advisory database snapshot not available")
    req = tmp_path / "requirements.txt"
    req.write_text("urllib3==1.24.1\n")
    assert _run("audit", "-r", str(req), "--advisory-db", str(SHARED_DB), "--json") == 4
    ids = {f["id"] for f in json.loads(capsys.readouterr().out)["findings"]}
    assert "PYSEC-2019-133" in ids


def test_scan_exit_codes(tmp_path: Path, capsys) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "data.pkl").write_bytes(pickle.dumps({"a": 1}))
    assert _run("scan", str(clean), "--json") == 0
    assert json.loads(capsys.readouterr().out)["safe"] is True
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "evil.pkl").write_bytes(pickle.dumps(_Evil()))
    assert _run("scan", str(bad), "--json") == 4
    out = capsys.readouterr().out
    payload = json.loads(out)
    assert payload["safe"] is False and payload["findings"]
    assert _run("scan", str(bad)) == 4
    assert "evil.pkl" in capsys.readouterr().err


def test_scan_missing_path(tmp_path: Path, capsys) -> None:
    assert _run("scan", str(tmp_path / "nope")) == 2


def test_verify_published_incomplete_version_is_invalid(
    home: Path, tmp_path: Path, store_env, capsys
) -> None:
    # Issue 9, finding 9: a version whose upload never finished (no _COMPLETE) exited 1.
    from mlops.model.registry import COMPLETE_MARKER, publish_model_dir, version_prefix
    from tests.serving_helpers import build_model_dir

    assert _run("keys", "init") == 0
    private, public = signing.default_key_paths(home)
    for version in ("v1", "v2"):
        build_model_dir(tmp_path / version, private, model_name="iris", version=version)
    # v1 as an interrupted publish leaves it: every file but the marker.
    store_env.upload_dir(tmp_path / "v1", version_prefix("iris", "v1"))
    capsys.readouterr()
    assert _run("verify", store_env.uri(version_prefix("iris", "v1"))) == 4
    err = capsys.readouterr().err
    assert "INVALID" in err and "incomplete" in err and COMPLETE_MARKER in err

    assert _run("verify", store_env.uri(version_prefix("iris", "v9"))) == 2
    assert "nothing is published at" in capsys.readouterr().err

    publish_model_dir(store_env, tmp_path / "v2", "iris", "v2")
    assert _run("verify", store_env.uri(version_prefix("iris", "v2"))) == 0, capsys.readouterr()
    assert "OK:" in capsys.readouterr().out
