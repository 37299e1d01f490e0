"""Shared fixtures: a real embedded object store (SeaweedFS) and a tiny trained model.

Nothing here mocks the store: tests talk to a SeaweedFS server started on
127.0.0.1 for the session.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path in ../shared; skips the test when absent, fails when CI is set."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path.name} from ../shared is required in CI but missing")
        pytest.skip(f"../shared/{'/'.join(parts)} not present")
    return path


@pytest.fixture(scope="session")
def store_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mlops-home")


@pytest.fixture(scope="session")
def store_settings(store_home):
    """Settings of a real SeaweedFS S3 server for the whole session."""
    from mlops.core.embedded_store import EmbeddedStore

    embedded = EmbeddedStore(store_home)
    settings = embedded.start()
    yield settings
    embedded.stop()


@pytest.fixture
def store(store_settings):
    """An ObjectStore on its own fresh bucket, so tests never see each other's objects."""
    from dataclasses import replace

    from mlops.core.store import ObjectStore

    bucket = "t-" + uuid.uuid4().hex[:12]
    store = ObjectStore(replace(store_settings, bucket=bucket))
    store.ensure_bucket()
    return store


@pytest.fixture
def store_env(store, monkeypatch):
    """Exports the test bucket's settings as MLOPS_S3_* for code that reads the environment."""
    for key, value in store.settings.to_env().items():
        monkeypatch.setenv(key, value)
    return store
