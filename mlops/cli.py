"""mlops: train, gate, sign, publish, serve and monitor models (kfp-mlops).

Exit codes: 0 released / ok, 1 system failure, 2 bad input or usage,
3 rejected by a gate, 4 verification failed (see ``mlops.errors``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from mlops.errors import EXIT_OK, EXIT_REJECTED, EXIT_SYSTEM, MlopsError, UsageError
from mlops.gates import GATE_ORDER

logger = logging.getLogger(__name__)


# -- environment -----------------------------------------------------------------------
def ensure_store_env() -> None:
    """Exports MLOPS_S3_* for this process and its tasks; starts the embedded store if none is set.

    The bucket is created when missing, so a fresh MinIO works without set-up.
    """
    from mlops.embedded_store import resolve_store_settings
    from mlops.settings import mlops_home
    from mlops.store import ObjectStore

    settings = resolve_store_settings(mlops_home())
    ObjectStore(settings).ensure_bucket()
    os.environ.update(settings.to_env())


def ensure_signing_keys() -> tuple[Path, Path]:
    """The local key pair (created on first use) exported as MLOPS_SIGNING_KEY / _PUBLIC_KEY."""
    from mlops.release_gates import PUBLIC_KEY_VAR, SIGNING_KEY_VAR
    from mlops.settings import mlops_home
    from mlops.trust.signing import default_key_paths, generate_keypair

    private, public = default_key_paths(mlops_home())
    if not private.exists() and not public.exists():
        generate_keypair(private, public)
        print(f"created signing key pair in {private.parent}", file=sys.stderr)
    os.environ.setdefault(SIGNING_KEY_VAR, str(private))
    os.environ.setdefault(PUBLIC_KEY_VAR, str(public))
    return private, public


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Sends everything written to fd 1 (ours and the tasks') to stderr, keeping stdout for JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


# -- store -----------------------------------------------------------------------------
def cmd_store(args: argparse.Namespace) -> int:
    from mlops.embedded_store import EmbeddedStore
    from mlops.settings import mlops_home

    store = EmbeddedStore(mlops_home())
    if args.action == "start":
        settings = store.start()
        print(
            f"embedded store running on {settings.endpoint} (bucket {settings.bucket}); data in {store.data_dir}"
        )
    elif args.action == "stop":
        print("embedded store stopped" if store.stop() else "embedded store was not running")
    else:
        status = store.status()
        if status.running:
            print(f"running on {status.endpoint} (pid {status.pid}); data in {status.data_dir}")
        else:
            print(f"not running; data in {status.data_dir}")
            return EXIT_SYSTEM if args.action == "status" and args.check else EXIT_OK
    return EXIT_OK


# -- run -------------------------------------------------------------------------------
_EXIT_FOR_STATUS = {"released": EXIT_OK, "no_drift": EXIT_OK, "rejected": EXIT_REJECTED}


def _exit_code_for(status: str) -> int:
    """An outcome the CLI does not know is a failure, never a success."""
    return _EXIT_FOR_STATUS.get(status, EXIT_SYSTEM)


def cmd_run(args: argparse.Namespace) -> int:
    from mlops.pipeline_params import parse_params
    from pipelines import PIPELINES

    if args.pipeline not in PIPELINES:
        raise UsageError(
            f"unknown pipeline {args.pipeline!r}; pipelines are: {', '.join(PIPELINES)}"
        )
    pipeline = PIPELINES[args.pipeline]
    arguments = parse_params(pipeline, args.param or [])
    if args.host:
        return _submit(args, pipeline, arguments)
    return _run_local(args, pipeline, arguments)


def _submit(args: argparse.Namespace, pipeline: Any, arguments: dict[str, Any]) -> int:
    """Submits to a Kubeflow Pipelines API; the run executes on the cluster."""
    import kfp

    client = kfp.Client(host=args.host, namespace=args.namespace)
    run = client.create_run_from_pipeline_func(
        pipeline,
        arguments=arguments,
        experiment_name=args.experiment,
        enable_caching=False,
        service_account=args.service_account,
    )
    result = {
        "status": "submitted",
        "run_id": run.run_id,
        "host": args.host,
        "pipeline": args.pipeline,
    }
    if args.json:
        emit_json(result)
    else:
        print(f"submitted {args.pipeline} run {run.run_id} to {args.host}")
    return EXIT_OK


def _run_local(args: argparse.Namespace, pipeline: Any, arguments: dict[str, Any]) -> int:
    from mlops.local_run import run_locally
    from mlops.runs import finish_local_run, prepare_local_run
    from mlops.settings import mlops_home

    progress = None if args.json else sys.stderr
    # run_locally captures the tasks' output; this also keeps anything printed
    # around it off stdout, which --json reserves for the one outcome object.
    with stdout_to_stderr() if args.json else contextlib.nullcontext():
        ensure_store_env()
        ensure_signing_keys()
        arguments = prepare_local_run(args.pipeline, arguments)
        if progress:
            print(
                f"running {args.pipeline} locally (kfp.local; object store "
                f"{os.environ['MLOPS_S3_ENDPOINT']}, bucket {os.environ['MLOPS_BUCKET']})",
                file=progress,
            )
        run = run_locally(pipeline, arguments, mlops_home() / "runs", progress)
        result = finish_local_run(args.pipeline, arguments, run)
    if args.json:
        emit_json(result)
    else:
        _print_outcome(result)
    return _exit_code_for(result["status"])


def _print_outcome(result: dict[str, Any]) -> None:
    print(
        f"\n{result['status'].upper()}: {result.get('model_name', '')} "
        f"{result.get('model_version') or result.get('candidate_version') or ''}".rstrip()
    )
    if result.get("model_uri"):
        print(f"  model: {result['model_uri']}")
    for name, value in sorted(result.get("metrics", {}).items()):
        if name.endswith(("accuracy", "f1_macro", "roc_auc", "drift_share")):
            print(f"  {name}: {value:.4f}")
    if result.get("drift"):
        drift = result["drift"]
        drifted = [name for name, column in drift["columns"].items() if column["drifted"]]
        print(
            f"  drift: detected={drift['detected']} share={drift['share']:.2f} "
            f"({len(drifted)} of {len(drift['columns'])} columns)"
        )
    gates = result.get("gates", {})
    for name in sorted(
        gates, key=lambda n: GATE_ORDER.index(n) if n in GATE_ORDER else len(GATE_ORDER)
    ):
        print(f"  [{'pass' if gates[name]['passed'] else 'FAIL'}] {name}: {gates[name]['detail']}")
    for key in ("deployment", "report_uri"):
        if result.get(key):
            print(f"  {key}: {result[key]}")
    if result["status"] != "released":
        print(f"  reason: {result.get('reason')}")
    print(f"  run folder: {result['run_dir']}")


# -- deployment ------------------------------------------------------------------------
def cmd_deploy(args: argparse.Namespace) -> int:
    """deploy / promote / rollback: the same actions the pipeline's deployment components run."""
    from mlops.deployment import actions
    from mlops.registry import resolve, validate_model_name
    from mlops.store import ObjectStore

    ensure_store_env()
    store = ObjectStore.from_env()
    name = validate_model_name(args.model_name)
    if args.command == "deploy":
        ensure_signing_keys()
        ref = resolve(store, name, args.version)
        if args.canary_percent is not None and not 0 < args.canary_percent < 100:
            raise UsageError(
                f"--canary-percent must be between 1 and 99, got {args.canary_percent}"
            )
        mode = "full" if args.canary_percent is None else "canary"
        summary = actions.deploy_action(
            name,
            ref.uri,
            ref.version,
            mode,
            args.canary_percent or 0,
            args.target,
            args.namespace,
            args.image,
            store=store,
        )
    else:
        action = actions.promote_action if args.command == "promote" else actions.rollback_action
        summary = action(name, args.target, args.namespace, store=store)
    if args.json:
        emit_json(summary)
    else:
        state = summary["state"]
        canary = (
            f", canary {state['canary']} at {state['canary_percent']}%"
            if state.get("canary")
            else ""
        )
        print(f"{name} ({args.target}): stable {state['stable']}{canary}")
    return EXIT_OK


