"""The serving benchmark's baselines: the same fitted models behind a bare server.

    python bench/bare_serving.py kserve|starlette PORT NAME=MODEL_DIR [NAME=MODEL_DIR ...]

* ``kserve``: one plain ``kserve.Model`` per model, what a data scientist writes
  first: ``predict`` turns the V1 instances (or the V2 ``InferRequest``) into a
  DataFrame and calls the fitted pipeline's ``predict``. KServe's own REST server
  (one worker, its default uvicorn settings), bound to 127.0.0.1.
* ``starlette``: the framework floor, a bare Starlette app with the same two
  endpoints doing the same (JSON in, DataFrame, ``predict``, JSON out) on uvicorn.

Neither validates, bounds, logs or counts anything. Each model is read from its
model folder with the project's skops loader (the same fitted object the project's
server loads). Only the benchmark runs this.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HOST = "127.0.0.1"


def _load(model_dir: Path) -> Any:
    from mlops.model.modelio import load_model
    from mlops.model.packaging import MODEL_FILE

    return load_model(model_dir / MODEL_FILE)


def _v2_frame(inputs: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({i["name"]: i["data"] for i in inputs})


def _labels(values: np.ndarray) -> tuple[list, str]:
    if values.dtype.kind in "iu":
        return values.astype(np.int64).tolist(), "INT64"
    return [str(v) for v in values], "BYTES"


def serve_kserve(port: int, models: dict[str, Any]) -> None:
    """Plain ``kserve.Model`` predictors on KServe's REST server (one worker, loopback)."""
    from kserve import Model, ModelServer
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
    from kserve.protocol.rest.server import RESTServer

    class Bare(Model):
        def __init__(self, name: str, model: Any) -> None:
            super().__init__(name)
            self.model = model
            self.ready = True

        def predict(self, payload, headers=None, response_headers=None):
            if isinstance(payload, InferRequest):
                labels, datatype = _labels(self.model.predict(payload.as_dataframe()))
                return InferResponse(
                    response_id=payload.id,
                    model_name=self.name,
                    infer_outputs=[
                        InferOutput(
                            name="predict", shape=[len(labels)], datatype=datatype, data=labels
                        )
                    ],
                )
            frame = pd.DataFrame(payload["instances"])
            return {"predictions": _labels(self.model.predict(frame))[0]}

    server = ModelServer(http_port=port, enable_grpc=False, enable_latency_logging=False)
    for name, model in models.items():
        server.register_model(Bare(name, model))
    rest = RESTServer(
        FASTAPI_APP_IMPORT_STRING,
        server.dataplane,
        server.model_repository_extension,
        port,
        access_log_format=server.access_log_format,
        grace_period=server.grace_period,
        event_loop=server.event_loop,
        timeout_keep_alive=server.timeout_keep_alive,
    )
    rest.config.host = HOST
    server.register_signal_handler()
    asyncio.run(rest.start())


def serve_starlette(port: int, models: dict[str, Any]) -> None:
    """A bare Starlette app: parse JSON, DataFrame, ``predict``, JSON (uvicorn, one worker)."""
    import orjson
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def json(content: Any, status: int = 200) -> Response:
        return Response(orjson.dumps(content), status, media_type="application/json")

    async def v1(request: Request) -> Response:
        model = models[request.path_params["name"].removesuffix(":predict")]
        body = orjson.loads(await request.body())
        return json({"predictions": _labels(model.predict(pd.DataFrame(body["instances"])))[0]})

    async def v2(request: Request) -> Response:
        name = request.path_params["name"]
        body = orjson.loads(await request.body())
        labels, datatype = _labels(models[name].predict(_v2_frame(body["inputs"])))
        return json(
            {
                "model_name": name,
                "id": body.get("id"),
                "outputs": [
                    {
                        "name": "predict",
                        "shape": [len(labels)],
                        "datatype": datatype,
                        "data": labels,
                    }
                ],
            }
        )

    async def ready(request: Request) -> Response:
        return json({"name": request.path_params["name"], "ready": True})

    app = Starlette(
        routes=[
            Route("/v1/models/{name}", v1, methods=["POST"]),
            Route("/v2/models/{name}/infer", v2, methods=["POST"]),
            Route("/v2/models/{name}/ready", ready, methods=["GET"]),
        ]
    )
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)


def main(argv: list[str]) -> int:
    """Serves the named model folders with the chosen bare server."""
    kind, port, *pairs = argv
    models = {}
    for pair in pairs:
        name, _, folder = pair.partition("=")
        models[name] = _load(Path(folder))
    {"kserve": serve_kserve, "starlette": serve_starlette}[kind](int(port), models)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
