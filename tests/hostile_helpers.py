"""Helpers for the fault and attack tests: a real ``mlops serve``, load, kills, secret scans.

Everything runs for real on 127.0.0.1: the server is ``python -m mlops.cli serve``
in a subprocess, models are trained in-process and go through the project's own
publish and deploy functions, load comes from ``wrk`` or threads, faults are
``kill -9``, and memory is read from ``/proc``. Every wait and loop here is
bounded in time.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests

from tests.monitoring_stack import wait_until
from tests.serving_helpers import build_model_dir, publish

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCALHOST = "127.0.0.1"
WRK = shutil.which("wrk")
MODEL = "iris"
#: One valid V1 row of the tiny iris model (4 numbers, then the categorical ``color``).
ROW = [5.1, 3.5, 1.4, 0.2, "red"]


# -- stores and models -----------------------------------------------------------------------
def fresh_bucket(store_settings) -> Any:
    """An ObjectStore on a new bucket of the session's store (module-scoped fixtures use it)."""
    from mlops.core.store import ObjectStore

    store = ObjectStore(replace(store_settings, bucket="t-" + uuid.uuid4().hex[:12]))
    store.ensure_bucket()
    return store


def publish_and_deploy(
    store,
    work: Path,
    private_key: Path,
    public_key: Path,
    versions: dict[str, str],
    *,
    canary: str | None = None,
    canary_percent: int = 20,
    model_name: str = MODEL,
) -> dict[str, Any]:
    """Trains, signs and publishes ``versions`` (version -> estimator), then deploys them.

    The first version becomes stable; ``canary`` (one of ``versions``) then gets
    ``canary_percent`` of the traffic. Deployment goes through
    :func:`mlops.deployment.actions.deploy_action`, which verifies the signature.

    Returns:
        version -> fitted pipeline.
    """
    from mlops.deployment.actions import deploy_action

    models = {}
    for version, estimator in versions.items():
        model_dir, model, _ = build_model_dir(
            work / version, private_key, model_name=model_name, version=version, estimator=estimator
        )
        publish(store, model_dir, model_name, version)
        models[version] = model
    stable = next(iter(versions))
    deploy_action(
        model_name, store.uri(f"models/{model_name}/{stable}"), store=store, public_key=public_key
    )
    if canary is not None:
        deploy_action(
            model_name,
            store.uri(f"models/{model_name}/{canary}"),
            mode="canary",
            canary_percent=canary_percent,
            store=store,
            public_key=public_key,
        )
    return models


