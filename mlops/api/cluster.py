"""Submitting to a Kubeflow Pipelines API: the connection, the compiled package, waiting for a run.

Every submission compiles the pipeline through :func:`mlops.api.compiling.compile_pipeline`
with the images of :class:`Cluster`, so what runs is what ``compile.py`` writes.
Credentials are the ones ``kfp.Client`` supports: a bearer token given as text or
read from a file on each request (a projected service-account token; in a Kubeflow
notebook pod, ``in_cluster_token`` reads the one the pod has mounted). No token is
logged or put in an outcome.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import re
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.api.outcome import Outcome
from mlops.core.errors import MlopsError, UsageError

logger = logging.getLogger(__name__)

#: Run states after which nothing changes (KFP v2beta1 ``RuntimeState``).
FINISHED_STATES = ("SUCCEEDED", "SKIPPED", "FAILED", "CANCELED")
#: The steps whose success says how a run ended, by component (``comp-<name>[-N]``).
DECIDING_COMPONENTS = {
    "publish-model": "released",
    "record-rejection": "rejected",
    "record-static-rejection": "rejected",
    "record-no-drift": "no_drift",
}
_COMPONENT_REF = re.compile(r"comp-(.+?)(?:-\d+)?$")


@dataclass(frozen=True)
class Cluster:
    """Where and how to submit: the KFP API, the profile, the images, the credentials.

    Attributes:
        host: The KFP API URL (``http://localhost:8080`` through a port-forward;
            ``http://ml-pipeline.kubeflow.svc.cluster.local:8888`` from a pod in the cluster).
        namespace: The Kubeflow profile namespace of a multi-user deployment
            (``None``: single-user, or the pod's own namespace).
        experiment: The KFP experiment runs and schedules go to.
        service_account: Kubernetes service account of the run's pods (the deploy
            step needs one allowed to manage InferenceServices, e.g. ``mlops-pipeline``
            of ``deploy/k8s/rbac.yaml``); ``None`` is the profile's default.
        image: Image of every task; ``None`` is ``mlops.runtime.RUNTIME_IMAGE``, as ``compile.py``.
        serving_image: Default predictor image of deployments; ``None`` keeps the
            pipeline's default (``mlops.runtime.SERVING_IMAGE``).
        token: A bearer token for the API (never shown in ``repr``).
        token_file: A file holding the bearer token, read again on every request.
        in_cluster_token: Use the pipelines service-account token a Kubeflow
            notebook pod has mounted (``KF_PIPELINES_SA_TOKEN_PATH``, else
            ``/var/run/secrets/kubeflow/pipelines/token``).
    """

    host: str
    namespace: str | None = None
    experiment: str = "mlops"
    service_account: str | None = None
    image: str | None = None
    serving_image: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    in_cluster_token: bool = False

    def __post_init__(self) -> None:
        if not self.host or not self.host.startswith(("http://", "https://")):
            raise UsageError(f"KFP host {self.host!r} must be an http:// or https:// URL")
        given = [bool(self.token), self.token_file is not None, self.in_cluster_token]
        if sum(given) > 1:
            raise UsageError("give one credential: a token, a token file or the in-cluster token")
        if self.token_file is not None and not Path(self.token_file).is_file():
            raise UsageError(f"token file {str(self.token_file)!r} does not exist")

    def client(self) -> Any:
        """A ``kfp.Client`` for this API (its HTTP errors are raised as typed errors by callers)."""
        import kfp
        from kfp.client import ServiceAccountTokenVolumeCredentials

        credentials = None
        if self.token_file is not None:
            credentials = ServiceAccountTokenVolumeCredentials(path=str(self.token_file))
        elif self.in_cluster_token:
            credentials = ServiceAccountTokenVolumeCredentials()
        with warnings.catch_warnings(), api_errors(self.host), _healthz_timeout(self.host):
            # "This client only works with Kubeflow Pipeline v2.0.0-beta.2 and later versions."
            warnings.simplefilter("ignore", FutureWarning)
            return kfp.Client(
                host=self.host,
                namespace=self.namespace or "kubeflow",
                existing_token=self.token or None,
                credentials=credentials,
            )

    def run_url(self, run_id: str) -> str:
        """The run's page in the Kubeflow Pipelines UI."""
        return f"{self.host.rstrip('/')}/#/runs/details/{run_id}"


@contextlib.contextmanager
def _healthz_timeout(host: str) -> Iterator[None]:
    # Without a namespace kfp.Client asks healthz whether KFP is multi-user, retrying
    # five times when refused, then raises a bare TimeoutError.
    try:
        yield
    except TimeoutError as exc:
        raise MlopsError(
            f"the KFP API at {host} refused its healthz endpoint 5 times: check the host "
            "and the credentials (or give the profile namespace)"
        ) from exc


@contextlib.contextmanager
def api_errors(host: str) -> Iterator[None]:
    """Turns the KFP client's HTTP and connection errors into the project's typed errors.

    A 4xx answer (bad request, credentials refused, not found) is a ``UsageError``;
    an unreachable API or a 5xx is an ``MlopsError`` (exit 1).
    """
    from kfp_server_api.exceptions import ApiException  # type: ignore[import-untyped]
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as exc:
        body = str(exc.body or "")[:500]
        message = f"KFP API at {host} answered {exc.status} {exc.reason}: {body}".rstrip(": ")
        if exc.status is not None and 400 <= int(exc.status) < 500:
            hint = " (check the token and namespace)" if exc.status in (401, 403) else ""
            raise UsageError(message + hint) from exc
        raise MlopsError(message) from exc
    except HTTPError as exc:
        raise MlopsError(f"cannot reach the KFP API at {host}: {exc}") from exc


def compiled_package(
    pipeline: Any, cluster: Cluster, work: Path
) -> tuple[Path, list[dict[str, Any]]]:
    """Compiles ``pipeline`` into ``work`` with the cluster's images; returns the file and documents."""
    import yaml

    from mlops.api.compiling import compile_pipeline

    path = compile_pipeline(pipeline, work / "pipeline.yaml", cluster.image, cluster.serving_image)
    return path, list(yaml.safe_load_all(path.read_text()))


def deciding_tasks(document: dict[str, Any]) -> dict[str, str]:
    """Task names and display names of the deciding steps -> the status their success means."""
    found: dict[str, str] = {}
    components = {"root": document.get("root", {}), **document.get("components", {})}
    for component in components.values():
        for key, task in (component.get("dag", {}).get("tasks") or {}).items():
            match = _COMPONENT_REF.fullmatch(task.get("componentRef", {}).get("name", ""))
            status = DECIDING_COMPONENTS.get(match.group(1)) if match else None
            if status:
                found[key] = status
                found[task.get("taskInfo", {}).get("name", key)] = status
    return found


def status_of_run(run: Any, deciding: dict[str, str]) -> str:
    """How a finished run ended, from the deciding step that succeeded.

    Returns:
        ``released``, ``rejected`` or ``no_drift`` (the deciding step that succeeded);
        ``failed`` when the run did not succeed; ``unknown`` otherwise.
    """
    state = str(getattr(run, "state", "") or "")
    if state != "SUCCEEDED":
        return "failed"
    details = getattr(run, "run_details", None)
    for task in getattr(details, "task_details", None) or []:
        status = deciding.get(str(getattr(task, "display_name", "") or ""))
        if status and str(getattr(task, "state", "")) == "SUCCEEDED":
            return status
    return "unknown"


def submit(
    name: str,
    pipeline: Any,
    arguments: dict[str, Any],
    cluster: Cluster,
    *,
    wait: bool = False,
    timeout: float = 3600.0,
    poll_seconds: float = 10.0,
) -> Outcome:
    """Compiles ``pipeline`` with the cluster's images and creates a run; optionally waits for it.

    Args:
        name: The pipeline's name.
        pipeline: Its ``@dsl.pipeline`` function.
        arguments: Typed arguments (a training ``recipe_uri`` already pinned).
        cluster: Where and how.
        wait: Wait until the run finished and read its status.
        timeout: Seconds to wait at most.
        poll_seconds: Seconds between two looks at the run.

    Returns:
        ``submitted`` (not waited for), else ``released``, ``rejected``,
        ``no_drift``, ``failed`` or ``unknown``, with the run's id, URL and state.

    Raises:
        UsageError: the API refused the request (4xx: credentials, namespace...).
        MlopsError: the API could not be reached, or the run had not finished in time.
    """
    client = cluster.client()
    with tempfile.TemporaryDirectory() as work:
        package, documents = compiled_package(pipeline, cluster, Path(work))
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H-%M-%S")
        with api_errors(cluster.host):
            run = client.create_run_from_pipeline_package(
                str(package),
                arguments=arguments,
                run_name=f"{name} {stamp}",
                experiment_name=cluster.experiment,
                namespace=cluster.namespace,
                enable_caching=False,
                service_account=cluster.service_account,
            )
    run_id = str(run.run_id)
    data: dict[str, Any] = {
        "status": "submitted",
        "pipeline": name,
        "run_id": run_id,
        "run_url": cluster.run_url(run_id),
        "host": cluster.host,
        "namespace": cluster.namespace,
        "experiment": cluster.experiment,
    }
    logger.info("submitted %s run %s to %s", name, run_id, cluster.host)
    if wait:
        finished = wait_for_run(client, cluster.host, run_id, timeout, poll_seconds)
        data["state"] = str(finished.state)
        data["status"] = status_of_run(finished, deciding_tasks(documents[0]))
        if data["status"] in ("failed", "unknown"):
            error = getattr(finished, "error", None)
            data["reason"] = str(getattr(error, "message", "") or f"run ended {finished.state}")
    return Outcome.from_dict(name, data)


def wait_for_run(
    client: Any, host: str, run_id: str, timeout: float, poll_seconds: float = 10.0
) -> Any:
    """Polls the run until it is in a finished state; returns the run.

    Raises:
        MlopsError: it had not finished after ``timeout`` seconds (it keeps running).
    """
    deadline = time.monotonic() + timeout
    pause = min(1.0, poll_seconds)
    while True:
        with api_errors(host):
            run = client.get_run(run_id)
        if str(run.state) in FINISHED_STATES:
            return run
        if time.monotonic() >= deadline:
            raise MlopsError(
                f"run {run_id} is still {run.state} after {timeout:.0f} s "
                f"(it keeps running on the cluster)"
            )
        time.sleep(min(pause, max(deadline - time.monotonic(), 0.0)))
        # Look again soon at first (a rejected run can end within a minute), then every poll.
        pause = min(pause * 2, poll_seconds)
