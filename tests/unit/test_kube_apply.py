"""apply/promote/rollback of InferenceServices against a fake Kubernetes API.

The Kubernetes API is mocked because no Kubernetes API runs here: ``FakeKServe``
exposes the ``KServeClient`` methods the code calls (get/create/replace/delete,
plus patch) over in-memory objects, and a scripted controller sets the Ready
condition of each new generation. Everything else (manifest building, the SDK
objects passed to the client and their serialisation) is real.
"""

from __future__ import annotations

import copy
import itertools

import pytest
from kubernetes.client import ApiClient

from mlops.core.errors import MlopsError, UsageError
from mlops.deployment.inferenceservice import build_inferenceservice
from mlops.deployment.kube import (
    apply_inferenceservice,
    get_inferenceservice,
    promote_inferenceservice,
    rollback_inferenceservice,
)

NS = "kubeflow-user"
MODEL = "iris"
WAIT = {"timeout_seconds": 0.2, "poll_seconds": 0.0, "sleep": lambda _s: None}


class FakeKServe:
    """In-memory InferenceServices with the ``KServeClient`` method signatures.

    ``ready`` decides the Ready condition the "controller" reports for each new
    generation: a callable ``(obj) -> "True" | "False" | "Unknown"``.
    """

    def __init__(self, ready=lambda obj: "True"):
        self.objects: dict[tuple[str, str], dict] = {}
        self.ready = ready
        self.calls: list[tuple[str, str]] = []
        self.refuse: str | None = None
        self._rv = itertools.count(100)

    # -- helpers --------------------------------------------------------------
    @staticmethod
    def _plain(inferenceservice) -> dict:
        return ApiClient().sanitize_for_serialization(inferenceservice)

    @staticmethod
    def _not_found(name: str) -> RuntimeError:
        return RuntimeError(
            "Exception when calling CustomObjectsApi->get_namespaced_custom_object:"
            f" (404)\nReason: Not Found\nHTTP response body: {name} not found"
        )

    def _store(self, obj: dict, generation: int) -> dict:
        meta = obj["metadata"]
        meta["generation"] = generation
        meta["resourceVersion"] = str(next(self._rv))
        obj["status"] = {
            "observedGeneration": generation - 1,
            "conditions": [{"type": "Ready", "status": "Unknown"}],
        }
        self.objects[(meta["namespace"], meta["name"])] = obj
        return copy.deepcopy(obj)

    # -- KServeClient API -----------------------------------------------------
    def get(self, name=None, namespace=None, **_kw):
        self.calls.append(("get", name))
        obj = self.objects.get((namespace, name))
        if obj is None:
            raise self._not_found(name)
        # the controller observes the latest generation and reports the scripted status
        generation = obj["metadata"]["generation"]
        if obj["status"]["observedGeneration"] < generation:
            state = self.ready(obj)
            if state != "Unknown":
                obj["status"] = {
                    "observedGeneration": generation,
                    "url": f"http://{name}.{namespace}",
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": state,
                            "reason": "Scripted" if state == "False" else None,
                        }
                    ],
                }
        return copy.deepcopy(obj)

    def create(self, inferenceservice, namespace=None, **_kw):
        self.calls.append(("create", inferenceservice.metadata.name))
        if self.refuse:
            raise RuntimeError(self.refuse)
        obj = self._plain(inferenceservice)
        obj["metadata"]["namespace"] = namespace
        if (namespace, obj["metadata"]["name"]) in self.objects:
            raise RuntimeError("(409)\nReason: Conflict")
        return self._store(obj, 1)

    def replace(self, name, inferenceservice, namespace=None, **_kw):
        self.calls.append(("replace", name))
        if self.refuse:
            raise RuntimeError(self.refuse)
        live = self.objects.get((namespace, name))
        if live is None:
            raise self._not_found(name)
        obj = self._plain(inferenceservice)
        if obj["metadata"].get("resourceVersion") != live["metadata"]["resourceVersion"]:
            raise RuntimeError("(409)\nReason: Conflict: resourceVersion mismatch")
        obj["metadata"]["namespace"] = namespace
        obj["metadata"]["uid"] = live["metadata"].get("uid")
        return self._store(obj, live["metadata"]["generation"] + 1)

    def patch(self, name, inferenceservice, namespace=None, **_kw):  # not used; kept for parity
        raise AssertionError("apply must replace, not merge-patch (a patch cannot remove fields)")

    def delete(self, name, namespace=None, **_kw):
        self.calls.append(("delete", name))
        if self.objects.pop((namespace, name), None) is None:
            raise self._not_found(name)
        return {"status": "Success"}

    # -- test helpers -----------------------------------------------------------
    def live(self, name=MODEL, namespace=NS) -> dict | None:
        return self.objects.get((namespace, name))