# -- processes and memory --------------------------------------------------------------------
def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from ``/proc/<pid>/status`` (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def wait_for(
    condition: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Polls ``condition`` until it returns something truthy; fails after ``timeout`` seconds."""
    return wait_until(condition, timeout, interval, describe=lambda: what)


def port_accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((LOCALHOST, port)) == 0


@dataclass
class ServeProcess:
    """``mlops serve`` (``python -m mlops.cli serve``) on a loopback port, in a subprocess.

    Attributes:
        port: The HTTP port.
        env: The environment it runs with (store settings, MLOPS_HOME, serving settings).
        log: File the server's stdout and stderr go to (appended across restarts).
        public_key: Key every served model must be signed with.
    """

    port: int
    env: dict[str, str]
    log: Path
    public_key: Path
    process: subprocess.Popen | None = None
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None, "server not started"
        return self.process.pid

    def start(self) -> ServeProcess:
        """Starts the server (does not wait for it)."""
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlops.cli",
                    "serve",
                    "--host",
                    LOCALHOST,
                    "--port",
                    str(self.port),
                    "--public-key",
                    str(self.public_key),
                ],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def ready(self, model: str = MODEL) -> bool:
        """Whether ``model`` answers ready on the V2 readiness endpoint."""
        try:
            response = self.http.get(f"{self.base}/v2/models/{model}/ready", timeout=2)
        except requests.RequestException:
            return False
        return response.status_code == 200

    def wait_ready(self, model: str = MODEL, timeout: float = 90.0) -> float:
        """Waits until ``model`` is ready; returns the seconds it took.

        Raises:
            AssertionError: the server exited or was not ready in time.
        """
        started = time.monotonic()
        while not self.ready(model):
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"mlops serve exited with {self.process.returncode}:\n{self.tail()}"
                )
            if time.monotonic() - started > timeout:
                raise AssertionError(f"mlops serve not ready in {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.05)
        return time.monotonic() - started

    def status(self, model: str = MODEL) -> dict[str, Any]:
        """``GET /v1/models/<model>``: the serving status (stable, canary, desired state)."""
        return self.http.get(f"{self.base}/v1/models/{model}", timeout=5).json()

    def alive(self) -> bool:
        """Whether the server process is still running."""
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        """``kill -9`` of the server process, then reaps it."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (then SIGKILL after ``timeout``); returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)

    def tail(self, chars: int = 4000) -> str:
        """The end of the server's log."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


def serve_env(store, home: Path, **settings: str) -> dict[str, str]:
    """Environment of an ``mlops serve`` subprocess: this store, MLOPS_HOME in tmp, settings.

    Any MLOPS_* variable of the calling environment is dropped first.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update(store.settings.to_env())
    env.update(
        {
            "MLOPS_HOME": str(home),
            "MLOPS_RECONCILE_SECONDS": "0.5",
            "MLOPS_INFERENCE_LOG_FLUSH_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(settings)
    return env


@contextlib.contextmanager
def running_server(
    store, work: Path, public_key: Path, model: str = MODEL, **settings: str
) -> Iterator[ServeProcess]:
    """A started ``mlops serve``, ``model`` ready, for the block; stopped (SIGTERM) afterwards."""
    from mlops.core.net import free_port

    server = ServeProcess(
        free_port(), serve_env(store, work / "home", **settings), work / "serve.log", public_key
    )
    server.start()
    try:
        server.wait_ready(model)
        yield server
    finally:
        server.stop()


# -- load ------------------------------------------------------------------------------------
@dataclass
class WrkResult:
    """What ``wrk`` measured (from its Lua ``done`` summary).

    Attributes:
        requests: Completed requests.
        seconds: Run time.
        non_2xx: Responses with a status >= 400 (wrk's ``status`` errors).
        socket_errors: connect + read + write + timeout errors.
        p50_ms: Median latency.
        p99_ms: 99th percentile latency.
        max_ms: Slowest request.
    """

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    raw: str = ""

    @property
    def errors(self) -> int:
        """Every failed request: non-2xx answers plus socket errors."""
        return self.non_2xx + self.socket_errors

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


_WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%(body)s]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\\"requests\\":%%d,\\"duration_us\\":%%d,\\"connect\\":%%d,\\"read\\":%%d," ..
    "\\"write\\":%%d,\\"status\\":%%d,\\"timeout\\":%%d,\\"p50_us\\":%%d,\\"p99_us\\":%%d," ..
    "\\"max_us\\":%%d}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def run_wrk(
    url: str,
    body: dict[str, Any],
    *,
    seconds: int,
    connections: int,
    threads: int = 1,
    timeout_seconds: int = 5,
    work: Path,
) -> WrkResult:
    """POSTs ``body`` as JSON to ``url`` with ``wrk`` for ``seconds``; returns its summary."""
    assert WRK is not None, "wrk is not installed"
    payload = json.dumps(body)
    assert "]==]" not in payload, "the Lua long string cannot hold ']==]'"
    script = work / "post.lua"
    script.write_text(_WRK_SCRIPT % {"body": payload})
    completed = subprocess.run(  # noqa: S603 - fixed argv
        [
            WRK,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            f"--timeout={timeout_seconds}s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr + completed.stdout
    line = next((x for x in completed.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    assert line is not None, completed.stdout
    summary = json.loads(line.removeprefix("WRK_JSON "))
    return WrkResult(
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        non_2xx=summary["status"],
        socket_errors=summary["connect"] + summary["read"] + summary["write"] + summary["timeout"],
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
        raw=completed.stdout,
    )


@dataclass
class Outcome:
    """One request of a :class:`ThreadLoad`.

    Attributes:
        sent: When it was sent (``time.monotonic()``).
        at: When it ended.
        status: HTTP status, 0 for no answer.
        version: The model version that answered a 200.
        error: Why there was no answer.
    """

    sent: float
    at: float
    status: int
    version: str | None = None
    error: str = ""


class ThreadLoad:
    """Threads POSTing one V1 row in a loop until stopped, each request's outcome recorded.

    Bounded: each thread stops at :meth:`stop` or after ``max_seconds``.
    """

    def __init__(
        self, url: str, *, threads: int = 4, max_seconds: float = 120.0, timeout: float = 5.0
    ) -> None:
        self.url = url
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, daemon=True, name=f"load-{i}")
            for i in range(threads)
        ]

    def __enter__(self) -> ThreadLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stops every thread and waits for them (bounded by the request timeout)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)

    def _run(self) -> None:
        session = requests.Session()
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                response = session.post(self.url, json={"instances": [ROW]}, timeout=self.timeout)
                version = response.json().get("model_version") if response.ok else None
                outcome = Outcome(sent, time.monotonic(), response.status_code, version)
            except (requests.RequestException, ValueError) as exc:
                outcome = Outcome(sent, time.monotonic(), 0, error=f"{type(exc).__name__}: {exc}")
                session = requests.Session()  # drop the broken keep-alive connection
                time.sleep(0.1)  # a client retrying, not a busy loop competing with the restart
            with self._lock:
                self.outcomes.append(outcome)

    def between(self, start: float, end: float = float("inf")) -> list[Outcome]:
        """The outcomes of requests that ended in ``[start, end)``."""
        with self._lock:
            return [o for o in self.outcomes if start <= o.at < end]

    def sent_after(self, moment: float) -> list[Outcome]:
        """The outcomes of requests sent after ``moment``."""
        with self._lock:
            return [o for o in self.outcomes if o.sent > moment]


# -- a TCP proxy that pulls the plug ---------------------------------------------------------
class TripwireProxy:
    """A loopback TCP proxy in front of the store that runs ``trip`` on a matching request.

    The first time a client sends bytes matching ``marker`` (say the request
    line of the PUT of a version's ``_COMPLETE``), ``trip`` runs *before* those
    bytes are forwarded; then the connection is cut. Everything else is passed
    through unchanged, so the client sees a real store until that moment.
    """

    def __init__(
        self, upstream_port: int, marker: re.Pattern[bytes], trip: Callable[[], None]
    ) -> None:
        self.upstream_port = upstream_port
        self.marker = marker
        self.trip = trip
        self.tripped = threading.Event()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOCALHOST, 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._trip_lock = threading.Lock()
        self._accepter = threading.Thread(target=self._accept, daemon=True, name="proxy")

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:<port>``, to give clients as ``MLOPS_S3_ENDPOINT``."""
        return f"{LOCALHOST}:{self.port}"

    def __enter__(self) -> TripwireProxy:
        self._accepter.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closed.set()
        self._accepter.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection((LOCALHOST, self.upstream_port), timeout=5)
        except OSError:
            client.close()
            return
        threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()
        self._pump(client, upstream, True)

    def _pump(self, source: socket.socket, sink: socket.socket, inspect: bool) -> None:
        tail = b""
        try:
            source.settimeout(60)
            while not self._closed.is_set():
                chunk = source.recv(65536)
                if not chunk:
                    break
                if inspect:
                    seen = tail + chunk
                    tail = seen[-1024:]  # a request line split across two reads still matches
                    if self.marker.search(seen):
                        with self._trip_lock:
                            if not self.tripped.is_set():
                                self.trip()
                                self.tripped.set()
                        break  # the marked request never reaches the store
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def kill9_embedded_store(home: Path) -> int:
    """``kill -9`` of the embedded SeaweedFS server under ``home`` (its whole process group).

    Returns:
        The killed server's pid.
    """
    state = json.loads((Path(home) / "store" / "state.json").read_text())
    pid = int(state["pid"])
    os.killpg(pid, signal.SIGKILL)  # started with start_new_session: its pgid is its pid
    return pid


# -- secret scanning -------------------------------------------------------------------------
def pem_body_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM file, without the BEGIN/END armour."""
    return [line.strip() for line in pem.splitlines() if line.strip() and "-----" not in line]


def secret_needles(secret_key: str, private_pem: str) -> dict[str, bytes]:
    """Byte strings whose presence anywhere means a leak.

    The store secret as written and URL-encoded; every base64 line of the
    private key's PEM body (a single line is enough to call it a leak) and the
    DER key itself, should something write the decoded key.
    """
    from urllib.parse import quote

    needles = {"store secret key": secret_key.encode()}
    encoded = quote(secret_key, safe="")
    if encoded != secret_key:
        needles["store secret key (URL-encoded)"] = encoded.encode()
    lines = pem_body_lines(private_pem)
    for number, line in enumerate(lines):
        if len(line) >= 16:
            needles[f"private key PEM line {number + 1}"] = line.encode()
    needles["private key (DER)"] = base64.b64decode("".join(lines))
    return needles


def expanded(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    """``data`` itself, then what compression or containers hide from a byte search.

    Zip archives (``model.skops``) by member, gzip streams, and Parquet files
    (inference logs, references: compressed columns) as their decoded values and
    key-value metadata.
    """
    yield name, data
    if data[:4] == b"PK\x03\x04":
        with contextlib.suppress(zipfile.BadZipFile):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for member in archive.namelist():
                    yield from expanded(f"{name}!{member}", archive.read(member))
    elif data[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError):
            yield f"{name}!gunzip", gzip.decompress(data)
    elif data[:4] == b"PAR1":
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        metadata = table.schema.metadata or {}
        text = json.dumps(table.to_pylist(), default=str) + repr(metadata)
        yield f"{name}!parquet", text.encode()


def find_secrets(name: str, data: bytes, needles: dict[str, bytes]) -> list[str]:
    """``"<where>: <what>"`` for every needle found in ``data`` or what it expands to."""
    found = []
    for where, blob in expanded(name, data):
        found += [f"{where}: {what}" for what, needle in needles.items() if needle in blob]
    return found
