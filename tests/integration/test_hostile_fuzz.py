"""Generated hostile requests against a real ``mlops serve``: never a 5xx, always a JSON 4xx.

Hypothesis generates requests (more than 2,000 over the module) for V1
``:predict`` and ``:explain``, V2 ``/infer`` (JSON and the binary tensor
extension) and the metadata endpoints, mixing valid bodies with malformed and
hostile ones: ragged arrays, wrong shapes and datatypes, shape products that
overflow, non-finite and near-overflow values, wrong content types, bad
``Inference-Header-Content-Length``, ``</script>`` and other unicode in
strings, deep nesting. Every answer must be:

* below 500;
* for a 4xx: a JSON object with an ``error`` string;
* for a request the model must accept (``expect="ok"``): a 200;
* for one it must refuse (``expect="reject"``: malformed, non-finite after
  conversion, unknown model...): a 4xx;
* for a 200 from an inference endpoint: no ``null`` (JSON's NaN) among the
  predictions, probabilities or attributions.

Each test runs every generated case and fails once at the end, listing every
problem by family and status, so one run shows the whole picture. Generation is
derandomized: every run sends the same requests. State-changing endpoints (the
model repository's load/unload) are not fuzzed here: they would take the model
away from the rest of the module; their refusal has its own test.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest
import requests
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.hostile_helpers import ServeProcess, fresh_bucket, publish_and_deploy, running_server
from tests.hostile_requests import (
    FOREST,
    FOREST_EXPLAIN,
    FOREST_PREDICT,
    ISSUE_EXPLAIN_SEEDS,
    ISSUE_METADATA_SEEDS,
    ISSUE_V1_SEEDS,
    ISSUE_V2_SEEDS,
    V1_EXPLAIN,
    V1_PREDICT,
    V2_INFER,
    Case,
    metadata_case,
    problems_with,
    v1_cases,
    v2_cases,
    wrong_method_on_inference,
)
from tests.serving_helpers import make_keypair

pytestmark = pytest.mark.slow

#: Wall-clock budget of one fuzz test; past it no more requests are sent (and the test fails).
BUDGET_SECONDS = 120.0
#: Consecutive requests without an answer after which the server counts as down.
MAX_UNANSWERED = 20


@dataclass
class Tally:
    """Every case sent and every problem found, for one fuzz test."""

    server: ServeProcess
    budget: float = BUDGET_SECONDS
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    families: Counter = field(default_factory=Counter)  # (family, status) -> count
    failures: dict[tuple[str, str, int], list[str]] = field(
        default_factory=lambda: defaultdict(list)
    )
    unanswered_in_a_row: int = 0
    previous: tuple[Case, int] | None = None
    stopped: str = ""
    started: float = field(default_factory=time.monotonic)

    def send(self, case: Case) -> None:
        """Sends ``case`` (unless the budget is spent or the server is down) and checks it.

        A request that gets no answer is sent once more on a fresh connection: when
        that one is answered, the server had dropped the keep-alive connection after
        the *previous* answer (uvicorn closes it after an unhandled exception), so
        the problem is recorded against the previous case.
        """
        if self.stopped:
            return
        if time.monotonic() - self.started > self.budget:
            self.stopped = f"time budget of {self.budget:.0f} s spent"
            return
        status, headers, text = self._request(case)
        if status == 0:
            self.server.http = requests.Session()
            status, headers, text = self._request(case)
            if status != 0 and self.previous is not None:
                before, before_status = self.previous
                self._fail(
                    before, "keep-alive connection dropped after this answer", before_status, ""
                )
        self.unanswered_in_a_row = self.unanswered_in_a_row + 1 if status == 0 else 0
        if self.unanswered_in_a_row >= MAX_UNANSWERED:
            self.stopped = f"{MAX_UNANSWERED} requests in a row got no answer"
        self.sent += 1
        self.statuses[status] += 1
        self.families[(case.family, status)] += 1
        for problem in problems_with(case, status, headers, text):
            self._fail(case, problem, status, text)
        self.previous = (case, status)

    def _request(self, case: Case) -> tuple[int, dict[str, str], str]:
        try:
            response = self.server.http.request(
                case.method,
                self.server.base + case.path,
                data=case.body,
                headers=dict(case.headers),
                timeout=15,
            )
        except requests.RequestException as exc:
            return 0, {}, f"{type(exc).__name__}: {exc}"
        return (
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()},
            response.text,
        )

    def _fail(self, case: Case, problem: str, status: int, text: str) -> None:
        self.failures[(case.family, problem, status)].append(
            f"{case.describe()}\n      -> {status} {text[:200]}"
        )

    def report(self) -> str:
        """Figures, then every problem grouped by (family, problem, status), with examples."""
        seconds = time.monotonic() - self.started
        lines = [
            f"{self.sent} requests in {seconds:.1f} s; statuses {dict(sorted(self.statuses.items()))}",
        ]
        by_family: dict[str, dict[int, int]] = defaultdict(dict)
        for (family, status), count in self.families.items():
            by_family[family][status] = count
        lines += [
            f"  {family}: {dict(sorted(s.items()))}" for family, s in sorted(by_family.items())
        ]
        if self.stopped:
            lines.append(f"STOPPED EARLY: {self.stopped}")
        for (family, problem, status), examples in sorted(self.failures.items()):
            lines.append(f"[{family}] {problem}: status {status} x{len(examples)}")
            lines += [f"    e.g. {e}" for e in examples[:3]]
        return "\n".join(lines)


def fuzz(
    server: ServeProcess,
    cases: st.SearchStrategy[Case],
    max_examples: int,
    minimum: int,
    seeds: tuple[Case, ...] = (),
) -> Tally:
    """Sends ``seeds`` then ``max_examples`` generated cases; fails listing every problem.

    Raises:
        AssertionError: fewer than ``minimum`` requests were sent, a problem was
            found, or the server stopped serving.
    """
    tally = Tally(server)

    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate),  # every case runs; nothing to shrink
        suppress_health_check=list(HealthCheck),
    )
    @given(cases)
    def run(case: Case) -> None:
        tally.send(case)

    for seed in seeds:
        run = example(seed)(run)
    run()
    report = tally.report()
    print(report)
    if not (server.alive() and server.ready()):
        pytest.fail(f"the server stopped serving during the fuzz\n{report}\n{server.tail()}")
    if tally.failures or tally.stopped or tally.sent < minimum:
        pytest.fail(f"{report}\n(at least {minimum} requests expected)", pytrace=False)
    return tally


# -- the server -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(store_settings, tmp_path_factory):
    """``mlops serve``: iris (logistic regression, 20% random-forest canary) and iris-forest."""
    store = fresh_bucket(store_settings)
    work = tmp_path_factory.mktemp("fuzz")
    private, public = make_keypair(work / "keys")
    publish_and_deploy(
        store,
        work,
        private,
        public,
        {"v1": "logistic_regression", "v2": "random_forest"},
        canary="v2",
    )
    publish_and_deploy(store, work, private, public, {"f1": "random_forest"}, model_name=FOREST)
    with running_server(store, work, public) as served:
        yield served


# -- the tests --------------------------------------------------------------------------------
def test_v1_predict_fuzz(server):
    fuzz(
        server,
        st.one_of(
            v1_cases(V1_PREDICT), v1_cases(FOREST_PREDICT), wrong_method_on_inference(V1_PREDICT)
        ),
        max_examples=700,
        minimum=650,
        seeds=ISSUE_V1_SEEDS,
    )


def test_v1_explain_fuzz(server):
    fuzz(
        server,
        st.one_of(v1_cases(V1_EXPLAIN), v1_cases(FOREST_EXPLAIN)),
        max_examples=400,
        minimum=370,
        seeds=ISSUE_EXPLAIN_SEEDS,
    )


def test_v2_infer_fuzz(server):
    fuzz(
        server,
        st.one_of(v2_cases(), wrong_method_on_inference(V2_INFER)),
        max_examples=900,
        minimum=850,
        seeds=ISSUE_V2_SEEDS,
    )


def test_metadata_fuzz(server):
    fuzz(server, metadata_case(), max_examples=300, minimum=250, seeds=ISSUE_METADATA_SEEDS)
