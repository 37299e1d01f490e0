"""Synthetic model-server metrics for the canary analysis tests.

:func:`metrics_page` renders, with ``prometheus_client``, the series the model
server exports (same names, labels and latency buckets as ``serving.metrics``)
for chosen per-version traffic, so the analysis reads exactly what it would
read from ``/metrics``. :class:`MetricsServer` serves such a page on
127.0.0.1 with counters that grow with time, for a real Prometheus to scrape.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from mlops.core.net import LOCALHOST

#: ``serving.metrics.REQUEST_DURATION``'s buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Traffic:
    """What one version answered: requests, errors, a typical latency, predicted classes.

    Attributes:
        requests: Requests answered.
        errors: Of those, with status 500.
        latency: Seconds each request took.
        classes: Share of predicted rows per class (one row per request).
        out_of_range: Out-of-range input values per request.
    """

    requests: int
    errors: int = 0
    latency: float = 0.004
    classes: dict[str, float] = field(default_factory=lambda: {"a": 0.5, "b": 0.5})
    out_of_range: float = 0.0

    def scaled(self, factor: float) -> Traffic:
        """The same traffic, ``factor`` times as much."""
        return Traffic(
            round(self.requests * factor),
            round(self.errors * factor),
            self.latency,
            self.classes,
            self.out_of_range,
        )


def metrics_page(model: str, traffic: dict[str, Traffic]) -> str:
    """The ``/metrics`` text of a server that answered ``traffic`` per version."""
    registry = CollectorRegistry()
    requests = Counter(
        "mlops_requests_total", "r", ["model", "version", "protocol"], registry=registry
    )
    errors = Counter(
        "mlops_request_errors_total", "e", ["model", "version", "code"], registry=registry
    )
    predictions = Counter(
        "mlops_predictions_total", "p", ["model", "version", "class"], registry=registry
    )
    out_of_range = Counter(
        "mlops_input_out_of_range_total", "o", ["model", "version", "feature"], registry=registry
    )
    duration = Histogram(
        "mlops_request_duration_seconds",
        "d",
        ["model", "version", "endpoint"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    # Another model's series must not count.
    requests.labels("other-model", "v1", "v1").inc(10_000)
    errors.labels("other-model", "v2", "500").inc(10_000)
    for version, seen in traffic.items():
        requests.labels(model, version, "v1").inc(seen.requests)
        if seen.errors:
            errors.labels(model, version, "500").inc(seen.errors)
        errors.labels(model, version, "aborted").inc(3)  # a client that went away: no error
        for label, share in seen.classes.items():
            predictions.labels(model, version, label).inc(round(seen.requests * share))
        if seen.out_of_range:
            out_of_range.labels(model, version, "x").inc(seen.requests * seen.out_of_range)
        histogram = duration.labels(model, version, "predict")
        for _ in range(min(seen.requests, 2000)):
            histogram.observe(seen.latency)
    return generate_latest(registry).decode()


class MetricsServer:
    """Serves :func:`metrics_page` at ``/metrics`` with traffic growing ``per_second`` since start."""

    def __init__(self, model: str, per_second: dict[str, Traffic]) -> None:
        self.model, self.per_second = model, per_second
        self.started = time.monotonic()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                elapsed = time.monotonic() - owner.started
                grown = {v: t.scaled(elapsed) for v, t in owner.per_second.items()}
                body = metrics_page(owner.model, grown).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        """``host:port``."""
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
