"""The admission policies of deploy/k8s/ that refuse unsigned images in the serving namespace.

Both forms (sigstore policy-controller ``ClusterImagePolicy``, Kyverno ``ClusterPolicy``)
are validated against the real CRDs in ../shared/schemas/ (skipped when absent, failing
when ``CI`` is set), and checked against what they guard: the identity the release
workflow signs with, the images and labels the project's InferenceServices use.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops.deployment.inferenceservice import CONTAINER_NAME, LABEL_MODEL, build_inferenceservice
from mlops.deployment.schema import schema_problems
from mlops.runtime import RUNTIME_IMAGE, SERVING_IMAGE
from tests.conftest import REPO_ROOT, shared_path
from tests.yaml_helpers import load_workflow

K8S = REPO_ROOT / "deploy" / "k8s"
SIGSTORE = K8S / "image-policy-sigstore.yaml"
KYVERNO = K8S / "image-policy-kyverno.yaml"
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "release-images.yaml"
CRDS = {
    "ClusterImagePolicy": ("sigstore", "policy.sigstore.dev_clusterimagepolicies.yaml"),
    "ClusterPolicy": ("kyverno", "kyverno.io_clusterpolicies.yaml"),
}
ISSUER = "https://token.actions.githubusercontent.com"
IDENTITY = "https://github.com/kfp-mlops/kfp-mlops/.github/workflows/release-images.yaml@{ref}"
DIGEST = "sha256:" + "ab" * 32


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def crd_path(kind: str) -> Path:
    return shared_path("schemas", *CRDS[kind])


def problems(doc: dict[str, Any]) -> list[str]:
    """Every problem of ``doc`` against its CRD (unknown fields included)."""
    crd = crd_path(doc["kind"])
    found = schema_problems(doc, crd)
    # The policy-controller CRD's root schema lists only metadata/spec/status; apiVersion and
    # kind are TypeMeta, which the API server always accepts, so they are not unknown fields.
    root = yaml.safe_load(crd.read_text())["spec"]["versions"]
    declared = {
        key for entry in root for key in entry["schema"]["openAPIV3Schema"].get("properties", {})
    }
    typemeta = {f"$.{key}: unknown field {key!r}" for key in {"apiVersion", "kind"} - declared}
    return [problem for problem in found if problem not in typemeta]


ALL_DOCS = [
    (path.name, index) for path in (SIGSTORE, KYVERNO) for index, _ in enumerate(documents(path))
]


def policy(name: str, index: int) -> dict[str, Any]:
    return documents(K8S / name)[index]


@pytest.mark.parametrize(("name", "index"), ALL_DOCS)
def test_every_policy_validates_against_its_crd(name, index):
    doc = policy(name, index)
    assert doc["kind"] in CRDS, f"{name}: unexpected kind {doc['kind']}"
    assert problems(doc) == []


def test_validation_catches_a_misspelt_field_in_either_policy():
    """Guards the check itself: a typo must not pass because the CRD prunes unknown fields."""
    cip = copy.deepcopy(documents(SIGSTORE)[0])
    cip["spec"]["authorities"][0]["keyles"] = cip["spec"]["authorities"][0].pop("keyless")
    assert any("keyles" in problem for problem in problems(cip))
    # The CRD does not enumerate modes (the controller's webhook does); types it does check.
    wrong_type = copy.deepcopy(documents(SIGSTORE)[0])
    wrong_type["spec"]["images"] = "ghcr.io/kfp-mlops/**"
    assert any("spec.images" in problem for problem in problems(wrong_type))
    kyverno = copy.deepcopy(documents(KYVERNO)[0])
    kyverno["spec"]["rules"][-1]["verifyImages"][0]["failureAction"] = "Block"
    assert problems(kyverno)


# -- what the policies accept -----------------------------------------------------------


def subject_patterns() -> list[str]:
    """Every signer identity pattern in both policies (signatures and attestations)."""
    found = []
    (signed, _platform) = documents(SIGSTORE)
    for authority in signed["spec"]["authorities"]:
        for identity in authority["keyless"]["identities"]:
            assert identity["issuer"] == ISSUER
            found.append(identity["subjectRegExp"])
    for rule in documents(KYVERNO)[0]["spec"]["rules"]:
        for verify in rule.get("verifyImages", []):
            groups = [*verify["attestors"]]
            groups += [a for att in verify.get("attestations", []) for a in att["attestors"]]
            for group in groups:
                for entry in group["entries"]:
                    assert entry["keyless"]["issuer"] == ISSUER
                    found.append(entry["keyless"]["subjectRegExp"])
    return found


def test_both_policies_trust_one_identity():
    patterns = subject_patterns()
    assert len(patterns) >= 3 and len(set(patterns)) == 1


@pytest.mark.parametrize("ref", ["refs/tags/v0.1.0", "refs/tags/v1.2.3-rc.1", "refs/heads/main"])
def test_the_release_workflow_on_a_tag_or_main_is_trusted(ref):
    (pattern,) = set(subject_patterns())
    assert re.fullmatch(pattern, IDENTITY.format(ref=ref))


@pytest.mark.parametrize(
    "subject",
    [
        IDENTITY.format(ref="refs/heads/feature"),  # an unreviewed branch
        IDENTITY.format(ref="refs/pull/7/merge"),  # a pull request
        IDENTITY.format(ref="refs/tags/latest"),  # not a version tag
        "https://github.com/someone/kfp-mlops/.github/workflows/release-images.yaml@refs/tags/v0.1.0",
        "https://github.com/kfp-mlops/kfp-mlops/.github/workflows/other.yaml@refs/tags/v0.1.0",
        IDENTITY.format(ref="refs/tags/v0.1.0") + "/x",
    ],
)
def test_other_signers_are_not_trusted(subject):
    (pattern,) = set(subject_patterns())
    assert not re.search(pattern, subject)


def test_the_trusted_workflow_is_the_one_that_signs():
    jobs = load_workflow(WORKFLOW)["jobs"]
    assert jobs["images"]["permissions"]["id-token"] == "write"
    (pattern,) = set(subject_patterns())
    # GitHub's certificate names the workflow file by its path in the repository.
    workflow_path = WORKFLOW.relative_to(REPO_ROOT).as_posix()
    assert re.fullmatch(
        pattern, f"https://github.com/kfp-mlops/kfp-mlops/{workflow_path}@refs/tags/v0.1.0"
    )


def glob_regex(glob: str) -> re.Pattern[str]:
    """policy-controller globs: ``**`` crosses ``/``, ``*`` does not."""
    parts = (re.escape(part).replace(r"\*", "[^/]*") for part in glob.split("**"))
    return re.compile(".*".join(parts) + r"(?::[^/]+)?(?:@sha256:[0-9a-f]{64})?")


def test_the_sigstore_policy_covers_both_project_images_and_allows_none_statically():
    signed, platform = documents(SIGSTORE)
    assert signed["spec"]["mode"] == platform["spec"]["mode"] == "enforce"
    for image in (RUNTIME_IMAGE, SERVING_IMAGE, SERVING_IMAGE.split(":")[0] + "@" + DIGEST):
        assert any(glob_regex(g["glob"]).fullmatch(image) for g in signed["spec"]["images"]), image
        assert not any(
            glob_regex(g["glob"]).fullmatch(image) for g in platform["spec"]["images"]
        ), f"{image} would pass unsigned"
    (attestation,) = signed["spec"]["authorities"][0]["attestations"]
    assert attestation["predicateType"] == "cyclonedx"
    assert platform["spec"]["authorities"] == [{"name": "platform", "static": {"action": "pass"}}]


def kyverno_wildcard(pattern: str) -> re.Pattern[str]:
    """Kyverno's wildcards: ``*`` is any run of characters (``/`` included), ``?`` one."""
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."))


