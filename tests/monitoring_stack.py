"""Start/stop the real monitoring servers (Prometheus, Pushgateway, Alertmanager) for tests.

Everything binds 127.0.0.1 on free ports, every process logs into a file under the
test's temp dir (``ManagedProcess.tail()`` puts the log into failure messages), and
every wait is bounded. Nothing here is mocked: the binaries are the Debian
``prometheus``, ``prometheus-pushgateway`` and ``prometheus-alertmanager``.

``require_binary`` skips the test when a binary is missing, and fails it when the
``CI`` environment variable is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from mlops.core.net import LOCALHOST, free_port

PROMETHEUS = "prometheus"
PUSHGATEWAY = "prometheus-pushgateway"
ALERTMANAGER = "prometheus-alertmanager"
PROMTOOL = "promtool"


STACK_BINARIES = (PROMETHEUS, PUSHGATEWAY, ALERTMANAGER)


def missing_binaries(names: Sequence[str] = STACK_BINARIES) -> list[str]:
    """The binaries of ``names`` that are not on PATH."""
    return [name for name in names if shutil.which(name) is None]


def skip_unless_binaries(names: Sequence[str] = STACK_BINARIES) -> pytest.MarkDecorator:
    """A ``skipif`` mark for a module that needs ``names``.

    It never skips when ``CI`` is set: there ``require_binary`` fails the test instead.
    """
    missing = missing_binaries(names)
    return pytest.mark.skipif(
        bool(missing) and not os.environ.get("CI"), reason=f"not installed: {', '.join(missing)}"
    )


def require_binary(name: str) -> str:
    """Absolute path of ``name`` on PATH; skips the test when absent (fails when ``CI`` is set)."""
    path = shutil.which(name)
    if path is None:
        message = (
            f"{name} is not installed (Debian package prometheus / prometheus-pushgateway / "
            "prometheus-alertmanager)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{message}; it is required in CI")
        pytest.skip(message)
    return path


class ManagedProcess:
    """A subprocess with its stdout+stderr in ``log``; ``stop()`` terminates, then kills."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log = Path(log)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.process: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            # own session: a Ctrl-C in the terminal reaches pytest only, teardown stops us by pid
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def tail(self, chars: int = 3000) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError as exc:
            text = f"<no log: {exc}>"
        return f"--- {self.name} ({' '.join(self.argv[:2])}...) log tail ---\n{text[-chars:]}"


def wait_http_ready(
    url: str,
    process: ManagedProcess,
    timeout: float = 30.0,
    ok: Callable[[requests.Response], bool] = lambda r: r.status_code == 200,
) -> None:
    """Polls ``url`` until ``ok(response)``; fails early when ``process`` exits, with its log."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if not process.running:
            raise AssertionError(
                f"{process.name} exited with {process.returncode} before {url} was "
                f"ready\n{process.tail()}"
            )
        try:
            response = requests.get(url, timeout=2)
            if ok(response):
                return
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except requests.RequestException as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{process.name} not ready at {url} within {timeout:.0f} s "
                f"(last: {last})\n{process.tail()}"
            )
        time.sleep(0.2)


def wait_until(
    condition: Callable[[], Any],
    timeout: float,
    interval: float = 0.5,
    describe: Callable[[], str] = lambda: "",
) -> Any:
    """Calls ``condition`` until it returns something truthy (returned), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.0f} s. {describe()}")
        time.sleep(interval)


# --------------------------------------------------------------------------- configs


_FOR = re.compile(r"^(\s*)for:\s*\S+\s*$", re.MULTILINE)
_INTERVAL = re.compile(r"^(\s*)interval:\s*\S+\s*$", re.MULTILINE)


def fast_rules_copy(source: Path, dest: Path, *, for_: str = "0s", interval: str = "1s") -> Path:
    """Writes the Prometheus rule file ``source`` to ``dest`` with shorter durations.

    Every ``for:`` is set to ``for_`` and every group ``interval:`` to ``interval``;
    every other line is unchanged.

    The production durations are covered by ``promtool test rules`` (deploy/monitoring/tests);
    an end-to-end test cannot wait minutes for them.
    """
    text = Path(source).read_text(encoding="utf-8")
    text, n_for = _FOR.subn(rf"\g<1>for: {for_}", text)
    text, n_interval = _INTERVAL.subn(rf"\g<1>interval: {interval}", text)
    if n_for == 0:
        raise AssertionError(f"no 'for:' in {source}; the rule file format changed?")
    # sanity: the rewrite must leave a rule file with the same rules
    before, after = yaml.safe_load(Path(source).read_text(encoding="utf-8")), yaml.safe_load(text)

    def names(doc):
        return [
            (r.get("alert") or r.get("record"), r["expr"])
            for g in doc["groups"]
            for r in g["rules"]
        ]

    assert names(before) == names(after), "rewriting for:/interval: changed the rules"
    Path(dest).write_text(text, encoding="utf-8")
    return Path(dest)


