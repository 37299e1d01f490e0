"""Benchmark: ``mlops serve`` side by side with a bare ``kserve.Model`` and a bare Starlette app.

    python bench/bench_serving.py [--duration 5] [--connections 1 16 64] [--rows 1 100]
                                  [--protocols v1 v2] [--out .benchmarks/serving]

Builds two models in-process on the breast-cancer data that ships with
scikit-learn, packages and signs them with the project's own functions and
publishes them to a throw-away embedded store:

* **builtin**: the project's logistic-regression pipeline (``mlops.model.training``),
  which the server scores with its NumPy fast path;
* **repo**: what a data scientist brings from a model repository: a
  ``HistGradientBoostingClassifier`` after a ``ColumnTransformer`` with numeric
  columns and two categorical ones derived from the tumour size and texture.
  The server scores it with the generic (batched) path;
* **builtin-generic** (``mlops serve`` only): the builtin pipeline published without
  its reference sample, so the server cannot prove its fast path and serves it on
  the generic path: the evidence for keeping ``FastPath``.

Then three servers, each one process with one worker on the same host, all
pinned to one CPU and the load generator to another (``taskset``): ``mlops serve``
(inference logging, metrics, reconciling all on, as deployed), a bare
``kserve.Model`` serving the same fitted models with a plain ``predict`` on a
DataFrame, and a bare Starlette endpoint doing the same (``bench/bare_serving.py``).
Load comes from ``wrk`` (1 thread, keep-alive) at each connection count, with
1-row and 100-row requests, V1 ``:predict`` and V2 ``infer``. The servers run side
by side and take turns on each case (idle while another is measured), so what else
the machine does at the time weighs on all three alike.

Correctness is checked inside the bench: before each run one answer is compared
with the in-process prediction of the same rows, and wrk's script compares every
answer of the run with that one (a wrong body or a non-200 is counted and fails
the bench). Results: requests/s, rows/s, p50/p99/max latency, ratios to bare
KServe, the server's peak RSS with the models loaded; as JSON, plus a PNG chart
when matplotlib is installed. Every loop is bounded; nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OURS, KSERVE, STARLETTE = "mlops serve", "bare kserve.Model", "bare Starlette"
BUILTIN, REPO, GENERIC = "bench-builtin", "bench-repo", "bench-builtin-generic"
CATEGORICAL = ("size_band", "texture_band")


# -- the models ------------------------------------------------------------------------------
def bench_frame() -> Any:
    """Breast-cancer rows plus two categorical columns derived from real measurements."""
    import pandas as pd

    from mlops.demo.data import breast_cancer_frame

    frame = breast_cancer_frame()
    frame["size_band"] = pd.qcut(frame["mean_radius"], 3, labels=["small", "medium", "large"])
    frame["texture_band"] = pd.qcut(frame["mean_texture"], 4, labels=["t1", "t2", "t3", "t4"])
    return frame.astype({c: str for c in CATEGORICAL})


def repo_pipeline(schema: Any) -> Any:
    """HistGradientBoosting after a ColumnTransformer (numeric imputed, categorical one-hot)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    columns = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), schema.numeric_names),
            (
                "cat",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                schema.categorical_names,
            ),
        ]
    )
    return Pipeline(
        [("columns", columns), ("model", HistGradientBoostingClassifier(random_state=0))]
    )


@dataclass
class BenchModel:
    """One published model and what the bench sends it."""

    name: str
    model: Any
    schema: Any
    model_dir: Path
    rows: Any  # the feature rows requests are made of (DataFrame)


def release(model_dir: Path, model: Any, schema: Any, holdout: Any, private_key: Path) -> None:
    """Writes ``release.json`` and signs, as the sign step does after the decision.

    The bench runs no gates; the evidence says so, and records the model's real
    accuracy on ``holdout`` (the serving release policy asks for one).
    """
    from mlops.demo.data import TARGET
    from mlops.model.schema import coerce
    from mlops.release.decision import GATE_ORDER, GateResult, decide
    from mlops.release.evidence import candidate_evidence
    from mlops.trust.evidence import RELEASE_FILE
    from mlops.trust.signing import sign_model_dir

    accuracy = float((model.predict(coerce(holdout, schema)) == holdout[TARGET]).mean())
    gates = [GateResult(name, True, "not run: benchmark model") for name in GATE_ORDER]
    for gate in gates:
        if gate.name == "holdout_accuracy":
            gate.detail = f"benchmark split: accuracy {accuracy:.3f}"
            gate.metrics = {"holdout_accuracy": accuracy, "min_accuracy": 0.0}
    evidence = candidate_evidence(model_dir, decide(gates).gates_json())
    (model_dir / RELEASE_FILE).write_text(json.dumps(evidence, indent=2, sort_keys=True))
    sign_model_dir(model_dir, private_key)


