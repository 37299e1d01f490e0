"""The serving benchmark's ceiling: a trivial ``kserve.Model`` on the same model server.

    python bench/ceiling_server.py PORT

It answers ``:predict`` with one label per instance and does nothing else, so
``bench_serving.py`` can show, in the same run, how much of a request's time the
HTTP stack (KServe, FastAPI, uvicorn) takes and how much the predictor adds.
"""

from __future__ import annotations

import sys

from kserve import Model

from mlops.core.settings import ServingSettings
from serving.server import LOCAL_HOST, serve


class Constant(Model):
    """Ready at once; one label per instance, no validation, no model."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    def predict(self, payload, headers=None, response_headers=None):
        return {"predictions": [0] * len(payload["instances"])}


def main() -> int:
    port = int(sys.argv[1])
    serve([Constant("bench-model")], LOCAL_HOST, port, ServingSettings.from_env())
    return 0


if __name__ == "__main__":
    sys.exit(main())
