"""The project's HTTP additions on a bare FastAPI app, in process (no server, no store).

The model repository's endpoints are refused unless opted in with a token; the
Open Inference Protocol metadata names the served versions and the platform; a
version the name does not serve is a 404 JSON error; the ASGI guard answers a
malformed ``Inference-Header-Content-Length`` with 400, a body that does not
arrive in time with 408, and counts a client that went away as ``aborted``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kserve import ModelRepository

from mlops.core.settings import ServingSettings
from serving import rest
from serving.router import RoutedModel

TOKEN = "unit-test-token"


class FakePredictor:
    """What RoutedModel and the routes need of a loaded version."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.ready = True

    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": "x", "datatype": "FP64", "shape": [-1]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [{"name": "predict", "datatype": "INT64", "shape": [-1]}]

    def predict(self, payload: Any, headers: Any = None) -> dict[str, Any]:
        return {"predictions": [0], "model_version": self.version}


class FakeDataPlane:
    def metadata(self) -> dict[str, Any]:
        return {"name": "kserve", "version": "0", "extensions": [rest.MODEL_REPOSITORY_EXTENSION]}


def _client(settings: ServingSettings | None = None) -> tuple[TestClient, ModelRepository]:
    from serving.server import served_models

    settings = settings or ServingSettings()
    repository = served_models()
    model = RoutedModel("m")
    model.set_route(FakePredictor("v1"), FakePredictor("v2"), 50)  # type: ignore[arg-type]
    repository.update(model)
    app = FastAPI()
    rest.install(app, repository, settings, FakeDataPlane())
    return TestClient(app), repository


@pytest.mark.parametrize(
    "settings",
    [
        ServingSettings(),
        ServingSettings(admin_token=TOKEN),  # a token alone does not opt in
        ServingSettings(admin_api=True),  # opting in without a token keeps them off
    ],
)
def test_the_model_repository_is_off_unless_opted_in_with_a_token(settings):
    client, repository = _client(settings)
    for action in ("load", "unload"):
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
            answer = client.post(f"/v2/repository/models/m/{action}", headers=headers)
            assert answer.status_code == 403
            assert "MLOPS_ADMIN_API" in answer.json()["error"]
    assert repository.get_model("m") is not None
    assert rest.MODEL_REPOSITORY_EXTENSION not in client.get("/v2").json()["extensions"]


def test_the_opted_in_model_repository_needs_the_right_bearer_token():
    client, repository = _client(ServingSettings(admin_api=True, admin_token=TOKEN))
    unload = "/v2/repository/models/m/unload"
    missing = client.post(unload)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    for wrong in ("Bearer nope", f"Basic {TOKEN}", f"Bearer {TOKEN}x"):
        assert client.post(unload, headers={"Authorization": wrong}).status_code in (401, 403)
    assert repository.get_model("m") is not None

    right = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post(unload, headers=right).json() == {"name": "m", "unload": True}
    assert repository.get_model("m") is None
    assert client.post("/v2/repository/models/m/load", headers=right).json() == {
        "name": "m",
        "load": True,
    }
    assert repository.get_model("m").served_versions() == ["v1", "v2"]
    assert client.post("/v2/repository/models/other/unload", headers=right).status_code == 404
    assert rest.MODEL_REPOSITORY_EXTENSION in client.get("/v2/").json()["extensions"]


def test_metadata_lists_the_served_versions_and_the_platform():
    client, _ = _client()
    body = client.get("/v2/models/m").json()
    assert (body["versions"], body["platform"]) == (["v1", "v2"], "sklearn")
    assert client.get("/v2/models/m/versions/v2").json()["inputs"] == body["inputs"]
    assert client.get("/v2/models/m/versions/v1/ready").json() == {"name": "m", "ready": True}
    status = client.get("/v1/models/m").json()
    assert (status["versions"], status["fallback"]) == (["v1", "v2"], None)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/models/m/versions/v9"),
        ("GET", "/v2/models/m/versions/v9/ready"),
        ("POST", "/v2/models/m/versions/v9/infer"),
        ("GET", "/v2/models/nope/versions/v1"),
        ("GET", "/v2/models/nope"),
    ],
)
def test_a_version_or_model_not_served_is_a_404_json_error(method, path):
    client, _ = _client()
    answer = client.request(method, path, json={"inputs": []})
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert "v9" in answer.json()["error"] or "nope" in answer.json()["error"]