def build_models(home: Path, store: Any) -> dict[str, BenchModel]:
    """Trains, packages, releases (signed), publishes and deploys the bench's models."""
    from mlops.demo.data import TARGET
    from mlops.deployment.state import Release, deploy
    from mlops.model.packaging import REFERENCE_FILE, write_model_dir
    from mlops.model.registry import publish_model_dir
    from mlops.model.schema import FeatureSchema, coerce
    from mlops.model.training import split_dataset, train
    from mlops.trust.signing import default_key_paths, generate_keypair

    private, public = default_key_paths(home)
    generate_keypair(private, public)
    train_frame, test_frame = split_dataset(bench_frame(), TARGET)
    builtin_train = train_frame.drop(columns=list(CATEGORICAL))
    builtin, builtin_schema = train(builtin_train, TARGET, "logistic_regression")
    builtin_features = builtin_train.drop(columns=[TARGET])
    features = train_frame.drop(columns=[TARGET])
    repo_schema = FeatureSchema.from_frame(features, categorical=list(CATEGORICAL))
    repo = repo_pipeline(repo_schema).fit(coerce(train_frame, repo_schema), train_frame[TARGET])
    specs = [
        (BUILTIN, builtin, builtin_schema, builtin_features, "logistic_regression"),
        (REPO, repo, repo_schema, features, "hist_gradient_boosting"),
        (GENERIC, builtin, builtin_schema, builtin_features, "logistic_regression"),
    ]
    models = {}
    for name, model, schema, train_features, estimator in specs:
        model_dir = home / "models" / name
        write_model_dir(
            model_dir,
            model,
            model_name=name,
            version="v1",
            schema=schema,
            target_column=TARGET,
            estimator=estimator,
            drop_columns=[],
            metrics={},
            fingerprints={},
            train_features=train_features,
            params={},
        )
        if name == GENERIC:  # no reference sample: the fast path cannot be proven
            (model_dir / REFERENCE_FILE).unlink()
        release(model_dir, model, schema, test_frame, private)
        ref = publish_model_dir(store, model_dir, name, "v1")
        deploy(store, name, Release(ref.version, ref.uri))
        # Requests are made of real rows the models never saw.
        models[name] = BenchModel(name, model, schema, model_dir, test_frame[list(schema.names)])
    return models


# -- requests --------------------------------------------------------------------------------
@dataclass
class Case:
    """One request shape for one model: body, path and the labels it must get back."""

    model: BenchModel
    protocol: str
    rows: int
    body: bytes
    path: str
    expected: list


def make_case(model: BenchModel, protocol: str, rows: int) -> Case:
    """The request of ``rows`` real rows and its in-process prediction."""
    from mlops.model.schema import NUMERIC, coerce

    sample = model.rows.head(rows).reset_index(drop=True)
    labels = model.model.predict(coerce(sample, model.schema))
    expected = [v.item() if hasattr(v, "item") else v for v in labels]
    records = json.loads(sample.to_json(orient="records"))
    if protocol == "v1":
        return Case(
            model,
            protocol,
            rows,
            json.dumps({"instances": records}).encode(),
            f"/v1/models/{model.name}:predict",
            expected,
        )
    inputs = [
        {
            "name": f.name,
            "shape": [rows],
            "datatype": "FP64" if f.kind == NUMERIC else "BYTES",
            "data": [r[f.name] for r in records],
        }
        for f in model.schema.features
    ]
    body = {"id": "bench", "inputs": inputs, "outputs": [{"name": "predict"}]}
    return Case(
        model,
        protocol,
        rows,
        json.dumps(body).encode(),
        f"/v2/models/{model.name}/infer",
        expected,
    )


#: Every request names its id, so the server's answer (which carries the request id) is the
#: same bytes each time and can be compared whole.
REQUEST_HEADERS = {"Content-Type": "application/json", "x-request-id": "bench"}


