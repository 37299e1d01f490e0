"""Shared helpers for the serving tests: a tiny signed model directory trained in-process.

The directory is made the way the training step makes it -- the schema, the
pipeline and the files all come from :mod:`mlops.model.training` and
:mod:`mlops.model.packaging` -- so the served model follows the project's contract:
``model.skops`` (ColumnTransformer(numeric impute+scale, categorical
impute+one-hot) + classifier), ``metadata.json``, ``reference.parquet``,
``requirements.txt`` and ``model.sig``.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import requests

from tests.training_helpers import iris_with_color, make_keypair  # noqa: F401 - make_keypair re-exported

REPO = Path(__file__).resolve().parents[1]
PROC_NET_TCP = Path("/proc/net/tcp")
NUMERIC = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CATEGORICAL = ["color"]
FEATURES = NUMERIC + CATEGORICAL


def iris_frame(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Iris plus a categorical ``color`` column: (features, integer labels 0-2)."""
    from sklearn.datasets import load_iris

    features = iris_with_color(seed).drop(columns="species")
    return features, pd.Series(load_iris().target, name="species")


def build_model_dir(
    dest: Path,
    private_key: Path,
    *,
    model_name: str = "iris",
    version: str = "v1",
    estimator: str = "logistic_regression",
    seed: int = 0,
    binary: bool = False,
):
    """Trains, writes (as the training step does) and signs a model directory.

    ``binary`` trains on "virginica or not" (labels 0/1) instead of the three species.

    Returns:
        (model_dir, fitted pipeline, feature frame used for training)
    """
    from mlops.model.packaging import write_model_dir
    from mlops.model.schema import FeatureSchema
    from mlops.model.training import build_pipeline
    from tests.release_helpers import release_and_sign

    features, target = iris_frame(seed)
    if binary:
        target = (target == 2).astype(int)
    schema = FeatureSchema.from_frame(features)
    model = build_pipeline(schema, estimator, seed).fit(features, target)
    accuracy = float((model.predict(features) == target).mean())
    write_model_dir(
        dest,
        model,
        model_name=model_name,
        version=version,
        schema=schema,
        target_column="species",
        estimator=estimator,
        drop_columns=[],
        metrics={"train_accuracy": accuracy},
        fingerprints={},
        train_features=features,
        params={},
        seed=seed,
    )
    release_and_sign(dest, private_key)
    return Path(dest), model, features


def publish(store, model_dir: Path, model_name: str, version: str):
    from mlops.model.registry import publish_model_dir

    return publish_model_dir(store, model_dir, model_name, version)


def sample_rows(n: int = 10, seed: int = 1) -> pd.DataFrame:
    features, _ = iris_frame()
    return features.sample(n, random_state=seed).reset_index(drop=True)


def v1_list_rows(frame: pd.DataFrame) -> list[list]:
    return [[row[name] for name in FEATURES] for row in frame.to_dict("records")]


def v2_per_feature(frame: pd.DataFrame, model_name: str = "iris", **kwargs):
    """A V2 ``InferRequest`` with one input per feature (FP64 numeric, BYTES categorical)."""
    from kserve.protocol.infer_type import InferInput, InferRequest

    inputs = [
        InferInput(
            name=name,
            shape=[len(frame)],
            datatype="FP64" if name in NUMERIC else "BYTES",
            data=frame[name].tolist(),
        )
        for name in FEATURES
    ]
    return InferRequest(model_name=model_name, infer_inputs=inputs, **kwargs)


def v1_object_rows(frame: pd.DataFrame) -> list[dict]:
    return [{name: row[name] for name in FEATURES} for row in frame.to_dict("records")]


def flip_byte(path: Path, offset: int = 200) -> None:
    data = bytearray(Path(path).read_bytes())
    data[min(offset, len(data) - 1)] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on ``port``, from the Linux kernel's TCP table."""
    found = set()
    for line in PROC_NET_TCP.read_text().splitlines()[1:]:
        fields = line.split()
        address, _, hex_port = fields[1].partition(":")
        if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


