"""kfp-mlops: the library behind the pipelines, the components, the model server and the CLI.

Layers, lowest first (each imports only the ones before it; see ARCHITECTURE.md):
``core`` (errors, settings, store, data), ``model`` (feature schema, training,
model folder, registry, holdout), ``trust`` (audit, scan, quality, signing),
``deployment`` (desired state, InferenceServices), ``monitoring`` (inference-log
format, drift, metrics), ``release`` (gates, decision, publish), ``runs`` (local
runs) and, on top, the applications ``cli`` and ``demo``.

Importing ``mlops`` loads nothing else: components import :mod:`mlops.runtime`
at module level and must stay cheap.
"""

__version__ = "0.1.0"