def _manifest(version: str, **kwargs) -> dict:
    return build_inferenceservice(
        MODEL, version, f"s3://mlops/models/{MODEL}/{version}", namespace=NS, **kwargs
    )


def _args(predictor: dict) -> list[str]:
    return predictor["containers"][0]["args"]


def test_create_when_absent_and_wait_ready():
    fake = FakeKServe()
    result = apply_inferenceservice(_manifest("v1"), client=fake, **WAIT)
    assert [c for c, _ in fake.calls if c != "get"] == ["create"]
    assert result["status"]["conditions"][0]["status"] == "True"
    assert fake.live()["spec"] == _manifest("v1")["spec"]


def test_replace_when_present_keeps_foreign_metadata():
    fake = FakeKServe()
    apply_inferenceservice(_manifest("v1"), client=fake, **WAIT)
    fake.objects[(NS, MODEL)]["metadata"]["labels"]["team"] = "fraud"
    result = apply_inferenceservice(_manifest("v2"), client=fake, **WAIT)
    assert [c for c, _ in fake.calls if c != "get"] == ["create", "replace"]
    live = fake.live()
    assert "s3://mlops/models/iris/v2" in _args(live["spec"]["predictor"])
    assert live["metadata"]["labels"]["team"] == "fraud"
    assert live["metadata"]["labels"]["mlops.kfp/version"] == "v2"
    assert live["metadata"]["generation"] == 2
    assert result["status"]["observedGeneration"] == 2


def test_replace_removes_fields_absent_from_the_manifest():
    fake = FakeKServe()
    apply_inferenceservice(_manifest("v1", deployment_mode="Standard"), client=fake, **WAIT)
    canary = _manifest("v2", deployment_mode="Standard", canary_percent=20, previous=fake.live())
    apply_inferenceservice(canary, client=fake, **WAIT)
    assert fake.live()["spec"]["canary"]
    apply_inferenceservice(
        _manifest("v3", deployment_mode="Standard", previous=fake.live()), client=fake, **WAIT
    )
    assert "canary" not in fake.live()["spec"]


def test_timeout_rolls_back_to_previous_spec():
    fake = FakeKServe()
    apply_inferenceservice(_manifest("v1"), client=fake, **WAIT)
    before = copy.deepcopy(fake.live())
    # v2 never becomes Ready; the restored v1 spec does
    fake.ready = lambda obj: (
        "Unknown" if "v2" in obj["metadata"]["labels"]["mlops.kfp/version"] else "True"
    )
    with pytest.raises(MlopsError) as caught:
        apply_inferenceservice(_manifest("v2"), client=fake, **WAIT)
    message = str(caught.value)
    assert "not Ready after" in message and "restored the previous spec" in message
    live = fake.live()
    assert live["spec"] == before["spec"]
    assert live["metadata"]["labels"] == before["metadata"]["labels"]
    assert live["metadata"]["annotations"] == before["metadata"]["annotations"]


def test_ready_false_on_create_deletes_the_new_object():
    fake = FakeKServe(ready=lambda obj: "False")
    with pytest.raises(MlopsError) as caught:
        apply_inferenceservice(
            _manifest("v1"), client=fake, timeout_seconds=30, poll_seconds=0, sleep=lambda _s: None
        )
    assert "Ready=False" in str(caught.value)
    assert "deleted the new InferenceService" in str(caught.value)
    assert fake.live() is None
    assert ("delete", MODEL) in fake.calls


