"""Routing and reconciling in process, against the real test store (no HTTP server).

A pinned version is answered by that version only; a stable version that fails
verification when nothing is served yet falls back to the newest verified
release in the deployment state's history (status and metric say so) and the
fallback ends once a good stable is deployed; a signed version copied under
another version name is refused; fetched folders are removed once unused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kserve.errors import ModelNotFound

from serving.router import Reconciler, RoutedModel, pinned_version
from tests.serving_helpers import (
    build_model_dir,
    flip_byte,
    make_keypair,
    publish,
    sample_rows,
    v1_list_rows,
)

MODEL = "iris"


class Version:
    def __init__(self, version: str) -> None:
        self.version = version
        self.ready = True

    def predict(self, payload, headers=None, role="stable"):
        return self.version


def test_a_pinned_version_is_answered_by_that_version_only():
    router = RoutedModel("m")
    router.set_route(Version("v1"), Version("v2"), 50)  # type: ignore[arg-type]
    assert router.served_versions() == ["v1", "v2"]
    for version in ("v1", "v2"):
        with pinned_version(version):
            assert {router.predict({}) for _ in range(50)} == {version}
    assert {router.predict({}) for _ in range(200)} == {"v1", "v2"}  # the split, unpinned
    with pinned_version("v3"), pytest.raises(ModelNotFound):
        router.predict({})
    assert router.predictor_for("v3") is None


def _fallback_metric(model: str, version: str) -> float | None:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("mlops_model_fallback", {"model": model, "version": version})


def _deploy(store, model: str, version: str, canary_percent: int | None = None) -> None:
    from mlops.deployment.state import Release, deploy

    release = Release(version, store.uri(f"models/{model}/{version}"))
    deploy(store, model, release, canary_percent=canary_percent)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """Signed iris v1 and v3 folders and a v2 with a tampered model file (trained once)."""
    work = tmp_path_factory.mktemp("router")
    private, public = make_keypair(work / "keys")
    for version in ("v1", "v2", "v3"):
        model_dir, _, _ = build_model_dir(work / version, private, version=version)
        if version == "v2":
            flip_byte(model_dir / "model.skops")
    return work, public


@pytest.fixture
def published(store, model_dirs):
    """The folders published in a fresh bucket, plus v4: a copy of v1's signed folder."""
    work, public = model_dirs
    for version in ("v1", "v2", "v3"):
        publish(store, work / version, MODEL, version)
    publish(store, work / "v1", MODEL, "v4")
    return store, public


def _reconciler(store, public: Path) -> tuple[Reconciler, dict[str, RoutedModel]]:
    registered: dict[str, RoutedModel] = {}
    reconciler = Reconciler(store, public, register=lambda m: registered.__setitem__(m.name, m))
    return reconciler, registered


def test_a_tampered_stable_at_start_falls_back_to_the_last_verified_release(published):
    store, public = published
    _deploy(store, MODEL, "v1")
    _deploy(store, MODEL, "v2")  # stable v2 (tampered), history [v1]
    reconciler, registered = _reconciler(store, public)
    try:
        reconciler.reconcile_once()
        router = registered[MODEL]
        status = router.status()
        assert (status["stable"], status["desired"]["stable"]) == ("v1", "v2")
        assert (
            status["fallback"]["version"] == "v1" and "model.skops" in status["fallback"]["reason"]
        )
        assert _fallback_metric(MODEL, "v1") == 1
        assert router.predict({"instances": v1_list_rows(sample_rows(2))})["model_version"] == "v1"

        _deploy(store, MODEL, "v3")  # a good stable ends the fallback
        reconciler.reconcile_once()
        status = router.status()
        assert (status["stable"], status["fallback"]) == ("v3", None)
        assert _fallback_metric(MODEL, "v1") is None
    finally:
        reconciler.close()


def test_a_signed_version_copied_under_another_name_is_refused(published):
    store, public = published
    _deploy(store, MODEL, "v1")
    _deploy(store, MODEL, "v4")  # v4 is v1's signed folder: the signature verifies
    reconciler, registered = _reconciler(store, public)
    try:
        reconciler.reconcile_once()
        status = registered[MODEL].status()
        assert status["stable"] == "v1" and status["fallback"]["desired"] == "v4"
        assert "copied under another name" in status["not_ready_reason"]
    finally:
        reconciler.close()


def test_with_no_verified_release_the_model_is_not_ready(published):
    store, public = published
    _deploy(store, MODEL, "v2")
    reconciler, registered = _reconciler(store, public)
    try:
        reconciler.reconcile_once()
        status = registered[MODEL].status()
        assert status["ready"] is False and status["stable"] is None and status["fallback"] is None
        assert "v2" in status["not_ready_reason"]
    finally:
        reconciler.close()


def test_fetched_folders_are_removed_once_a_version_is_no_longer_served(published):
    store, public = published
    _deploy(store, MODEL, "v1")
    reconciler, registered = _reconciler(store, public)
    try:
        reconciler.reconcile_once()
        first = registered[MODEL].route.stable
        folder = Path(first.model_uri)
        assert folder.is_dir()
        _deploy(store, MODEL, "v3")
        reconciler.reconcile_once()
        assert registered[MODEL].current_version == "v3" and not folder.exists()
        assert first.ready is False
        root = Path(registered[MODEL].route.stable.model_uri).parent
    finally:
        reconciler.close()
    assert not root.exists()
