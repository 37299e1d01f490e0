"""Open Inference Protocol conformance: schemathesis against the official REST specification.

The specification (kserve/open-inference-protocol,
``specification/protocol/open_inference_rest.yaml``) is read from ``../shared``
(skipped when absent, a failure under ``CI``). Its templated path parameters
(written ``${MODEL_NAME}`` there; the ``$`` is dropped so they are OpenAPI
templates) are filled with a model the server really serves, stable and
canary, and the inference operation gets a valid request body as its example,
so the 200 path is exercised next to generated bodies.

Every operation's answers go through schemathesis's ``not_a_server_error``,
``status_code_conformance``, ``content_type_conformance`` and
``response_schema_conformance`` checks. Generation is derandomized and bounded
(no shrinking), and every failure is collected and reported at the end.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import shared_path
from tests.serving_helpers import (
    build_model_dir,
    make_keypair,
    publish,
    serving_process,
)

pytestmark = pytest.mark.slow

SPEC = ("schemas", "open-inference-protocol", "open_inference_rest.yaml")
MODEL = "iris"
INFER = "/v2/models/{MODEL_NAME}/versions/{MODEL_VERSION}/infer"
#: Generated inference bodies per version, positive and negative each.
EXAMPLES = 60
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VALID_BODY = {
    "id": "conformance",
    "inputs": [
        *(
            {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
            for name, value in ROW.items()
        ),
        {"name": "color", "shape": [1], "datatype": "BYTES", "data": ["red"]},
    ],
}


def _specification() -> dict[str, Any]:
    raw = yaml.safe_load(shared_path(*SPEC).read_text(encoding="utf-8"))
    raw["paths"] = {path.replace("${", "{"): item for path, item in raw["paths"].items()}
    content = raw["paths"][INFER]["post"]["requestBody"]["content"]["application/json"]
    content["example"] = VALID_BODY
    return raw


@pytest.fixture(scope="module")
def server(store_settings, tmp_path_factory):
    """``mlops serve``'s server: iris v1 stable (logistic regression), v2 a 30% canary (forest)."""
    import uuid
    from dataclasses import replace

    from mlops.core.store import ObjectStore
    from mlops.deployment.state import Release, deploy

    store = ObjectStore(replace(store_settings, bucket="t-" + uuid.uuid4().hex[:12]))
    store.ensure_bucket()
    work: Path = tmp_path_factory.mktemp("oip")
    private, public = make_keypair(work / "keys")
    for version, estimator in (("v1", "logistic_regression"), ("v2", "random_forest")):
        model_dir, _, _ = build_model_dir(
            work / version, private, version=version, estimator=estimator
        )
        publish(store, model_dir, MODEL, version)
    deploy(store, MODEL, Release("v1", store.uri(f"models/{MODEL}/v1")))
    deploy(store, MODEL, Release("v2", store.uri(f"models/{MODEL}/v2")), canary_percent=30)
    with serving_process(store, public, work) as running:
        status = requests.get(f"{running.base}/v1/models/{MODEL}", timeout=5).json()
        assert (status["stable"], status["canary"]) == ("v1", "v2"), status
        yield running
    assert running.process.returncode == 0, running.tail()


def _checks() -> list[Any]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]


class Run:
    """Calls and validates cases, collecting every failure instead of stopping at the first."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.checks = _checks()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.failures: Counter[tuple[str, str]] = Counter()
        self.examples: dict[tuple[str, str], str] = {}

    def __call__(self, case: Any) -> Any:
        """Sends ``case``, runs the checks on the answer and returns the answer."""
        from schemathesis.core.failures import FailureGroup

        label = f"{case.operation.method.upper()} {case.operation.path}"
        response = case.call(base_url=self.base, session=self.session, timeout=10)
        self.statuses[(label, response.status_code)] += 1
        try:
            case.validate_response(response, checks=self.checks)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = (label, f"{failure.title}: {failure.message.splitlines()[0]}")
                self.failures[key] += 1
                self.examples.setdefault(key, f"{case.body!r:.300} -> {response.text[:500]}")
        return response

    def report(self) -> str:
        """Every distinct failure with its count and one example, then the status counts."""
        lines = [
            f"{n} x {label}: {kind}\n    {self.examples[(label, kind)]}"
            for (label, kind), n in self.failures.most_common()
        ]
        lines += [f"{label} -> {code}: {n}" for (label, code), n in sorted(self.statuses.items())]
        return "\n".join(lines)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_server_conforms_to_the_open_inference_protocol(server, version):
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_dict(_specification())
    run = Run(server.base)
    path_parameters = {"MODEL_NAME": MODEL, "MODEL_VERSION": version}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {INFER, "/v2/", "/v2/health/ready"}

    for operation in operations:
        parameters = path_parameters if "{MODEL_NAME}" in operation.path else {}
        if operation.path != INFER:
            run(operation.Case(path_parameters=parameters))
            continue
        # The specification's own example: a valid body answers 200 with every output.
        answer = run(
            operation.Case(
                path_parameters=parameters, body=VALID_BODY, media_type="application/json"
            )
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == version
        assert {o["name"] for o in answer.json()["outputs"]} == {"predict", "probabilities"}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode, path_parameters=parameters))
            def fuzz(case: Any) -> None:
                run(case)

            fuzz()

    assert not run.failures, f"{sum(run.failures.values())} failed checks\n{run.report()}"
    ok = sum(n for (_, code), n in run.statuses.items() if code == 200)
    assert ok >= len(operations), run.report()