def metric_sample(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus text exposition's samples of ``name`` matching ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class ServerProcess:
    """A ``python -m serving.server`` subprocess on a loopback port."""

    base: str
    port: int
    log: Path
    process: subprocess.Popen

    def tail(self, chars: int = 4000) -> str:
        """The end of the server's log."""
        return self.log.read_text(errors="replace")[-chars:]


@contextlib.contextmanager
def serving_process(
    store,
    public_key: Path,
    work: Path,
    *,
    ready: tuple[str, ...] = ("iris",),
    tls: tuple[Path, Path] | tuple[Path, Path, Path] | None = None,
    ca: Path | None = None,
    client_cert: tuple[Path, Path] | None = None,
    preamble: str | None = None,
    **settings: str,
) -> Iterator[ServerProcess]:
    """Runs ``python -m serving.server`` against ``store`` until the block ends.

    Waits (60 s at most) until every model in ``ready`` answers ``/v2/models/<m>/ready``;
    on exit sends SIGTERM and waits for a clean stop.

    Args:
        store: The ObjectStore whose deployments are served.
        public_key: The key models must be signed with.
        work: Folder for the server's log and ``MLOPS_HOME``.
        ready: Models that must be ready before the block starts.
        tls: ``(cert, key)`` or ``(cert, key, client_ca)``: serve HTTPS (mutual TLS with
            the client CA); ``base`` is then an ``https://`` URL.
        ca: The CA the readiness check trusts (with ``tls``).
        client_cert: ``(cert, key)`` the readiness check presents (with a client CA).
        preamble: Python run in the server process before the server starts (a test's
            stand-in for a misbehaving model); the server is then started by ``-c``.
        **settings: Extra environment (``MLOPS_*`` serving settings).
    """
    from mlops.core.net import free_port

    port = free_port()
    env = {
        **os.environ,
        **store.settings.to_env(),
        "MLOPS_HOME": str(work / "home"),
        "MLOPS_RECONCILE_SECONDS": "0.3",
        "MLOPS_INFERENCE_LOG_FLUSH_SECONDS": "0.5",
        "PYTHONUNBUFFERED": "1",
        **settings,
    }
    log = work / "server.log"
    entry = ["-m", "serving.server"]
    if preamble is not None:
        entry = ["-c", preamble + "\nimport sys\nfrom serving.server import main\nsys.exit(main())"]
    argv = [sys.executable, *entry, "--host", "127.0.0.1", "--port", str(port)]
    if tls is not None:
        argv += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        if len(tls) == 3:
            argv += ["--tls-client-ca", str(tls[2])]
    with open(log, "wb") as out:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [*argv, "--public-key", str(public_key)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    scheme = "https" if tls is not None else "http"
    server = ServerProcess(f"{scheme}://127.0.0.1:{port}", port, log, process)
    try:
        _wait_ready(
            server,
            ready,
            verify=str(ca) if ca is not None else True,
            cert=(str(client_cert[0]), str(client_cert[1])) if client_cert else None,
        )
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if os.environ.get("MLOPS_SHOW_SERVER_LOG"):
            print(server.tail())


def _wait_ready(
    server: ServerProcess,
    models: tuple[str, ...],
    timeout: float = 60.0,
    verify: str | bool = True,
    cert: tuple[str, str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(models)
    while waiting:
        if server.process.poll() is not None:
            raise AssertionError(
                f"server exited with {server.process.returncode}:\n{server.tail()}"
            )
        try:
            url = f"{server.base}/v2/models/{waiting[0]}/ready"
            if requests.get(url, timeout=2, verify=verify, cert=cert).status_code == 200:
                waiting.pop(0)
                continue
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{waiting} not ready in {timeout:g} s:\n{server.tail()}")
        time.sleep(0.2)


def raw_exchange(
    port: int, chunks: list[bytes], pause: float = 0.0, wait: float = 15.0
) -> tuple[bytes, float]:
    """Sends ``chunks`` on a raw connection (``pause`` s apart), then reads until it closes.

    Sending stops as soon as the server answers (a server that drops a slow client
    answers mid-way).

    Returns:
        What the server sent, and the seconds from the first byte sent until the connection
        closed (``wait`` at most).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as connection:
        started = time.monotonic()
        received = b""
        try:
            for chunk in chunks:
                if select.select([connection], [], [], 0)[0]:
                    break  # answered (or closed) already
                connection.sendall(chunk)
                if pause:
                    time.sleep(pause)
            while True:
                data = connection.recv(65536)
                if not data:
                    break
                received += data
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            pass
        return received, time.monotonic() - started
