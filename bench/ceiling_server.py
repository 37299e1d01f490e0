"""The serving benchmark's ceiling: a trivial ``kserve.Model`` on the same model server.

    python bench/ceiling_server.py PORT

It answers ``:predict`` with one label per instance and does nothing else, so
``bench_serving.py`` can show, in the same run, how much of a request's time the
HTTP stack (KServe, FastAPI, uvicorn) takes and how much the predictor adds.
"""

from __future__ import annotations

import sys

from kserve import Model

from serving.server import _model_server_class


class Constant(Model):
    """Ready at once; one label per instance, no validation, no model."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    def predict(self, payload, headers=None, response_headers=None):
        return {"predictions": [0] * len(payload["instances"])}


def main() -> int:
    port = int(sys.argv[1])
    server = _model_server_class()(host="127.0.0.1", http_port=port)
    server.register_model(Constant("bench-model"))
    server.start([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
