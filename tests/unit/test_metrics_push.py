"""push_drift_metrics / push_release_decision against a tiny local HTTP server."""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from mlops.drift import ColumnDrift, DriftResult
from mlops.metrics_push import push_drift_metrics, push_release_decision


class _Gateway:
    def __init__(self, status: int = 200):
        self.requests: list[tuple[str, str, str]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length).decode()
                gateway.requests.append((self.command, self.path, body))
                self.send_response(status)
                self.end_headers()

            do_PUT = do_POST = _handle

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _result() -> DriftResult:
    cols = {
        "age": ColumnDrift("age", True, 0.25, "Wasserstein distance (normed)", 0.1),
        "city": ColumnDrift("city", False, 0.03, "Jensen-Shannon distance", 0.1),
    }
    return DriftResult(
        drift_detected=True,
        drift_share=0.5,
        drifted_columns=["age"],
        columns=cols,
        n_reference=1000,
        n_current=800,
        share_threshold=0.5,
    )


def test_push_drift_metrics():
    with _Gateway() as gw:
        assert push_drift_metrics(gw.address, "iris", _result()) is True
    assert len(gw.requests) == 1
    method, path, body = gw.requests[0]
    assert method == "PUT"
    assert path == "/metrics/job/mlops_drift/model/iris"
    assert 'mlops_drift_share{model="iris"} 0.5' in body
    assert 'mlops_drift_detected{model="iris"} 1.0' in body
    assert 'mlops_drifted_columns{model="iris"} 2.0' not in body
    assert 'mlops_drifted_columns{model="iris"} 1.0' in body
    assert 'mlops_feature_drift_score{feature="age",model="iris"} 0.25' in body
    assert 'mlops_feature_drift_score{feature="city",model="iris"} 0.03' in body
    assert 'mlops_drift_last_check_timestamp_seconds{model="iris"}' in body


def test_push_release_decision():
    with _Gateway() as gw:
        assert push_release_decision(f"http://{gw.address}", "iris", "rejected") is True
    method, path, body = gw.requests[0]
    assert method == "PUT" and path == "/metrics/job/mlops_release/model/iris"
    assert 'mlops_release_decision{decision="rejected",model="iris"} 1.0' in body
    assert 'mlops_release_decision{decision="released",model="iris"} 0.0' in body
    assert 'mlops_release_decision{decision="no_drift",model="iris"} 0.0' in body
    assert 'mlops_release_decision_timestamp_seconds{model="iris"}' in body


def test_unknown_decision_is_not_pushed(caplog):
    with _Gateway() as gw, caplog.at_level(logging.WARNING, logger="mlops.metrics_push"):
        assert push_release_decision(gw.address, "iris", "maybe") is False
    assert gw.requests == []
    assert "maybe" in caplog.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_gateway_returns_false(caplog):
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="mlops.metrics_push"):
        assert push_drift_metrics(address, "iris", _result(), timeout=2) is False
        assert push_release_decision(address, "iris", "released", timeout=2) is False
    assert "could not push metrics" in caplog.text


@pytest.mark.parametrize("status", [500, 400])
def test_gateway_error_status_returns_false(status):
    with _Gateway(status=status) as gw:
        assert push_drift_metrics(gw.address, "iris", _result()) is False