def answer(port: int, case: Case) -> tuple[int, bytes]:
    """One request's status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", case.path, body=case.body, headers=REQUEST_HEADERS)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def labels_of(case: Case, body: bytes) -> list:
    """The predicted labels in a V1 or V2 answer."""
    data = json.loads(body)
    if case.protocol == "v1":
        return data["predictions"]
    (output,) = [o for o in data["outputs"] if o["name"] == "predict"]
    return output["data"]


# -- load ------------------------------------------------------------------------------------
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-request-id"] = "bench"
wrk.body = io.open(%(body)s, "rb"):read("*a")
local expected = io.open(%(expected)s, "rb"):read("*a")
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0; wrong = 0 end
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 elseif body ~= expected then wrong = wrong + 1 end
end
function done(summary, latency, requests)
  local b, w = 0, 0
  for _, t in ipairs(threads) do b = b + t:get("bad"); w = w + t:get("wrong") end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "socket_errors": %%d, "bad_status": %%d, ' ..
    '"wrong_body": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, b, w,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def lua_string(path: Path) -> str:
    """A Lua string literal of ``path``."""
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_wrk(
    port: int, case: Case, expected: bytes, connections: int, seconds: float, work: Path
) -> dict:
    """One wrk run; the counts and latency percentiles its script reports."""
    body_file, expected_file, script = work / "body", work / "expected", work / "bench.lua"
    body_file.write_bytes(case.body)
    expected_file.write_bytes(expected)
    script.write_text(
        WRK_SCRIPT % {"body": lua_string(body_file), "expected": lua_string(expected_file)}
    )
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{case.path}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("RESULT "))
    elapsed = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "req_per_s": raw["requests"] / elapsed,
        "rows_per_s": raw["requests"] * case.rows / elapsed,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": raw["socket_errors"] + raw["bad_status"],
        "wrong": raw["wrong_body"],
    }


# -- servers ---------------------------------------------------------------------------------
def server_command(label: str, port: int, models: dict[str, BenchModel]) -> list[str]:
    """The command line of one server."""
    if label == OURS:
        return [sys.executable, "-m", "mlops.cli", "serve", "--port", str(port)]
    kind = "kserve" if label == KSERVE else "starlette"
    pairs = [f"{m.name}={m.model_dir}" for m in models.values() if m.name != GENERIC]
    return [sys.executable, str(ROOT / "bench" / "bare_serving.py"), kind, str(port), *pairs]


def wait_ready(
    port: int, names: list[str], process: subprocess.Popen, timeout: float = 180
) -> None:
    """Until every model answers ready (bounded)."""
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending and time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", f"/v2/models/{pending[0]}/ready")
            if connection.getresponse().status == 200:
                pending.pop(0)
                continue
        except OSError:
            pass
        time.sleep(0.3)
    if pending:
        raise SystemExit(f"server not ready: {pending}")


def peak_rss_mb(pid: int) -> float | None:
    """The peak resident set (VmHWM) of a running process, MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def pinning() -> tuple[list[str], str]:
    """The taskset prefix of the server and a description; the bench itself moves to the load CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return [], f"not pinned ({len(cpus)} CPU(s) available)"
    server, load = cpus[0], cpus[1]
    os.sched_setaffinity(0, {load})  # wrk and the embedded store inherit the load CPU
    return [
        "taskset",
        "-c",
        str(server),
    ], f"server on CPU {server}, wrk and the store on CPU {load}"


def start_servers(
    labels: list[str], models: dict[str, BenchModel], prefix: list[str]
) -> dict[str, tuple[int, subprocess.Popen]]:
    """Starts every server (each pinned, idle until its turn) and waits until all are ready."""
    from mlops.core.net import free_port

    servers: dict[str, tuple[int, subprocess.Popen]] = {}
    env = dict(os.environ, MLOPS_LOG_LEVEL="WARNING")
    for label in labels:
        port = free_port()
        process = subprocess.Popen(
            prefix + server_command(label, port, models),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        servers[label] = (port, process)
    for label, (port, process) in servers.items():
        names = [BUILTIN, REPO] + ([GENERIC] if label == OURS else [])
        wait_ready(port, names, process)
    return servers


def stop_servers(servers: dict[str, tuple[int, subprocess.Popen]]) -> None:
    """SIGTERM, then SIGKILL after 30 s, for every server started here."""
    for _, process in servers.values():
        process.terminate()
    for _, process in servers.values():
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def batch_counters(port: int, model: str) -> tuple[float, float]:
    """``mlops_batch_requests`` of ``model``: (model calls, requests they scored) so far."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    found = {"count": 0.0, "sum": 0.0}
    for line in text.splitlines():
        for kind in found:
            if line.startswith(f'mlops_batch_requests_{kind}{{model="{model}"}}'):
                found[kind] = float(line.rsplit(" ", 1)[1])
    return found["count"], found["sum"]