@pytest.mark.parametrize("value", ["abc", "-1", "0", "1e3", " ", "9" * 30, "101"])
def test_a_malformed_inference_header_length_is_a_400(value):
    client, _ = _client()
    body = b"x" * 100
    answer = client.post(
        "/v2/models/m/infer",
        content=body,
        headers={"Content-Type": "application/json", "Inference-Header-Content-Length": value},
    )
    assert answer.status_code == 400, answer.text
    assert "Inference-Header-Content-Length" in answer.json()["error"]


# -- the guard as a bare ASGI app --------------------------------------------------------------
def _scope(path: str = "/v1/models/m:predict") -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path, "headers": []}


def _run_guard(app: Any, receive: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    guard = rest.RequestGuard(app, 1000, lambda name: "v1", body_timeout=timeout)
    asyncio.run(guard(_scope(), receive, send))
    return sent


def _errors(code: str) -> float:
    from prometheus_client import REGISTRY

    labels = {"model": "m", "version": "v1", "role": "stable", "code": code}
    return REGISTRY.get_sample_value("mlops_request_errors_total", labels) or 0.0


def test_a_body_that_does_not_arrive_in_time_is_a_408():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    async def never() -> dict[str, Any]:
        await asyncio.sleep(60)
        return {"type": "http.request", "body": b""}

    with pytest.raises(rest.BodyTimeout) as raised:
        _run_guard(app, never, timeout=0.2)
    assert raised.value.status_code == 408
    assert raised.value.headers == {"connection": "close"}
    assert "MLOPS_BODY_TIMEOUT_SECONDS" in raised.value.detail


def test_a_client_that_goes_away_is_counted_as_aborted_not_as_a_500():
    from starlette.requests import ClientDisconnect

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()

    async def gone() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    aborted, failed = _errors(rest.ABORTED), _errors("500")
    assert _run_guard(app, gone) == []
    assert (_errors(rest.ABORTED), _errors("500")) == (aborted + 1, failed)


def test_a_server_error_after_a_complete_body_still_raises():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("boom")

    async def body() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    with pytest.raises(RuntimeError):
        _run_guard(app, body)


def test_settings_keep_the_admin_token_out_of_repr():
    settings = replace(ServingSettings(), admin_api=True, admin_token=TOKEN)
    assert settings.admin_enabled and TOKEN not in repr(settings)
    env = {
        "MLOPS_ADMIN_API": "true",
        "MLOPS_ADMIN_TOKEN": TOKEN,
        "MLOPS_HEADER_TIMEOUT_SECONDS": "3",
    }
    read = ServingSettings.from_env(env)
    assert (read.admin_enabled, read.header_timeout_seconds) == (True, 3.0)
    assert not ServingSettings.from_env({"MLOPS_ADMIN_TOKEN": TOKEN}).admin_enabled


def test_metrics_are_encoded_off_the_event_loop():
    from prometheus_client import REGISTRY

    seen: list[bool] = []

    class Probe:
        """A collector noting whether it runs where an event loop runs."""

        def collect(self):
            try:
                asyncio.get_running_loop()
                seen.append(True)
            except RuntimeError:
                seen.append(False)
            return []

    client, _ = _client()
    probe = Probe()
    REGISTRY.register(probe)  # type: ignore[arg-type]
    seen.clear()  # registering collects once, in this (loop-less) thread
    try:
        answer = client.get("/metrics")
    finally:
        REGISTRY.unregister(probe)  # type: ignore[arg-type]
    assert answer.status_code == 200
    assert "mlops_request_timeouts_total" in answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    assert seen == [False]  # collected on a worker thread, not on the loop