def kyverno_matches(pattern: str, value: str) -> bool:
    """A Kyverno pattern value: alternatives split on ``|``, each a wildcard."""
    return any(kyverno_wildcard(p.strip()).fullmatch(value) for p in pattern.split("|"))


def kyverno_rules() -> dict[str, dict[str, Any]]:
    return {rule["name"]: rule for rule in documents(KYVERNO)[0]["spec"]["rules"]}


def predictor_pod() -> dict[str, Any]:
    """The pod KServe makes of this project's predictor, with the sidecars it injects."""
    manifest = build_inferenceservice(
        "iris", "v1", "s3://mlops/models/iris/v1", image=SERVING_IMAGE
    )
    predictor = manifest["spec"]["predictor"]
    queue_proxy = {
        "name": "queue-proxy",
        "image": f"gcr.io/knative-releases/knative.dev/serving/cmd/queue@{DIGEST}",
    }
    return {
        "metadata": {"namespace": manifest["metadata"]["namespace"], "labels": predictor["labels"]},
        "spec": {
            "containers": [*predictor["containers"], queue_proxy],
            "initContainers": [{"name": "istio-init", "image": "docker.io/istio/proxyv2:1.22.1"}],
        },
    }


def selects(rule: dict[str, Any], pod: dict[str, Any]) -> bool:
    (selected,) = rule["match"]["any"]
    resources = selected["resources"]
    assert resources["kinds"] == ["Pod"]
    if pod["metadata"]["namespace"] not in resources["namespaces"]:
        return False
    for expression in resources.get("selector", {}).get("matchExpressions", []):
        assert expression["operator"] == "Exists"
        if expression["key"] not in pod["metadata"]["labels"]:
            return False
    return True


