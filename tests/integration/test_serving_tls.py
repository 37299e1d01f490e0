"""The model server over TLS and mutual TLS, with certificates made in the test (mlops.core.tls).

``python -m serving.server --tls-cert --tls-key`` answers HTTPS to a client
trusting its CA; plain HTTP to that port gets no answer; a client trusting
another CA refuses the server. With ``--tls-client-ca``, a client without a
certificate, or with one from another CA, is refused during the handshake and
one with a valid certificate is served. ``python -m serving`` (the single-model
container entry) takes the same flags.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace

import pytest
import requests

from mlops.core.net import free_port
from mlops.core.tls import create_ca, issue_server_certificate
from tests.serving_helpers import (
    REPO,
    build_model_dir,
    make_keypair,
    publish,
    sample_rows,
    serving_process,
    v1_list_rows,
)

pytestmark = pytest.mark.slow

MODEL = "iris"
ROWS = v1_list_rows(sample_rows(2))


@pytest.fixture(scope="module")
def setup(store_settings, tmp_path_factory):
    from mlops.core.store import ObjectStore
    from mlops.deployment.state import Release, deploy

    store = ObjectStore(replace(store_settings, bucket="t-" + uuid.uuid4().hex[:12]))
    store.ensure_bucket()
    work = tmp_path_factory.mktemp("tls")
    private, public = make_keypair(work / "keys")
    model_dir, _, _ = build_model_dir(work / "v1", private, version="v1")
    publish(store, model_dir, MODEL, "v1")
    deploy(store, MODEL, Release("v1", store.uri(f"models/{MODEL}/v1")))
    ca = create_ca(work / "ca")
    other = create_ca(work / "other-ca", "another CA")
    certs = {
        "server": issue_server_certificate(ca, work / "certs"),
        "client": issue_server_certificate(
            ca, work / "certs", ("client-a",), "client", client=True
        ),
        "stranger": issue_server_certificate(
            other, work / "certs", ("client-b",), "stranger", client=True
        ),
    }
    return store, public, work, model_dir, ca, other, certs


def _predict(base: str, **kwargs) -> requests.Response:
    return requests.post(
        f"{base}/v1/models/{MODEL}:predict", json={"instances": ROWS}, timeout=10, **kwargs
    )


def test_https_answers_and_plain_http_or_another_ca_does_not(setup):
    store, public, work, _, ca, other, certs = setup
    folder = work / "https"
    folder.mkdir()
    server = certs["server"]
    with serving_process(store, public, folder, tls=(server.cert, server.key), ca=ca.cert) as run:
        assert run.base.startswith("https://")
        answer = _predict(run.base, verify=str(ca.cert))
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == "v1"
        with pytest.raises(requests.exceptions.ConnectionError):
            _predict(f"http://127.0.0.1:{run.port}")
        with pytest.raises(requests.exceptions.SSLError):
            _predict(run.base, verify=str(other.cert))
    assert run.process.returncode == 0, run.tail()


def test_mutual_tls_serves_only_clients_with_a_certificate_of_the_client_ca(setup):
    store, public, work, _, ca, _, certs = setup
    folder = work / "mtls"
    folder.mkdir()
    server, client, stranger = certs["server"], certs["client"], certs["stranger"]
    with serving_process(
        store,
        public,
        folder,
        tls=(server.cert, server.key, ca.cert),
        ca=ca.cert,
        client_cert=(client.cert, client.key),
    ) as run:
        served = _predict(run.base, verify=str(ca.cert), cert=(str(client.cert), str(client.key)))
        assert served.status_code == 200, served.text
        with pytest.raises(requests.exceptions.ConnectionError):  # SSLError is one
            _predict(run.base, verify=str(ca.cert))
        with pytest.raises(requests.exceptions.ConnectionError):
            _predict(run.base, verify=str(ca.cert), cert=(str(stranger.cert), str(stranger.key)))
    assert run.process.returncode == 0, run.tail()


def test_the_single_model_entry_takes_the_same_tls_flags(setup):
    _, public, work, model_dir, ca, _, certs = setup
    server = certs["server"]
    port = free_port()
    log = work / "single.log"
    argv = [
        sys.executable,
        "-m",
        "serving",
        "--model-name",
        MODEL,
        "--storage-uri",
        str(model_dir),
        "--public-key",
        str(public),
        "--host",
        "127.0.0.1",
        "--http-port",
        str(port),
        "--tls-cert",
        str(server.cert),
        "--tls-key",
        str(server.key),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env["MLOPS_HOME"] = str(work / "single-home")
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                answer = _predict(f"https://127.0.0.1:{port}", verify=str(ca.cert))
                break
            except requests.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        assert answer.status_code == 200, answer.text
        with pytest.raises(requests.exceptions.ConnectionError):
            _predict(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_tls_flags_are_checked(tmp_path):
    import argparse

    from mlops.core.errors import UsageError
    from serving.server import TLSFiles, add_server_arguments

    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    assert TLSFiles.from_args(parser.parse_args([])) is None
    with pytest.raises(UsageError, match="go together"):
        TLSFiles.from_args(parser.parse_args(["--tls-cert", str(cert)]))
    with pytest.raises(UsageError, match="needs --tls-cert"):
        TLSFiles.from_args(parser.parse_args(["--tls-client-ca", str(cert)]))
    with pytest.raises(UsageError, match="no such file"):
        TLSFiles.from_args(
            parser.parse_args(["--tls-cert", str(cert), "--tls-key", str(tmp_path / "k")])
        )
