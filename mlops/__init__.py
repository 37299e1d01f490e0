"""kfp-mlops: the library behind the pipelines, the components, the model server and the CLI.

Layers, lowest first (each imports only the ones before it; see ARCHITECTURE.md):
``core`` (errors, settings, store, data), ``model`` (feature schema, training,
model folder, registry, holdout), ``trust`` (audit, scan, quality, signing),
``deployment`` (desired state, InferenceServices), ``monitoring`` (inference-log
format, drift, metrics), ``release`` (gates, decision, publish), ``runs`` (local
runs) and, on top, the applications: ``api`` (the Python API), ``cli`` and ``demo``.

``from mlops import run_pipeline, Outcome, Cluster, ...`` gives the public API of
:mod:`mlops.api`. Importing ``mlops`` loads nothing else: components import
:mod:`mlops.runtime` at module level and must stay cheap, so the API is loaded on
first use of one of its names.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: The names ``mlops`` re-exports from :mod:`mlops.api`.
API_NAMES = (
    "Cluster",
    "HoldoutEvaluation",
    "Outcome",
    "Schedule",
    "compile_pipeline",
    "delete_schedule",
    "list_schedules",
    "parse_cron",
    "pause_schedule",
    "resume_schedule",
    "run_pipeline",
    "schedule_pipeline",
)

__all__ = ["__version__", *API_NAMES]


def __getattr__(name: str) -> Any:
    # The package root is the API's facade, not a library layer: the library never
    # reaches the application level through it, and the import waits until a name
    # is used, so `import mlops.runtime` stays cheap.
    if name in API_NAMES:
        return getattr(importlib.import_module("mlops.api"), name)
    raise AttributeError(f"module 'mlops' has no attribute {name!r}")
