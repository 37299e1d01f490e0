"""The CycloneDX SBOM of the serving image (``mlops.core.sbom``).

Validated against the CycloneDX JSON schema that cyclonedx-python-lib ships; its
packages are exactly ``requirements-serving.lock`` plus the project's wheel; a
signature over a model folder covers it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from mlops.core.errors import DataError, VerificationError
from mlops.core.sbom import (
    SBOM_FILE,
    SERVING_IMAGE_NAME,
    SPEC_VERSION,
    parse_lock,
    sbom_from_lock,
    serving_sbom,
    write_sbom,
)
from mlops.trust import signing
from tests.conftest import REPO_ROOT

SERVING_LOCK = REPO_ROOT / "requirements-serving.lock"
FIXED = {
    "serial_number": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "timestamp": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
}


def schema_errors(document: dict) -> object:
    """What the CycloneDX 1.6 strict JSON schema finds wrong (None when valid)."""
    assert SPEC_VERSION == "1.6"
    return JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))


def purls(document: dict) -> set[str]:
    return {component["purl"] for component in document["components"]}


def test_the_serving_sbom_is_valid_cyclonedx_and_lists_the_lock():
    document = serving_sbom(SERVING_LOCK.read_text())
    assert schema_errors(document) is None
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == SPEC_VERSION
    assert document["serialNumber"].startswith("urn:uuid:")
    pins = parse_lock(SERVING_LOCK.read_text())
    expected = {f"pkg:pypi/{name}@{version}" for name, version in pins.items()}
    assert expected <= purls(document)
    extra = purls(document) - expected
    assert len(extra) == 1 and next(iter(extra)).startswith("pkg:pypi/kfp-mlops@")
    root = document["metadata"]["component"]
    assert root["type"] == "container" and root["name"] == SERVING_IMAGE_NAME
    by_ref = {entry["ref"]: entry.get("dependsOn", []) for entry in document["dependencies"]}
    assert set(by_ref[root["bom-ref"]]) == {c["bom-ref"] for c in document["components"]}


def test_the_default_is_the_installed_serving_closure_which_is_the_lock():
    assert purls(serving_sbom()) == purls(serving_sbom(SERVING_LOCK.read_text()))


def test_write_sbom_writes_the_model_folder_file_deterministically(tmp_path: Path):
    first = write_sbom(tmp_path / SBOM_FILE, SERVING_LOCK.read_text(), **FIXED)
    again = write_sbom(tmp_path / "again.json", SERVING_LOCK.read_text(), **FIXED)
    assert first == tmp_path / "sbom.cdx.json"
    assert first.read_bytes() == again.read_bytes()
    document = json.loads(first.read_text())
    assert document["serialNumber"] == f"urn:uuid:{FIXED['serial_number']}"
    assert document["metadata"]["timestamp"].startswith("2026-01-02T03:04:05")
    assert schema_errors(document) is None


def test_two_sboms_get_two_serial_numbers():
    text = SERVING_LOCK.read_text()
    assert serving_sbom(text)["serialNumber"] != serving_sbom(text)["serialNumber"]


def test_names_are_normalised_and_comments_skipped():
    assert parse_lock("# pins\nScikit_Learn==1.5.2\n\nzope.interface==7.0  # why\n") == {
        "scikit-learn": "1.5.2",
        "zope-interface": "7.0",
    }


@pytest.mark.parametrize(
    ("lock", "problem"),
    [
        ("numpy>=1.26\n", "line 1 is not an exact name==version pin"),
        ("numpy==2.0 ; python_version < '3.12'\n", "line 1 is not an exact"),
        ("pandas==2.2.0\n-e git+https://example.com/x.git#egg=x\n", "line 2 is not an exact"),
        ("numpy==2.0\nNumPy==2.1\n", "line 2 pins numpy a second time"),
        ("# nothing\n\n", "pins no package"),
    ],
)
def test_a_lock_that_is_not_exact_pins_is_refused(lock, problem):
    with pytest.raises(DataError, match=problem):
        sbom_from_lock(lock)


def test_the_signature_of_a_model_folder_covers_its_sbom(tmp_path: Path):
    private, public = signing.default_key_paths(tmp_path / "home")
    signing.generate_keypair(private, public)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "metadata.json").write_text('{"name": "iris", "version": "v1"}')
    write_sbom(model_dir / SBOM_FILE, SERVING_LOCK.read_text())
    signing.sign_model_dir(model_dir, private)
    signing.verify_model_dir(model_dir, public)
    document = json.loads((model_dir / SBOM_FILE).read_text())
    document["components"] = document["components"][1:]  # hide a package
    (model_dir / SBOM_FILE).write_text(json.dumps(document))
    with pytest.raises(VerificationError, match=SBOM_FILE):
        signing.verify_model_dir(model_dir, public)


def run_module(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlops.core.sbom", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO_ROOT,
    )


def test_the_command_writes_the_sbom_of_a_lock_file_and_of_stdin(tmp_path: Path):
    out = tmp_path / "pipeline.cdx.json"
    done = run_module(
        "--lock",
        str(REPO_ROOT / "requirements.lock"),
        "--image-name",
        "kfp-mlops",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    assert schema_errors(document) is None
    assert document["metadata"]["component"]["name"] == "kfp-mlops"
    assert "pkg:pypi/kfp@" in " ".join(purls(document))  # the pipeline image has kfp
    piped = run_module("--lock", "-", stdin=SERVING_LOCK.read_text())
    assert piped.returncode == 0, piped.stderr
    assert purls(json.loads(piped.stdout)) == purls(serving_sbom(SERVING_LOCK.read_text()))


def test_the_command_exits_2_naming_the_bad_line():
    done = run_module("--lock", "-", stdin="numpy==2.0\nrequests\n")
    assert done.returncode == 2 and "lock line 2" in done.stderr and not done.stdout


def test_the_command_exits_2_for_a_missing_lock(tmp_path: Path):
    done = run_module("--lock", str(tmp_path / "absent.lock"))
    assert done.returncode == 2 and "cannot read lock" in done.stderr and not done.stdout
