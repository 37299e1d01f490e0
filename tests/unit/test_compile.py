"""compile.py: deterministic YAML, image override, no credentials, and a golden YAML per pipeline.

``tests/golden/<pipeline>.yaml`` holds each compiled pipeline (the monitoring one
nests the training pipeline and returns a ``dsl.OneOf``) without what changes
with the kfp release. Regenerate them after an intended pipeline or component
change with::

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_compile.py
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops.runtime import RUNTIME_IMAGE
from pipelines import PIPELINES
from tests.training_helpers import REPO_ROOT

GOLDEN_DIR = REPO_ROOT / "tests" / "golden"
SENTINELS = {
    "MLOPS_S3_ENDPOINT": "sentinel-endpoint.invalid:9000",
    "MLOPS_S3_ACCESS_KEY": "SENTINELACCESSKEY123",
    "MLOPS_S3_SECRET_KEY": "sentinel-secret-key-value-0123456789",
    "MLOPS_SIGNING_KEY": "/sentinel/private/signing-key.pem",
    "MLOPS_BUCKET": "sentinel-bucket",
}


def load_compile_module():
    """compile.py by path: its module name would shadow the ``compile`` builtin."""
    spec = importlib.util.spec_from_file_location("mlops_compile_script", REPO_ROOT / "compile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compiler():
    return load_compile_module()


def compile_cli(out: Path, *args: str, **env: str) -> dict[str, Path]:
    """``python compile.py --out OUT ARGS`` as a user runs it (it fixes the hash seed itself)."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "compile.py"), "--out", str(out), *args],
        env={**environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {path.stem: path for path in out.glob("*.yaml")}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Every pipeline compiled by ``compile.py`` (default image) with sentinel credentials set."""
    out = tmp_path_factory.mktemp("compiled")
    compiled = compile_cli(out, **SENTINELS)
    assert set(compiled) == set(PIPELINES)
    return compiled


def documents(path: Path) -> list[dict]:
    return list(yaml.safe_load_all(path.read_text()))


def executors(path: Path) -> dict[str, dict]:
    return documents(path)[0]["deploymentSpec"]["executors"]


def normalise(text: str) -> str:
    """The compiled YAML without what changes between compilations.

    Drops ``sdkVersion`` and the kfp pins, and renames the condition groups: KFP
    numbers the ``comp-condition-*`` components of nested pipelines in an order
    that differs from one process to the next, so each gets a name derived from
    its own content (and its children's) instead.
    """

    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "sdkVersion"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        if isinstance(node, str):
            return re.sub(r"kfp==[0-9A-Za-z.+-]+", "kfp==<version>", node)
        return node

    docs = [strip(doc) for doc in yaml.safe_load_all(text)]
    docs[0] = canonical_condition_names(docs[0])
    return yaml.safe_dump_all(docs, sort_keys=True, width=100)


def canonical_condition_names(document: dict) -> dict:
    """``document`` with every ``comp-condition-*`` component renamed after its content."""
    import hashlib
    import json

    components = document.get("components", {})
    conditions = [name for name in components if name.startswith("comp-condition-")]
    names: dict[str, str] = {}

    def refs(node, mapping):
        if isinstance(node, dict):
            return {
                k: (mapping.get(v, v) if k == "name" and isinstance(v, str) else refs(v, mapping))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [refs(v, mapping) for v in node]
        return node

    def canonical(name: str, seen: tuple = ()) -> str:
        if name not in names:
            children = {
                ref
                for ref in re.findall(r"comp-condition-[0-9-]+", json.dumps(components[name]))
                if ref != name and ref not in seen
            }
            mapping = {child: canonical(child, (*seen, name)) for child in children}
            body = json.dumps(refs(components[name], mapping), sort_keys=True)
            names[name] = "comp-condition-" + hashlib.sha256(body.encode()).hexdigest()[:12]
        return names[name]

    for name in conditions:
        canonical(name)
    renamed = refs(document, names)
    renamed["components"] = {names.get(k, k): v for k, v in renamed["components"].items()}
    return renamed


def test_every_pipeline_compiles(compiled):
    assert set(compiled) >= {"training"}
    for name, path in compiled.items():
        docs = documents(path)
        assert docs[0]["pipelineInfo"]["name"] == name
        assert docs[0]["deploymentSpec"]["executors"], name
        assert docs[0]["root"]["dag"]["tasks"], name


def test_compiled_training_loads_as_a_component(compiled):
    from kfp.components import load_component_from_file

    component = load_component_from_file(str(compiled["training"]))
    inputs = component.component_spec.inputs
    assert {"data_uri", "recipe_uri", "holdout_uri", "target_column", "model_name"} <= set(inputs)
    assert not inputs["data_uri"].optional and inputs["recipe_uri"].optional
    # -1 means "the repository's mlops.yaml decides"; explicit values override it.
    assert inputs["min_accuracy"].default == -1.0


def test_training_tasks_and_gates(compiled):
    document = documents(compiled["training"])[0]
    tasks = dict(_tasks(document))
    for task in (
        "fetch-repository",
        "check-code-quality",
        "audit-dependencies",
        "scan-repository",
        "decide-static",
        "load-split",
        "train-model",
        "validate-holdout",
        "scan-model",
        "sign-model",
        "decide-release",
    ):
        assert task in tasks, task
        assert not tasks[task].get("cachingOptions", {}).get("enableCache", False), (
            f"{task} is cached"
        )
    root = document["root"]["dag"]["tasks"]
    assert any(name.startswith("condition-branches") for name in root), "release/reject branches"


def test_static_gates_come_before_any_repository_code(compiled):
    """Shift left: the static gates are their own group, and training hangs on their verdict."""
    document = documents(compiled["training"])[0]
    root = document["root"]["dag"]["tasks"]
    assert root["static-gates"]["componentRef"]["name"] == "comp-static-gates"
    static = dict(_tasks(document["components"]["comp-static-gates"]))
    assert set(static) == {
        "check-code-quality",
        "audit-dependencies",
        "scan-repository",
        "decide-static",
    }
    # Training sits in the branch taken only when the static decision passed.
    branch = document["components"]["comp-condition-2"]
    assert "train-and-release" in branch["dag"]["tasks"]
    condition = root["condition-branches-1"]
    assert "static-gates" in condition["dependentTasks"]
    train_and_release = dict(_tasks(document["components"]["comp-train-and-release"]))
    assert "train-model" in train_and_release and "check-code-quality" not in train_and_release


def test_the_training_task_gets_no_secret(compiled):
    """The task that runs the repository's code has no Secret, env or volume, on a cluster."""
    for name in ("training", "monitoring"):
        path = compiled[name]
        platform = documents(path)[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        assert "exec-train-model" in executors(path), name
        assert "exec-train-model" not in platform, (name, platform.get("exec-train-model"))
        env = executors(path)["exec-train-model"]["container"].get("env", [])
        assert env == [], env


def test_every_executor_uses_the_runtime_image(compiled):
    for name, path in compiled.items():
        specs = executors(path)
        assert {e["container"]["image"] for e in specs.values()} == {RUNTIME_IMAGE}, name
        for executor in specs.values():
            assert "pip install" not in " ".join(executor["container"].get("command", [])), (
                "components must not install packages at start-up"
            )


def test_compilation_is_deterministic(compiled, tmp_path):
    again = tmp_path / "again"
    for name, path in compiled.items():
        second = compile_cli(again, "--pipeline", name, **SENTINELS)[name]
        assert normalise(second.read_text()) == normalise(path.read_text()), name


def test_image_override_changes_every_executor(compiler, compiled, tmp_path):
    image = "registry.example.com/team/kfp-mlops:test-123"
    compile_cli(tmp_path, "--image", image)
    for name in compiled:
        changed = executors(tmp_path / f"{name}.yaml")
        assert changed and {e["container"]["image"] for e in changed.values()} == {image}
        assert RUNTIME_IMAGE not in (tmp_path / f"{name}.yaml").read_text()
        assert set(changed) == set(executors(compiled[name]))
    one = tmp_path / "one"
    compile_cli(one, "--pipeline", "training", "--image", image)
    assert [p.name for p in one.iterdir()] == ["training.yaml"]


def test_set_image_counts_executors(compiler, compiled):
    document = documents(compiled["training"])[0]
    assert compiler.set_image(document, "x/y:z") == len(document["deploymentSpec"]["executors"])
    assert compiler.set_image({}, "x/y:z") == 0


def test_no_credentials_in_the_yaml_only_secret_refs(compiled):
    for name, path in compiled.items():
        text = path.read_text()
        for key, value in SENTINELS.items():
            assert value not in text, f"{key} value leaked into {name}.yaml"
        for executor in documents(path)[0]["deploymentSpec"]["executors"].values():
            env = {e["name"]: e.get("value") for e in executor["container"].get("env", [])}
            assert not any(k.startswith("MLOPS_S3_") for k in env), env
    platform = documents(compiled["training"])[1]["platforms"]["kubernetes"]["deploymentSpec"][
        "executors"
    ]
    secret_names = {
        s["secretName"] for spec in platform.values() for s in spec.get("secretAsEnv", [])
    }
    secret_keys = {
        m["secretKey"]
        for spec in platform.values()
        for s in spec.get("secretAsEnv", [])
        for m in s["keyToEnv"]
    }
    assert secret_names == {"mlops-s3-credentials", "mlops-git-credentials"}
    assert {"MLOPS_S3_ACCESS_KEY", "MLOPS_S3_SECRET_KEY"} <= secret_keys
    mounted = {
        v["secretName"] for spec in platform.values() for v in spec.get("secretAsVolume", [])
    }
    assert mounted == {"mlops-signing-key", "mlops-signing-public-key"}


def test_private_signing_key_reaches_only_the_sign_step(compiled):
    for name in ("training", "monitoring"):
        path = compiled[name]
        platform = documents(path)[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        holders = {
            executor
            for executor, spec in platform.items()
            for volume in spec.get("secretAsVolume", [])
            if volume["secretName"] == "mlops-signing-key"
        }
        assert holders == {"exec-sign-model"}, name
        verifiers = {
            executor
            for executor, spec in platform.items()
            for volume in spec.get("secretAsVolume", [])
            if volume["secretName"] == "mlops-signing-public-key"
        }
        assert {"exec-sign-model", "exec-publish-model", "exec-deploy-model"} <= verifiers, name


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_pipeline_matches_the_golden(compiled, name):
    golden = GOLDEN_DIR / f"{name}.yaml"
    actual = normalise(compiled[name].read_text())
    assert "sdkVersion" not in actual and not re.search(r"kfp==\d", actual)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
    if not golden.exists():
        pytest.fail(f"{golden} is missing; create it with UPDATE_GOLDEN=1")
    assert actual == golden.read_text(), (
        f"compiled {name} pipeline differs from tests/golden/{name}.yaml; if the change is "
        "intended, regenerate it with UPDATE_GOLDEN=1"
    )


def test_monitoring_golden_nests_training_and_returns_one_of(compiled):
    """The golden covers what only the monitoring pipeline has: nested pipelines and OneOf."""
    root = documents(compiled["monitoring"])[0]
    nested = dict(_tasks(root))
    assert nested["retrain-on-current-data"]["componentRef"]["name"] == (
        "comp-retrain-on-current-data"
    )
    assert nested["training"]["componentRef"]["name"] == "comp-training"
    assert "comp-training" in root["components"]
    inner = dict(_tasks(root["components"]["comp-retrain-on-current-data"]))
    assert "build-retraining-data" in inner and any(
        n.startswith("condition-branches") for n in inner
    )
    surfaced = root["root"]["dag"]["outputs"]["parameters"]["Output"]["valueFromParameter"]
    branches = root["components"][f"comp-{surfaced['producerSubtask']}"]["dag"]["outputs"]
    one_of = branches["parameters"][surfaced["outputParameterKey"]]["valueFromOneof"]
    assert {s["outputParameterKey"] for s in one_of["parameterSelectors"]} == {
        "pipelinechannel--retrain-on-current-data-Output",
        "pipelinechannel--record-no-drift-Output",
    }


def test_every_component_runs_in_a_pipeline(compiled):
    """A component no pipeline uses is not shipped (promote and rollback are CLI actions)."""
    shipped = {
        path.stem.replace("_", "-")
        for path in (REPO_ROOT / "components").glob("*.py")
        if path.name != "__init__.py"
    }
    # A component used twice with other settings gets a second executor (exec-x-2).
    used = {
        re.sub(r"-\d+$", "", name.removeprefix("exec-"))
        for path in compiled.values()
        for name in executors(path)
    }
    assert shipped == used


def _tasks(node):
    """Every task in every DAG of a compiled pipeline document, nested ones included."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "tasks" and isinstance(value, dict):
                yield from value.items()
            yield from _tasks(value)
    elif isinstance(node, list):
        for value in node:
            yield from _tasks(value)


def test_the_serving_image_parameter_reaches_the_deploy_step(compiled):
    for name in ("training", "monitoring"):
        root = documents(compiled[name])[0]
        parameters = root["root"]["inputDefinitions"]["parameters"]
        assert parameters["serving_image"]["defaultValue"] == "", f"{name}: no image baked in"
    deploys = [
        task for name, task in _tasks(documents(compiled["training"])[0]) if name == "deploy-model"
    ]
    assert deploys and all(
        task["inputs"]["parameters"]["image"]["componentInputParameter"].startswith(
            "pipelinechannel--serving_image"
        )
        for task in deploys
    )


def _store_tasks(path: Path) -> set[str]:
    """Executors that get the store Secret as environment variables."""
    platform = documents(path)[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return {
        name
        for name, spec in platform.items()
        if any(s["secretName"] == "mlops-s3-credentials" for s in spec.get("secretAsEnv", []))
    }


def _config_map_volume_kfp_kubernetes_writes(tmp_path: Path, config_map: str, mount: str) -> dict:
    """The entry ``kfp.kubernetes.use_config_map_as_volume`` puts in a compiled pipeline."""
    from kfp import compiler as kfp_compiler
    from kfp import dsl, kubernetes

    # No return annotations: with postponed annotations KFP would read "None" as a type.
    @dsl.component(base_image=RUNTIME_IMAGE)
    def probe():
        pass

    @dsl.pipeline(name="probe")
    def probe_pipeline():
        kubernetes.use_config_map_as_volume(probe(), config_map_name=config_map, mount_path=mount)

    out = tmp_path / "probe.yaml"
    kfp_compiler.Compiler().compile(probe_pipeline, str(out))
    platform = documents(out)[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    (entry,) = platform["exec-probe"]["configMapAsVolume"]
    return entry


def test_the_store_ca_option_gives_every_store_task_the_ca_file(compiled, tmp_path):
    """``--s3-ca-configmap``: the ConfigMap mounted and MLOPS_S3_CA_BUNDLE set where the store is used.

    The default compile (the golden files) has neither; this compile differs from it in
    exactly these additions, nested pipelines' tasks (monitoring) included.
    """
    from mlops.api.compiling import STORE_CA_MOUNT

    out = compile_cli(
        tmp_path / "ca",
        *("--pipeline", "training", "--pipeline", "monitoring"),
        *("--s3-ca-configmap", "mlops-store-ca", "--s3-ca-key", "store-ca.pem"),
    )
    expected_volume = _config_map_volume_kfp_kubernetes_writes(
        tmp_path, "mlops-store-ca", STORE_CA_MOUNT
    )
    assert expected_volume["mountPath"] == "/etc/mlops/store-ca" and not expected_volume["optional"]
    for name in ("training", "monitoring"):
        default_docs, ca_docs = documents(compiled[name]), documents(out[name])
        for doc in default_docs:
            assert "configMapAsVolume" not in yaml.safe_dump(doc)
            assert "MLOPS_S3_CA_BUNDLE" not in yaml.safe_dump(doc)
        store_tasks = _store_tasks(compiled[name])
        assert {"exec-load-split", "exec-publish-model", "exec-deploy-model"} <= store_tasks
        platform = ca_docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        containers = ca_docs[0]["deploymentSpec"]["executors"]
        mounted = {task for task, spec in platform.items() if "configMapAsVolume" in spec}
        assert mounted == store_tasks, name
        for task in store_tasks:
            assert platform[task].pop("configMapAsVolume") == [expected_volume], (name, task)
            env = containers[task]["container"].pop("env")
            assert env == [
                {"name": "MLOPS_S3_CA_BUNDLE", "value": "/etc/mlops/store-ca/store-ca.pem"},
                # for the predictors the deploy step builds
                {"name": "MLOPS_S3_CA_CONFIGMAP", "value": "mlops-store-ca/store-ca.pem"},
            ], (name, task)
        # The repository's code and the signing step get no store access, so no CA either.
        assert "exec-train-model" not in platform
        assert "env" not in containers["exec-train-model"]["container"]
        assert "configMapAsVolume" not in platform["exec-sign-model"]
        # Without the additions, the document is the default one.
        stripped = yaml.safe_dump_all(ca_docs, sort_keys=True, width=100)
        assert normalise(stripped) == normalise(compiled[name].read_text()), name


def test_the_store_ca_option_refuses_what_kubernetes_would(compiler, tmp_path, capsys):
    for args, message in [
        (["--s3-ca-configmap", "Store_CA"], "store CA ConfigMap name 'Store_CA'"),
        (["--s3-ca-configmap", "store-ca", "--s3-ca-key", "ca/pem"], "ConfigMap key 'ca/pem'"),
        (["--s3-ca-configmap", "store-ca", "--s3-ca-key", ""], "ConfigMap key ''"),
        (["--s3-ca-key", "ca.pem"], "--s3-ca-key needs --s3-ca-configmap"),
    ]:
        with pytest.raises(SystemExit) as exited:
            compiler.main(["--out", str(tmp_path), "--pipeline", "training", *args])
        assert exited.value.code == 2, args
        assert message in capsys.readouterr().err, args
    assert not list(tmp_path.iterdir()), "nothing is compiled after a refused option"


def test_mount_store_ca_checks_before_it_changes_anything():
    from mlops.api.compiling import mount_store_ca
    from mlops.core.errors import UsageError

    document = {"deploymentSpec": {"executors": {"exec-a": {"container": {"image": "x"}}}}}
    with pytest.raises(UsageError, match="no task of this pipeline uses the store"):
        mount_store_ca([document, {}], "store-ca")
    platform = {
        "platforms": {
            "kubernetes": {
                "deploymentSpec": {
                    "executors": {
                        "exec-a": {"secretAsEnv": [{"secretName": "mlops-s3-credentials"}]}
                    }
                }
            }
        }
    }
    document["deploymentSpec"]["executors"]["exec-a"]["container"]["env"] = [
        {"name": "MLOPS_S3_CA_BUNDLE", "value": "/elsewhere.pem"}
    ]
    with pytest.raises(UsageError, match="exec-a already sets MLOPS_S3_CA_BUNDLE"):
        mount_store_ca([document, platform], "store-ca")
    assert (
        "configMapAsVolume"
        not in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-a"]
    )