def admitted_by_image_rules(pod: dict[str, Any]) -> bool:
    """The two validate rules, evaluated as Kyverno does for these patterns."""
    rules = kyverno_rules()
    server_rule = rules["predictors-run-project-images"]
    others_rule = rules["predictors-run-no-other-images"]
    if not selects(server_rule, pod):
        return True
    (server,) = server_rule["validate"]["pattern"]["spec"]["containers"]
    for container in pod["spec"]["containers"]:
        if container["name"] == server["(name)"] and not kyverno_matches(
            server["image"], container["image"]
        ):
            return False
    spec_pattern = others_rule["validate"]["pattern"]["spec"]
    (allowed,) = spec_pattern["containers"]
    (allowed_init,) = spec_pattern["=(initContainers)"]
    return all(
        kyverno_matches(allowed["image"], c["image"]) for c in pod["spec"]["containers"]
    ) and all(
        kyverno_matches(allowed_init["image"], c["image"])
        for c in pod["spec"].get("initContainers", [])
    )


def test_the_kyverno_policy_selects_the_predictors_this_project_builds():
    pod = predictor_pod()
    rules = kyverno_rules()
    assert set(rules) == {
        "predictors-run-project-images",
        "predictors-run-no-other-images",
        "project-images-are-signed",
    }
    for name in ("predictors-run-project-images", "predictors-run-no-other-images"):
        assert selects(rules[name], pod), name
        assert rules[name]["validate"]["failureAction"] == "Enforce"
    (server,) = rules["predictors-run-project-images"]["validate"]["pattern"]["spec"]["containers"]
    assert server["(name)"] == CONTAINER_NAME == pod["spec"]["containers"][0]["name"]
    (expression,) = rules["predictors-run-project-images"]["match"]["any"][0]["resources"][
        "selector"
    ]["matchExpressions"]
    assert expression["key"] == LABEL_MODEL
    assert selects(rules["project-images-are-signed"], pod)


def test_a_predictor_with_the_project_image_and_platform_sidecars_is_admitted():
    assert admitted_by_image_rules(predictor_pod())
    by_digest = predictor_pod()
    by_digest["spec"]["containers"][0]["image"] = SERVING_IMAGE.split(":")[0] + "@" + DIGEST
    assert admitted_by_image_rules(by_digest)


@pytest.mark.parametrize(
    ("where", "image"),
    [
        ("server", "docker.io/attacker/model-server:1"),
        ("server", "gcr.io/knative-releases/not-a-model-server:1"),  # a platform image as server
        ("extra", "docker.io/library/nginx:1.27"),  # what `kubectl run --labels` would start
        ("init", "busybox:1.36"),
    ],
)
def test_a_predictor_running_another_image_is_refused(where, image):
    pod = predictor_pod()
    if where == "server":
        pod["spec"]["containers"][0]["image"] = image
    elif where == "extra":
        pod["spec"]["containers"].append({"name": "probe", "image": image})
    else:
        pod["spec"]["initContainers"].append({"name": "probe", "image": image})
    assert not admitted_by_image_rules(pod)


def test_every_project_image_is_verified_by_digest_with_its_sbom():
    rules = kyverno_rules()
    (verify,) = rules["project-images-are-signed"]["verifyImages"]
    assert verify["type"] == "Cosign" and verify["failureAction"] == "Enforce"
    assert verify["required"] and verify["verifyDigest"]
    assert verify["mutateDigest"], "a tag is replaced by the digest that was verified"
    (reference,) = verify["imageReferences"]
    (server,) = rules["predictors-run-project-images"]["validate"]["pattern"]["spec"]["containers"]
    assert reference == server["image"], "every image the model server may run is verified"
    for image in (RUNTIME_IMAGE, SERVING_IMAGE, SERVING_IMAGE.split(":")[0] + "@" + DIGEST):
        assert kyverno_matches(reference, image)
    (attestation,) = verify["attestations"]
    assert attestation["type"] == "https://cyclonedx.org/bom"
