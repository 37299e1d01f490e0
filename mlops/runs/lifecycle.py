"""What the CLI does around a local pipeline run: checks before, the outcome after."""

from __future__ import annotations

from typing import Any

from mlops.core import settings
from mlops.runs.local import LocalRun

#: Pipelines whose ``advisory_db_uri`` parameter ``MLOPS_ADVISORY_DB`` fills on a local run.
AUDITED_PIPELINES = ("training", "monitoring")


def local_arguments(pipeline_name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The user's arguments plus the defaults of a local run.

    These are arguments of this run only, never pipeline defaults, so nothing
    local ends up in compiled YAML: ``deploy_target=local`` and, when
    ``MLOPS_ADVISORY_DB`` is set and no ``advisory_db_uri`` was given, that
    database (the one ``mlops audit`` uses too).
    """
    arguments = dict(arguments)
    if "deploy_target" not in arguments:
        # Locally, "deploying" records desired state that `mlops serve` follows.
        arguments["deploy_target"] = "local"
    if pipeline_name in AUDITED_PIPELINES and "advisory_db_uri" not in arguments:
        advisory_db = settings.get(settings.ADVISORY_DB_VAR)
        if advisory_db:
            arguments["advisory_db_uri"] = advisory_db
    return arguments


def pin_repository(arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments with ``recipe_uri`` pinned: a git ref resolved to its full commit SHA.

    The run then trains exactly that commit, whatever the branch does meanwhile,
    and every record of it names the commit.

    Raises:
        UsageError: the URI is malformed or the ref does not exist.
    """
    from mlops.repository.checkout import recipe_uri_for
    from mlops.repository.source import resolve_source

    if not str(arguments.get("recipe_uri", "")).strip():
        from mlops.model.training import check_estimator

        # The shorthand names a built-in recipe: an unknown one is a bad parameter.
        check_estimator(arguments.get("estimator", "logistic_regression"))
    uri = recipe_uri_for(
        arguments.get("recipe_uri", ""), arguments.get("estimator", "logistic_regression")
    )
    return {**arguments, "recipe_uri": resolve_source(uri).pinned_uri()}


def prepare_local_run(pipeline_name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Fills the local defaults (:func:`local_arguments`), then checks the inputs.

    Raises:
        UsageError: a bad parameter, table or setting, named (exit 2; nothing ran).
    """
    from mlops.runs import preflight

    arguments = local_arguments(pipeline_name, arguments)
    if pipeline_name == "training":
        arguments = pin_repository(arguments)
        preflight.check_training(arguments)
    elif pipeline_name == "monitoring":
        preflight.check_monitoring(arguments)
    return arguments


def finish_local_run(
    pipeline_name: str, arguments: dict[str, Any], run: LocalRun
) -> dict[str, Any]:
    """The outcome JSON: the pipeline's own output plus the run folder and deployment."""
    outcome = (
        dict(run.output)
        if isinstance(run.output, dict)
        else {"status": "unknown", "output": run.output}
    )
    outcome["run_dir"] = str(run.run_dir)
    outcome["log_file"] = str(run.log_file)
    outcome["seconds"] = round(run.seconds, 1)
    trigger = outcome.get("trigger")
    if pipeline_name == "monitoring" and isinstance(trigger, dict):
        outcome["drift"] = {
            "detected": trigger["drift_detected"],
            "share": trigger["drift_share"],
            "columns": trigger["columns"],
        }
        outcome["report_uri"] = trigger["report_uri"]
        outcome["triggered_by"] = trigger.get("reasons", [])
        for key in ("quality", "retraining"):
            if trigger.get(key):
                outcome[key] = trigger[key]
    deployed = arguments.get("deploy", "canary" if pipeline_name == "monitoring" else "none")
    if outcome.get("status") == "released" and deployed != "none":
        from mlops.core.store import ObjectStore
        from mlops.deployment.state import read_state

        state = read_state(ObjectStore.from_env(), outcome["model_name"])
        if state is not None:
            outcome["deployment"] = state.summary()
    return outcome
