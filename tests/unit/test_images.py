"""Images named by digest: the reference rule, the InferenceService, compile.py, the release workflow.

The workflow is validated against the GitHub Actions schema in ../shared (skipped
when absent, failing when ``CI`` is set); its shell steps run here in bash with the
environment GitHub would give them (no registry, no cosign: those need GitHub).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.core.errors import UsageError
from mlops.core.rules import ImageRef, check_image_reference
from mlops.deployment.inferenceservice import (
    build_inferenceservice,
    image_warning,
    serving_image_reference,
)
from mlops.deployment.schema import validate_inferenceservice
from mlops.runtime import IMAGE_REPOSITORY, PYTHON_BASE_IMAGE, RUNTIME_IMAGE, SERVING_IMAGE
from tests.conftest import REPO_ROOT, shared_path
from tests.yaml_helpers import load_workflow

DIGEST = "sha256:" + "0123456789abcdef" * 4
SERVING_REPO = SERVING_IMAGE.rsplit(":", 1)[0]
BY_DIGEST = f"{SERVING_REPO}@{DIGEST}"
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "release-images.yaml"
MODEL, VERSION, URI = (
    "iris",
    "v20261128-183800-a1b2",
    "s3://mlops/models/iris/v20261128-183800-a1b2",
)


# -- the rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (BY_DIGEST, ImageRef(SERVING_REPO, None, DIGEST)),
        (f"{SERVING_IMAGE}@{DIGEST}", ImageRef(SERVING_REPO, "0.1.0", DIGEST)),
        (SERVING_IMAGE, ImageRef(SERVING_REPO, "0.1.0", None)),
        ("localhost:5000/team/model-server:v2", ImageRef("localhost:5000/team/model-server", "v2")),
        ("python", ImageRef("python")),
        (PYTHON_BASE_IMAGE, ImageRef("python", "3.11-slim-bookworm")),
    ],
)
def test_references_parse_into_repository_tag_and_digest(ref, expected):
    assert check_image_reference(ref) == expected


def test_a_digest_reference_is_pinned_and_runs_by_its_digest_alone():
    ref = check_image_reference(f"{SERVING_IMAGE}@{DIGEST}")
    assert ref.pinned and ref.tag_warning() is None
    assert ref.canonical() == BY_DIGEST  # the tag beside a digest is dropped


def test_a_tag_reference_warns_naming_the_image_and_the_fix():
    ref = check_image_reference(SERVING_IMAGE, name="serving_image")
    assert not ref.pinned and ref.canonical() == SERVING_IMAGE
    warning = ref.tag_warning("serving_image")
    assert warning is not None
    assert warning.startswith(f"serving_image {SERVING_IMAGE} is named by tag, not by digest")
    assert f"{SERVING_REPO}@sha256:<digest>" in warning
    assert check_image_reference("python").canonical() == "python:latest"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("", "must be an image reference"),
        ("ghcr.io/kfp-mlops/kfp mlops:1", "must be an image reference"),
        ("ghcr.io/kfp-mlops/KFP-mlops:1", "must be an image reference"),
        ("Team/model:1", "repository names are lowercase"),
        ("ghcr.io/kfp-mlops/kfp-mlops:", "must be an image reference"),
        ("ghcr.io/kfp-mlops/kfp-mlops:-bad", "must be an image reference"),
        ("ghcr.io/kfp-mlops/kfp-mlops@sha256:abc", "64 lowercase hex digits"),
        (f"ghcr.io/kfp-mlops/kfp-mlops@{DIGEST.upper()}", "64 lowercase hex digits"),
        ("ghcr.io/kfp-mlops/kfp-mlops@sha512:" + "a" * 128, "must be sha256:"),
        ("ghcr.io/" + "a" * 250 + ":1", "longer than 255"),
        ("https://ghcr.io/kfp-mlops/kfp-mlops:1", "must be an image reference"),
    ],
)
def test_what_is_no_image_reference_is_a_usage_error_naming_the_parameter(ref, message):
    with pytest.raises(UsageError, match=message) as raised:
        check_image_reference(ref, name="serving_image")
    assert "serving_image" in str(raised.value)


def test_the_project_images_are_references_by_tag_today():
    for image in (RUNTIME_IMAGE, SERVING_IMAGE):
        assert check_image_reference(image).repository.startswith(IMAGE_REPOSITORY)
        assert check_image_reference(image).tag_warning() is not None


# -- the InferenceService ---------------------------------------------------------------


def predictor_image(manifest: dict[str, Any]) -> str:
    return manifest["spec"]["predictor"]["containers"][0]["image"]


def test_the_predictor_runs_a_digest_reference_by_its_digest():
    manifest = build_inferenceservice(MODEL, VERSION, URI, image=f"{SERVING_IMAGE}@{DIGEST}")
    assert predictor_image(manifest) == BY_DIGEST
    assert serving_image_reference(f"{SERVING_IMAGE}@{DIGEST}") == BY_DIGEST
    assert image_warning(BY_DIGEST) is None


def test_a_tag_is_used_as_given_and_the_deploy_step_gets_a_warning():
    assert predictor_image(build_inferenceservice(MODEL, VERSION, URI)) == SERVING_IMAGE
    warning = image_warning(SERVING_IMAGE)
    assert warning is not None and warning.startswith(f"serving image {SERVING_IMAGE} is named")


def test_a_bad_serving_image_builds_no_manifest():
    with pytest.raises(UsageError, match="serving image must be an image reference"):
        build_inferenceservice(MODEL, VERSION, URI, image="not an image")
    with pytest.raises(UsageError, match="64 lowercase hex"):
        image_warning(f"{SERVING_REPO}@sha256:1234")


def test_a_canary_by_digest_validates_against_the_kserve_crd():
    crd = shared_path("schemas", "kserve", "serving.kserve.io_inferenceservices.yaml")
    for mode in ("Serverless", "RawDeployment"):
        stable = build_inferenceservice(
            MODEL, "v1", "s3://mlops/models/iris/v1", image=BY_DIGEST, deployment_mode=mode
        )
        live = {**stable, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        canary = build_inferenceservice(
            MODEL,
            VERSION,
            URI,
            image=BY_DIGEST,
            deployment_mode=mode,
            canary_percent=10,
            previous=live,
        )
        validate_inferenceservice(canary, crd)
        assert BY_DIGEST in json.dumps(canary["spec"])


# -- compile.py -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiler():
    spec = importlib.util.spec_from_file_location("mlops_compile_images", REPO_ROOT / "compile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def executor_images(path: Path) -> set[str]:
    document = next(yaml.safe_load_all(path.read_text()))
    return {e["container"]["image"] for e in document["deploymentSpec"]["executors"].values()}


def test_compile_with_a_digest_runs_every_task_by_it_without_a_warning(compiler, tmp_path, capsys):
    image = f"registry.example.com/team/kfp-mlops:1.0@{DIGEST}"
    assert compiler.main(["--out", str(tmp_path), "--pipeline", "training", "--image", image]) == 0
    assert executor_images(tmp_path / "training.yaml") == {
        f"registry.example.com/team/kfp-mlops@{DIGEST}"
    }
    assert "warning" not in capsys.readouterr().err


def test_compile_with_a_tag_warns_on_stderr(compiler, tmp_path, capsys):
    image = "registry.example.com/team/kfp-mlops:1.0"
    assert compiler.main(["--out", str(tmp_path), "--pipeline", "training", "--image", image]) == 0
    assert executor_images(tmp_path / "training.yaml") == {image}
    err = capsys.readouterr().err
    assert f"warning: --image {image} is named by tag, not by digest" in err


def test_compile_warns_that_the_default_image_is_a_tag(compiler, tmp_path, capsys):
    assert compiler.main(["--out", str(tmp_path), "--pipeline", "training"]) == 0
    assert f"warning: the default image {RUNTIME_IMAGE} is named by tag" in capsys.readouterr().err


def test_compile_refuses_what_is_no_image_reference(compiler, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        compiler.main(["--out", str(tmp_path), "--image", "kfp-mlops@sha256:short"])
    assert exited.value.code == 2
    assert "--image" in capsys.readouterr().err and not list(tmp_path.iterdir())


# -- the release workflow ---------------------------------------------------------------


def workflow() -> dict[str, Any]:
    return load_workflow(WORKFLOW)


def steps() -> list[dict[str, Any]]:
    return workflow()["jobs"]["images"]["steps"]


def step(step_id: str) -> dict[str, Any]:
    return next(s for s in steps() if s.get("id") == step_id or s.get("name") == step_id)


def test_the_workflow_is_valid_against_the_github_schema():
    import jsonschema

    schema = json.loads(shared_path("schemas", "github", "github-workflow.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(workflow()))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_the_workflow_runs_on_version_tags_with_least_privilege():
    doc = workflow()
    assert "on" in doc and True not in doc
    assert doc["on"]["push"]["tags"] == ["v*"]
    assert doc["permissions"] == {"contents": "read"}
    assert doc["jobs"]["images"]["permissions"] == {
        "contents": "read",
        "packages": "write",
        "id-token": "write",
    }
    text = WORKFLOW.read_text()
    assert "secrets." not in text.replace("secrets.GITHUB_TOKEN", ""), "keyless: no stored key"


def test_both_dockerfile_targets_are_built_and_pushed_to_ghcr():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    built = {}
    for s in steps():
        if s.get("uses", "").startswith("docker/build-push-action@"):
            assert s["with"]["push"] is True and s["with"]["context"] == "."
            built[s["with"]["target"]] = s["id"]
    assert set(built) == {"pipeline", "serving"}
    for target in built:
        assert f" AS {target}\n" in dockerfile
    login = next(s for s in steps() if s.get("uses", "").startswith("docker/login-action@"))
    assert login["with"]["registry"] == "ghcr.io"
    refs = step("refs")["env"]
    for target, step_id in built.items():
        assert refs[target.upper()].endswith(f"@${{{{ steps.{step_id}.outputs.digest }}}}")


def run_step(
    script: str, tmp_path: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """A ``run:`` script as GitHub runs it (``bash -e``), and what it wrote to GITHUB_OUTPUT."""
    output = tmp_path / "github_output"
    output.write_text("")
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = [line.split("=", 1) for line in output.read_text().splitlines() if "=" in line]
    return done, dict(lines)


def test_image_names_are_the_runtime_ones_and_versions_come_from_the_tag(tmp_path):
    script = step("names")["run"]
    done, out = run_step(
        script,
        tmp_path,
        GITHUB_REPOSITORY_OWNER="kfp-mlops",
        GITHUB_REF="refs/tags/v0.1.0",
        GITHUB_REF_NAME="v0.1.0",
        GITHUB_SHA="0123456789abcdef0123456789abcdef01234567",
    )
    assert done.returncode == 0, done.stderr
    assert f"{out['pipeline']}:{out['version']}" == RUNTIME_IMAGE
    assert f"{out['serving']}:{out['version']}" == SERVING_IMAGE
    done, out = run_step(
        script,
        tmp_path,
        GITHUB_REPOSITORY_OWNER="Acme-Corp",
        GITHUB_REF="refs/heads/main",
        GITHUB_REF_NAME="main",
        GITHUB_SHA="0123456789abcdef0123456789abcdef01234567",
    )
    assert done.returncode == 0, done.stderr
    assert out["serving"] == "ghcr.io/acme-corp/kfp-mlops-serving"
    assert out["version"] == "sha-0123456789ab"
    check_image_reference(f"{out['serving']}:{out['version']}")


def test_the_digest_step_refuses_a_build_without_a_digest(tmp_path):
    script = step("refs")["run"]
    pipeline = f"ghcr.io/kfp-mlops/kfp-mlops@{DIGEST}"
    done, out = run_step(script, tmp_path, PIPELINE=pipeline, SERVING=BY_DIGEST)
    assert done.returncode == 0, done.stderr
    assert out == {"pipeline": pipeline, "serving": BY_DIGEST}
    assert all(check_image_reference(ref).pinned for ref in out.values())
    done, _ = run_step(script, tmp_path, PIPELINE=pipeline, SERVING="ghcr.io/kfp-mlops/x@")
    assert done.returncode == 1 and "no digest" in done.stdout


def test_each_image_is_signed_and_gets_its_sbom_attested_by_digest():
    sbom = step("SBOMs from the locks")["run"]
    assert "-m mlops.core.sbom" in sbom
    assert "< requirements-serving.lock > serving.cdx.json" in sbom
    assert "< requirements.lock > pipeline.cdx.json" in sbom
    sign = step("Sign the images and attest their SBOMs (keyless)")
    for name in ("PIPELINE", "SERVING"):
        assert sign["env"][name] == f"${{{{ steps.refs.outputs.{name.lower()} }}}}"
        assert f'cosign sign --yes "${name}"' in sign["run"]
        cdx = f"{name.lower()}.cdx.json"
        assert f'cosign attest --yes --type cyclonedx --predicate {cdx} "${name}"' in sign["run"]
    assert "--key" not in sign["run"], "keyless: the certificate comes from the job's OIDC token"
    verify = step("Verify the signatures and attestations as the cluster will")
    assert verify["env"]["IDENTITY"] == "https://github.com/${{ github.workflow_ref }}"
    assert "cosign verify " in verify["run"] and "cosign verify-attestation" in verify["run"]


def test_the_digests_are_printed_and_summarised():
    digests = step("Digests")
    assert 'echo "serving image:  $SERVING"' in digests["run"]
    assert 'echo "pipeline image: $PIPELINE"' in digests["run"]
    assert "GITHUB_STEP_SUMMARY" in digests["run"]
    assert workflow()["jobs"]["images"]["outputs"] == {
        "pipeline": "${{ steps.refs.outputs.pipeline }}",
        "serving": "${{ steps.refs.outputs.serving }}",
    }
