"""A fake Kubeflow Pipelines API server for the cluster-facing tests.

No KFP API server runs here, so this one stands in for it: a real HTTP server on
127.0.0.1 implementing just the v2beta1 endpoints ``kfp.Client`` calls for what
the project does (healthz; experiments get/list/create; runs create/get;
recurring runs create/list/get/enable/disable/delete). The real ``kfp.Client``
talks to it over HTTP, so the tests see exactly what a cluster would receive:
the pipeline spec (with every executor's image), the service account, the
namespace, the cron and the Authorization header.

Runs finish on the second look: a created run is ``RUNNING`` when first read and
then takes the state and task details of :attr:`FakeKfp.finish_with`.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

API = "/apis/v2beta1"


@dataclass
class Request:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeKfp:
    """The server's state; ``url`` is its address."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    recurring_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: When set, every request must carry ``Authorization: Bearer <token>`` (else 401).
    required_token: str | None = None
    #: The state and task details a run takes once read: tasks as (display name, state).
    finish_with: dict[str, Any] = field(
        default_factory=lambda: {
            "state": "SUCCEEDED",
            "tasks": [("Publish the signed model", "SUCCEEDED")],
        }
    )
    _reads: dict[str, int] = field(default_factory=dict)

    def received(self, method: str, path_suffix: str) -> list[Request]:
        """The requests with this method whose path ends with ``path_suffix``."""
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    # -- the endpoints ---------------------------------------------------------------------

    def handle(self, request: Request) -> tuple[int, Any]:
        if self.required_token and request.headers.get("authorization") != (
            f"Bearer {self.required_token}"
        ):
            return 401, {"error": "unauthenticated", "code": 16, "message": "bad token"}
        path = request.path.removeprefix(API)
        method = request.method
        if method == "GET" and path == "/healthz":
            return 200, {"multi_user": False}
        if path == "/experiments":
            return self._experiments(method, request)
        if method == "GET" and path.startswith("/experiments/"):
            found = self.experiments.get(path.rsplit("/", 1)[1])
            return (200, found) if found else (404, {"message": "no such experiment"})
        if method == "POST" and path == "/runs":
            run_id = uuid.uuid4().hex[:12]
            self.runs[run_id] = {**request.body, "run_id": run_id, "state": "PENDING"}
            return 200, self.runs[run_id]
        if method == "GET" and path.startswith("/runs/"):
            return self._get_run(path.rsplit("/", 1)[1])
        if path == "/recurringruns":
            return self._recurring_runs(method, request)
        if path.startswith("/recurringruns/"):
            return self._recurring_run(method, path.removeprefix("/recurringruns/"))
        return 404, {"message": f"fake KFP has no {method} {request.path}"}

    def _experiments(self, method: str, request: Request) -> tuple[int, Any]:
        if method == "POST":
            experiment_id = uuid.uuid4().hex[:12]
            self.experiments[experiment_id] = {**request.body, "experiment_id": experiment_id}
            return 200, self.experiments[experiment_id]
        wanted = None
        if "filter" in request.query:
            predicates = json.loads(request.query["filter"][0]).get("predicates", [])
            wanted = next(
                (p["stringValue"] for p in predicates if p["key"] == "display_name"), None
            )
        namespace = request.query.get("namespace", [None])[0]
        found = [
            e
            for e in self.experiments.values()
            if (wanted is None or e.get("display_name") == wanted)
            and (namespace is None or e.get("namespace") == namespace)
        ]
        return 200, {"experiments": found, "total_size": len(found)} if found else {}

    def _get_run(self, run_id: str) -> tuple[int, Any]:
        run = self.runs.get(run_id)
        if run is None:
            return 404, {"message": "no such run"}
        self._reads[run_id] = self._reads.get(run_id, 0) + 1
        if self._reads[run_id] == 1:
            run["state"] = "RUNNING"
        else:
            run["state"] = self.finish_with["state"]
            run["run_details"] = {
                "task_details": [
                    {"display_name": name, "state": state}
                    for name, state in self.finish_with["tasks"]
                ]
            }
        return 200, run

    def _recurring_runs(self, method: str, request: Request) -> tuple[int, Any]:
        if method == "POST":
            recurring_run_id = uuid.uuid4().hex[:12]
            self.recurring_runs[recurring_run_id] = {
                **request.body,
                "recurring_run_id": recurring_run_id,
            }
            return 200, self.recurring_runs[recurring_run_id]
        size = int(request.query.get("page_size", ["10"])[0])
        start = int(request.query.get("page_token", ["0"])[0] or 0)
        namespace = request.query.get("namespace", [None])[0]
        every = sorted(
            (r for r in self.recurring_runs.values() if self._in_namespace(r, namespace)),
            key=lambda r: r["recurring_run_id"],
        )
        page = every[start : start + size]
        # KFP's JSON names the list in camel case (kfp_server_api's attribute_map).
        answer: dict[str, Any] = {"recurringRuns": page, "total_size": len(every)}
        if start + size < len(every):
            answer["next_page_token"] = str(start + size)
        return 200, answer

    def _in_namespace(self, run: dict[str, Any], namespace: str | None) -> bool:
        """A recurring run belongs to its experiment's namespace, as on KFP."""
        experiment = self.experiments.get(run.get("experiment_id", ""), {})
        return namespace is None or experiment.get("namespace") == namespace

    def _recurring_run(self, method: str, rest: str) -> tuple[int, Any]:
        recurring_run_id, _, action = rest.partition(":")
        run = self.recurring_runs.get(recurring_run_id)
        if run is None:
            return 404, {"message": "no such recurring run"}
        if method == "GET" and not action:
            return 200, run
        if method == "DELETE" and not action:
            del self.recurring_runs[recurring_run_id]
            return 200, {}
        if method == "POST" and action in ("enable", "disable"):
            run["mode"] = "ENABLE" if action == "enable" else "DISABLE"
            return 200, {}
        return 404, {"message": f"fake KFP has no {method} recurringruns/{rest}"}


def _handler(state: FakeKfp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(
                method=self.command,
                path=url.path,
                query=parse_qs(url.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=json.loads(raw) if raw else None,
            )
            state.requests.append(request)
            status, payload = state.handle(request)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet test output

    return Handler


def serve() -> Iterator[FakeKfp]:
    """Runs a fake KFP API on 127.0.0.1 (a free port) until the generator is closed."""
    state = FakeKfp()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
