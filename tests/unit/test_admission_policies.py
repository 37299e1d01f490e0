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
    bad_mode = copy.deepcopy(documents(SIGSTORE)[0])
    bad_mode["spec"]["mode"] = "enforced"
    assert problems(bad_mode)
    kyverno = copy.deepcopy(documents(KYVERNO)[0])
    kyverno["spec"]["rules"][1]["verifyImages"][0]["failureAction"] = "Block"
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


def test_the_kyverno_policy_guards_the_predictors_this_project_builds():
    manifest = build_inferenceservice(
        "iris", "v1", "s3://mlops/models/iris/v1", image=SERVING_IMAGE
    )
    predictor = manifest["spec"]["predictor"]
    pod_labels = predictor["labels"]
    (container,) = predictor["containers"]
    validate_rule, verify_rule = documents(KYVERNO)[0]["spec"]["rules"]
    (selected,) = validate_rule["match"]["any"]
    resources = selected["resources"]
    assert resources["kinds"] == ["Pod"]
    assert resources["namespaces"] == [manifest["metadata"]["namespace"]]
    (expression,) = resources["selector"]["matchExpressions"]
    assert expression == {"key": LABEL_MODEL, "operator": "Exists"} and LABEL_MODEL in pod_labels
    (entry,) = validate_rule["validate"]["pattern"]["spec"]["containers"]
    assert entry["(name)"] == container["name"] == CONTAINER_NAME
    assert validate_rule["validate"]["failureAction"] == "Enforce"
    assert kyverno_wildcard(entry["image"]).fullmatch(container["image"])
    assert not kyverno_wildcard(entry["image"]).fullmatch("docker.io/attacker/model-server:1")
    (verify,) = verify_rule["verifyImages"]
    assert verify["failureAction"] == "Enforce" and verify["required"] and verify["verifyDigest"]
    assert verify["mutateDigest"], "a tag is replaced by the digest that was verified"
    (reference,) = verify["imageReferences"]
    assert reference == entry["image"], "every image the predictor may run is verified"
    for image in (RUNTIME_IMAGE, SERVING_IMAGE, SERVING_IMAGE.split(":")[0] + "@" + DIGEST):
        assert kyverno_wildcard(reference).fullmatch(image)
    (attestation,) = verify["attestations"]
    assert attestation["type"] == "https://cyclonedx.org/bom"