def promtool_check_rules(path: Path) -> None:
    promtool = require_binary(PROMTOOL)
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"promtool check rules {path}:\n{done.stdout}\n{done.stderr}"


def prometheus_config(
    *,
    serving_targets: Sequence[str],
    pushgateway: str,
    alertmanager: str,
    rule_files: Sequence[Path],
    serving_job: str = "mlops-serving",
    interval: str = "1s",
) -> dict[str, Any]:
    """A Prometheus config shaped like deploy/monitoring/prometheus.yml, with fast intervals."""
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
            "external_labels": {"environment": "test"},
        },
        "rule_files": [str(p) for p in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {
                "job_name": serving_job,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": list(serving_targets)}],
            },
            {
                "job_name": "mlops-pushgateway",
                "honor_labels": True,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [pushgateway]}],
            },
        ],
    }


def _route_fast(route: dict[str, Any], wait: str) -> None:
    for key in ("group_wait", "group_interval"):
        route[key] = wait
    route["repeat_interval"] = "1h"
    for child in route.get("routes") or []:
        _route_fast(child, wait)


def alertmanager_config(source: Path, webhook_base: str, wait: str = "1s") -> dict[str, Any]:
    """The repo's alertmanager.yml, pointed at local webhooks and quick to fire.

    Webhook hosts become ``webhook_base`` (paths kept) and every route's
    group_wait/group_interval becomes ``wait``. Routing, receivers and inhibit rules
    are otherwise the repo's.
    """
    config = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
    for receiver in config.get("receivers") or []:
        for hook in receiver.get("webhook_configs") or []:
            path = re.sub(r"^[a-z]+://[^/]+", "", hook["url"]) or "/"
            hook["url"] = webhook_base.rstrip("/") + path
    _route_fast(config["route"], wait)
    return config


def write_yaml(path: Path, data: Any) -> Path:
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return Path(path)


# --------------------------------------------------------------------------- webhook receiver


class WebhookReceiver:
    """Records the JSON bodies Alertmanager POSTs, on 127.0.0.1:<free port>, in a thread."""

    def __init__(self) -> None:
        self.payloads: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 10_000_000))
                try:
                    payload = json.loads(body or b"{}")
                except ValueError:
                    payload = {"unparsed": body.decode("utf-8", "replace")}
                with receiver._lock:
                    receiver.payloads.append((self.path, payload))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOCALHOST, free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{LOCALHOST}:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="webhook-receiver",
            daemon=True,
        )

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def alerts(self) -> list[tuple[str, dict[str, Any]]]:
        """(path, alert) for every alert of every payload received so far."""
        with self._lock:
            return [
                (path, alert)
                for path, payload in self.payloads
                for alert in payload.get("alerts", [])
            ]

    def find(self, alertname: str, status: str = "firing", **labels: str) -> list[tuple[str, dict]]:
        return [
            (path, alert)
            for path, alert in self.alerts()
            if alert.get("status") == status
            and alert.get("labels", {}).get("alertname") == alertname
            and all(alert["labels"].get(k) == v for k, v in labels.items())
        ]

    def summary(self) -> str:
        return "received: " + json.dumps(
            sorted(
                {
                    (p, a.get("status"), json.dumps(a.get("labels"), sort_keys=True))
                    for p, a in self.alerts()
                }
            ),
            indent=1,
        )


# --------------------------------------------------------------------------- Prometheus API


def prom_query(base: str, expr: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Instant query via ``/api/v1/query``; the result list (raises on an API error)."""
    response = requests.get(f"{base}/api/v1/query", params={"query": expr}, timeout=timeout)
    body = response.json()
    if response.status_code != 200 or body.get("status") != "success":
        raise AssertionError(f"query {expr!r} failed: HTTP {response.status_code} {body}")
    result = body["data"]["result"]
    return result if isinstance(result, list) else [result]


def prom_targets_up(base: str) -> dict[str, str]:
    """Job -> health of the active scrape targets."""
    body = requests.get(f"{base}/api/v1/targets", timeout=10).json()
    return {t["labels"]["job"]: t["health"] for t in body["data"]["activeTargets"]}


class Stack:
    """Processes started for a test, stopped together (in reverse order) in teardown."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.processes: list[ManagedProcess] = []

    def start(self, name: str, argv: Sequence[str], **kwargs: Any) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.workdir / f"{name}.log", **kwargs)
        self.processes.append(process)
        return process.start()

    def stop_all(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for process in reversed(self.processes):
            try:
                codes[process.name] = process.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others anyway
                codes[process.name] = None
                print(f"could not stop {process.name}: {exc}")
        return codes

    def logs(self, chars: int = 2000) -> str:
        return "\n".join(p.tail(chars) for p in self.processes)