# Commands registered from other modules that expect MLOPS_S3_* to be set on entry.
_NEEDS_STORE = {"serve"}


# -- parser ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    store = sub.add_parser("store", help="manage the embedded object store")
    store.add_argument("action", choices=("start", "stop", "status"))
    store.add_argument("--check", action="store_true", help="status: exit 1 when not running")
    store.set_defaults(func=cmd_store)

    run = sub.add_parser("run", help="run a pipeline locally, or submit it with --host")
    run.add_argument("pipeline", help="pipeline name, e.g. training")
    run.add_argument(
        "-p", "--param", action="append", metavar="KEY=VALUE", help="pipeline parameter"
    )
    run.add_argument("--json", action="store_true", help="print one JSON object with the outcome")
    run.add_argument("--host", help="Kubeflow Pipelines API URL: submit instead of running locally")
    run.add_argument("--namespace", help="Kubeflow namespace (with --host)")
    run.add_argument("--experiment", default="mlops", help="KFP experiment (with --host)")
    run.add_argument(
        "--service-account",
        help="Kubernetes service account of the run's pods (with --host; "
        "mlops-pipeline from deploy/k8s/rbac.yaml may manage "
        "InferenceServices)",
    )
    run.set_defaults(func=cmd_run)

    for name, help_text in (
        ("deploy", "deploy a published version (local serving)"),
        ("promote", "make the canary the stable version"),
        ("rollback", "drop the canary, or return to the previous version"),
    ):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("model_name")
        if name == "deploy":
            command.add_argument("--version", help="published version (default: latest)")
            command.add_argument(
                "--canary-percent", type=int, help="route this share of traffic to it"
            )
            command.add_argument(
                "--image",
                default="",
                help="predictor image with --target kserve (default: the project's serving image)",
            )
        command.add_argument(
            "--target",
            choices=("local", "kserve"),
            default="local",
            help="local: `mlops serve` follows it; kserve: apply the InferenceService "
            "with the current kube config too",
        )
        command.add_argument(
            "--namespace", default="kubeflow-user", help="namespace (with --target kserve)"
        )
        command.add_argument("--json", action="store_true")
        command.set_defaults(func=cmd_deploy)

    from mlops import cli_monitoring, cli_serve, cli_trust

    for module in (cli_trust, cli_serve, cli_monitoring):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command in _NEEDS_STORE:
            ensure_store_env()
        return int(args.func(args))
    except MlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