def check_answer(label: str, port: int, case: Case) -> bytes:
    """The server's answer to ``case``, which must be the in-process prediction."""
    status, body = answer(port, case)
    if status != 200 or labels_of(case, body) != case.expected:
        raise SystemExit(
            f"{label} answered {case.model.name} {case.protocol} {case.rows} row(s) "
            f"with {status} {body[:300]!r}, not the in-process prediction"
        )
    return body


def bench_case(
    case: Case,
    servers: dict[str, tuple[int, subprocess.Popen]],
    args: argparse.Namespace,
    work: Path,
) -> list[dict]:
    """One request shape against every server that serves it, interleaved per connection count.

    The servers take turns on the same case within seconds of each other, so a
    change in what else the machine runs affects all of them alike.
    """
    serving = {
        label: port
        for label, (port, _) in servers.items()
        if case.model.name != GENERIC or label == OURS
    }
    expected = {label: check_answer(label, port, case) for label, port in serving.items()}
    results = []
    for connections in args.connections:
        for label, port in serving.items():
            run_wrk(port, case, expected[label], connections, 1, work)  # warm-up
            before = batch_counters(port, case.model.name) if label == OURS else None
            result = run_wrk(port, case, expected[label], connections, args.duration, work)
            if before is not None:
                calls, scored = (
                    a - b
                    for a, b in zip(batch_counters(port, case.model.name), before, strict=True)
                )
                # Requests per model call (none: scored on the event loop, unbatched).
                result["requests_per_model_call"] = scored / calls if calls else None
            result.update(
                server=label,
                model=case.model.name,
                protocol=case.protocol,
                rows=case.rows,
                connections=connections,
            )
            results.append(result)
            print(
                f"  {label:17} {case.model.name:22} {case.protocol} {case.rows:3} row(s) "
                f"{connections:2} conn: {result['req_per_s']:7.0f} req/s "
                f"{result['rows_per_s']:8.0f} rows/s  p50 {result['p50_ms']:7.2f}  "
                f"p99 {result['p99_ms']:7.2f}  max {result['max_ms']:7.2f} ms"
                + (f"  ERRORS {result['errors']}" if result["errors"] else "")
                + (f"  WRONG {result['wrong']}" if result["wrong"] else "")
                + (
                    f"  {result['requests_per_model_call']:.1f} req/call"
                    if result.get("requests_per_model_call")
                    else ""
                ),
                flush=True,
            )
    return results


# -- report ----------------------------------------------------------------------------------
def key(r: dict) -> tuple:
    """A run's case: model, protocol, rows, connections."""
    return r["model"], r["protocol"], r["rows"], r["connections"]


def add_ratios(results: list[dict]) -> None:
    """Each run's req/s and p99 relative to bare KServe on the same case."""
    bare = {key(r): r for r in results if r["server"] == KSERVE}
    for r in results:
        k = key(r)
        if r["model"] == GENERIC:
            k = (BUILTIN, *k[1:])
        if k in bare:
            r["req_per_s_vs_kserve"] = r["req_per_s"] / bare[k]["req_per_s"]
            r["p99_vs_kserve"] = r["p99_ms"] / bare[k]["p99_ms"]


def goals(results: list[dict]) -> list[tuple[str, bool]]:
    """The issue's targets, V1 1-row requests (and V2 too where measured)."""
    ours = {key(r): r for r in results if r["server"] == OURS}
    bare = {key(r): r for r in results if r["server"] == KSERVE}
    checks = []
    for protocol in ("v1", "v2"):
        one, sixteen = (REPO, protocol, 1, 1), (REPO, protocol, 1, 16)
        if one in ours and one in bare:
            ratio = ours[one]["req_per_s"] / bare[one]["req_per_s"]
            checks.append(
                (f"repo {protocol} 1 conn: {ratio:.2f}x bare KServe (>= 1.0x)", ratio >= 1)
            )
        if sixteen in ours and sixteen in bare:
            ratio = ours[sixteen]["req_per_s"] / bare[sixteen]["req_per_s"]
            p99 = ours[sixteen]["p99_ms"], bare[sixteen]["p99_ms"]
            checks.append(
                (f"repo {protocol} 16 conn: {ratio:.2f}x bare KServe (>= 3x)", ratio >= 3)
            )
            checks.append(
                (
                    f"repo {protocol} 16 conn: p99 {p99[0]:.2f} ms vs bare {p99[1]:.2f} ms",
                    p99[0] <= p99[1],
                )
            )
        for name in (BUILTIN, REPO):
            run = ours.get((name, protocol, 1, 1))
            if run is not None:
                share = run["p99_ms"] / run["p50_ms"]
                checks.append(
                    (
                        f"{name} {protocol} 1 conn: p99 {run['p99_ms']:.2f} ms = {share:.1f}x "
                        f"p50 {run['p50_ms']:.2f} ms (<= 3x); max {run['max_ms']:.2f} ms; "
                        f"{run['req_per_s']:.0f} req/s",
                        share <= 3,
                    )
                )
    return checks


