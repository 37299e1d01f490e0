"""No secret in anything the demo flow produces: files, logs, reports, YAML, JSON, store objects.

Runs ``python -m mlops.demo`` (what ``make demo`` runs: training pipeline, serving
with real requests, drifted traffic, the monitoring pipeline that retrains and
releases a canary) on its own MLOPS_HOME and embedded store, with the model
server logging every request at DEBUG, then the ``--json`` commands a user runs
next and ``compile.py``. Then every file produced (run folders, task outputs,
logs, the drift reports, compiled YAML, the captured stdout/stderr of every
command) and every object in the store's bucket is searched for the store's
secret key and for the private signing key (each line of its PEM body, and the
raw DER), inside zip members (``model.skops``), gzip streams and decoded Parquet
values too. The only files allowed to hold them are the ones meant to: the
store's own credential files and the private key file itself.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.hostile_helpers import find_secrets, secret_needles
from tests.training_helpers import MODEL_NAME, REPO_ROOT, cli_command, cli_env

pytestmark = pytest.mark.slow

#: Files under MLOPS_HOME that exist to hold a secret (relative paths).
SECRET_HOLDERS = {
    Path("store/credentials.json"),
    Path("store/s3-identities.json"),
    Path("keys/signing-key.pem"),
}
#: The store's raw volume files; their content is scanned as objects, through S3.
STORE_DATA = Path("store/data")


def _run(command: list[str], env: dict[str, str], out: Path, timeout: float = 600) -> int:
    """Runs ``command``, saving its stdout and stderr as produced files; returns the exit code."""
    completed = subprocess.run(  # noqa: S603 - fixed argv
        command,
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    out.with_suffix(".stdout").write_text(completed.stdout)
    out.with_suffix(".stderr").write_text(completed.stderr)
    return completed.returncode


def _produced_files(home: Path, outputs: Path) -> list[Path]:
    files = []
    for root in (home, outputs):
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(home) if root == home else None
            if not path.is_file() or relative in SECRET_HOLDERS:
                continue
            if relative is not None and STORE_DATA in relative.parents:
                continue
            files.append(path)
    return files


def _flow(home: Path, outputs: Path) -> None:
    """The demo, then the commands a user runs next, each with ``--json`` where it has one."""
    env = cli_env(home, MLOPS_LOG_LEVEL="DEBUG", MLOPS_ACCESS_LOG="true")
    code = _run([sys.executable, "-m", "mlops.demo"], env, outputs / "demo", timeout=600)
    assert code == 0, (outputs / "demo.stderr").read_text()[-3000:]
    signed = sorted((home / "runs").glob("training-*"))[0] / "sign-model" / "signed_model"
    commands = {  # name -> (arguments, expected exit code)
        "drift": (
            ["drift", "--model", MODEL_NAME, "--json", "--report", str(outputs / "d.html")],
            0,
        ),
        "scan": (["scan", str(signed), "--json"], 0),
        "promote": (["promote", MODEL_NAME, "--json"], 0),
        "bad-run": (["run", "training", "--json", "-p", "data_uri=/nonexistent.csv"], 2),
    }
    codes = {
        name: _run(cli_command(*args), env, outputs / name) for name, (args, _) in commands.items()
    }
    assert codes == {name: code for name, (_, code) in commands.items()}, codes
    code = _run(
        [sys.executable, "compile.py", "--out", str(outputs / "compiled")], env, outputs / "compile"
    )
    assert code == 0 and list((outputs / "compiled").glob("*.yaml"))


def test_the_scanner_finds_a_planted_secret(tmp_path):
    # The negative result below only counts if the scanner sees through what it claims to.
    from mlops.trust.signing import generate_keypair

    generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub.pem")
    pem = (tmp_path / "k.pem").read_text()
    needles = secret_needles("s3cr3t/key+with=chars", pem)
    line = pem.splitlines()[2]
    sink = io.BytesIO()
    pq.write_table(pa.table({"v": ["a", f"x{line}y"]}), sink, compression="zstd")
    assert find_secrets("p.parquet", sink.getvalue(), needles)
    assert find_secrets("log", b"... s3cr3t%2Fkey%2Bwith%3Dchars ...", needles)
    assert not find_secrets("clean", b"nothing to see", needles)


def test_no_secret_in_anything_the_demo_flow_produces(tmp_path):
    from mlops.core.embedded_store import EmbeddedStore
    from mlops.core.store import ObjectStore

    home, outputs = tmp_path / "home", tmp_path / "outputs"
    outputs.mkdir()
    embedded = EmbeddedStore(home)
    try:
        _flow(home, outputs)
        secret = json.loads((home / "store" / "credentials.json").read_text())["secret_key"]
        needles = secret_needles(secret, (home / "keys" / "signing-key.pem").read_text())

        leaks: list[str] = []
        files = _produced_files(home, outputs)
        for path in files:
            leaks += find_secrets(str(path.relative_to(tmp_path)), path.read_bytes(), needles)
        store = ObjectStore(embedded.settings())
        objects = sorted(store.list("", recursive=True))
        for key in objects:
            leaks += find_secrets(f"s3://{store.bucket}/{key}", store.get_bytes(key), needles)

        kinds = {p.suffix or p.name for p in files}
        print(
            f"secret scan: {len(files)} files ({len(kinds)} kinds) and {len(objects)} store "
            f"objects, {len(needles)} needles: {len(leaks)} leaks"
        )
        assert not leaks, "\n".join(leaks)
        assert len(files) > 50 and len(objects) >= 15, (len(files), len(objects))
        for expected in ("models/", "reports/", "inference-logs/", "deployments/"):
            assert any(key.startswith(expected) for key in objects), expected
        assert any(p.suffix == ".yaml" for p in files) and any(p.suffix == ".html" for p in files)
    finally:
        embedded.stop()