def test_api_refusal_is_an_mlops_error_and_changes_nothing():
    fake = FakeKServe()
    fake.refuse = "(422)\nReason: Unprocessable Entity"
    with pytest.raises(MlopsError, match="refused"):
        apply_inferenceservice(_manifest("v1"), client=fake, **WAIT)
    assert fake.live() is None


def test_get_returns_none_only_when_absent():
    fake = FakeKServe()
    assert get_inferenceservice(MODEL, NS, fake) is None

    class Broken(FakeKServe):
        def get(self, *args, **kwargs):
            raise RuntimeError("(403)\nReason: Forbidden")

    with pytest.raises(MlopsError, match="Forbidden"):
        get_inferenceservice(MODEL, NS, Broken())


def test_serverless_promote_and_rollback():
    fake = FakeKServe()
    apply_inferenceservice(_manifest("v1"), client=fake, **WAIT)
    apply_inferenceservice(
        _manifest("v2", canary_percent=20, previous=fake.live()), client=fake, **WAIT
    )
    assert fake.live()["spec"]["predictor"]["canaryTrafficPercent"] == 20

    rollback_inferenceservice(MODEL, NS, fake, **WAIT)
    assert fake.live()["spec"]["predictor"]["canaryTrafficPercent"] == 0
    with pytest.raises(UsageError, match="no canary"):
        promote_inferenceservice(MODEL, NS, fake, **WAIT)

    apply_inferenceservice(
        _manifest("v3", canary_percent=30, previous=fake.live()), client=fake, **WAIT
    )
    promote_inferenceservice(MODEL, NS, fake, **WAIT)
    predictor = fake.live()["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    assert "s3://mlops/models/iris/v3" in _args(predictor)


def test_raw_promote_and_rollback():
    fake = FakeKServe()
    apply_inferenceservice(_manifest("v1", deployment_mode="RawDeployment"), client=fake, **WAIT)
    apply_inferenceservice(
        _manifest("v2", deployment_mode="RawDeployment", canary_percent=25, previous=fake.live()),
        client=fake,
        **WAIT,
    )
    spec = fake.live()["spec"]
    assert "s3://mlops/models/iris/v1" in _args(spec["predictor"])
    assert spec["canary"][0]["trafficPercent"] == 25

    rollback_inferenceservice(MODEL, NS, fake, **WAIT)
    spec = fake.live()["spec"]
    assert "canary" not in spec and "s3://mlops/models/iris/v1" in _args(spec["predictor"])
    with pytest.raises(UsageError, match="no canary"):
        rollback_inferenceservice(MODEL, NS, fake, **WAIT)

    apply_inferenceservice(
        _manifest("v3", deployment_mode="RawDeployment", canary_percent=25, previous=fake.live()),
        client=fake,
        **WAIT,
    )
    promote_inferenceservice(MODEL, NS, fake, **WAIT)
    live = fake.live()
    assert "canary" not in live["spec"]
    assert live["spec"]["predictor"]["name"] == "v3"
    assert "s3://mlops/models/iris/v3" in _args(live["spec"]["predictor"])
    assert live["metadata"]["labels"]["mlops.kfp/version"] == "v3"


def test_failed_promote_is_rolled_back():
    fake = FakeKServe()
    apply_inferenceservice(_manifest("v1", deployment_mode="Standard"), client=fake, **WAIT)
    apply_inferenceservice(
        _manifest("v2", deployment_mode="Standard", canary_percent=10, previous=fake.live()),
        client=fake,
        **WAIT,
    )
    before = copy.deepcopy(fake.live()["spec"])
    fake.ready = lambda obj: "Unknown" if "canary" not in obj["spec"] else "True"
    with pytest.raises(MlopsError, match="restored the previous spec"):
        promote_inferenceservice(MODEL, NS, fake, **WAIT)
    assert fake.live()["spec"] == before


def test_promote_missing_service_fails():
    with pytest.raises(MlopsError, match="does not exist"):
        promote_inferenceservice(MODEL, NS, FakeKServe(), **WAIT)