def chart(results: list[dict], path: Path) -> bool:
    """A PNG of req/s per case and server; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cases = sorted({key(r) for r in results if r["model"] != GENERIC})
    servers = [OURS, KSERVE, STARLETTE]
    by = {(r["server"], key(r)): r["req_per_s"] for r in results}
    figure, axis = plt.subplots(figsize=(max(8, len(cases) * 0.6), 5))
    width = 0.8 / len(servers)
    for i, server in enumerate(servers):
        axis.bar(
            [j + i * width for j in range(len(cases))],
            [by.get((server, c), 0) for c in cases],
            width,
            label=server,
        )
    axis.set_xticks([j + width for j in range(len(cases))])
    axis.set_xticklabels(
        [f"{m.removeprefix('bench-')} {p}\n{r} row {c} conn" for m, p, r, c in cases],
        rotation=90,
        fontsize=7,
    )
    axis.set_ylabel("requests/s")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--protocols", nargs="+", default=["v1", "v2"], choices=["v1", "v2"])
    parser.add_argument(
        "--servers", nargs="+", choices=[OURS, KSERVE, STARLETTE], default=[OURS, KSERVE, STARLETTE]
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".benchmarks" / "serving")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    from mlops.core.embedded_store import EmbeddedStore
    from mlops.core.store import ObjectStore

    prefix, pinned = pinning()
    results: list[dict] = []
    rss: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
        home = Path(tmp)
        os.environ["MLOPS_HOME"] = str(home)
        settings = EmbeddedStore(home).start()
        os.environ.update(settings.to_env())
        try:
            models = build_models(home, ObjectStore(settings))
            print(f"wrk, 1 thread, keep-alive; {pinned}; {args.duration:g} s per run", flush=True)
            servers = start_servers(args.servers, models, prefix)
            try:
                for name in (BUILTIN, REPO, GENERIC):
                    for protocol in args.protocols:
                        for rows in args.rows:
                            case = make_case(models[name], protocol, rows)
                            results.extend(bench_case(case, servers, args, home))
                rss = {label: peak_rss_mb(process.pid) for label, (_, process) in servers.items()}
            finally:
                stop_servers(servers)
        finally:
            EmbeddedStore(home).stop()
    add_ratios(results)
    checks = goals(results)
    print("\nratios to bare KServe (req/s):")
    for r in results:
        if r["server"] != KSERVE and "req_per_s_vs_kserve" in r:
            print(
                f"  {r['server']:17} {r['model']:22} {r['protocol']} {r['rows']:3} row(s) "
                f"{r['connections']:2} conn: {r['req_per_s_vs_kserve']:5.2f}x  "
                f"(p99 {r['p99_vs_kserve']:.2f}x)"
            )
    print("peak RSS (models loaded): " + ", ".join(f"{k} {v:.0f} MiB" for k, v in rss.items() if v))
    print("targets:")
    for text, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {text}")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "pinning": pinned,
        },
        "duration_s": args.duration,
        "peak_rss_mb": rss,
        "runs": results,
        "targets": [{"check": t, "met": ok} for t, ok in checks],
    }
    (args.out / "serving.json").write_text(json.dumps(report, indent=2))
    drawn = chart(results, args.out / "serving.png")
    print(
        f"results: {args.out / 'serving.json'}" + (f", {args.out / 'serving.png'}" if drawn else "")
    )
    if not drawn:
        print("(matplotlib is not installed: no PNG chart)")
    wrong = [r for r in results if r["errors"] or r["wrong"]]
    if wrong:
        print(f"{len(wrong)} run(s) had errors or wrong answers", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
