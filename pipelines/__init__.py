"""Pipeline definitions: they only wire components together.

``PIPELINES`` maps each pipeline's name to its function; ``compile.py`` and the
CLI use it.
"""

from pipelines.training import training

PIPELINES = {"training": training}

__all__ = ["PIPELINES", "training"]
