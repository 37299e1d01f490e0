"""What the CLI does around a local pipeline run: checks before, the outcome after."""

from __future__ import annotations

from typing import Any

from mlops.runs.local import LocalRun


def prepare_local_run(pipeline_name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Checks inputs (exit 2 on a problem) and fills local-only defaults."""
    from mlops.runs import preflight

    arguments = dict(arguments)
    if "deploy_target" not in arguments:
        # Locally, "deploying" records desired state that `mlops serve` follows.
        arguments["deploy_target"] = "local"
    if pipeline_name == "training":
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
    deployed = arguments.get("deploy", "canary" if pipeline_name == "monitoring" else "none")
    if outcome.get("status") == "released" and deployed != "none":
        from mlops.core.store import ObjectStore
        from mlops.deployment.state import read_state

        state = read_state(ObjectStore.from_env(), outcome["model_name"])
        if state is not None:
            outcome["deployment"] = state.summary()
    return outcome
