"""Pipeline definitions: they only wire components together.

``PIPELINES`` maps each pipeline's name to its function; ``compile.py`` and the
CLI use it.
"""

from pipelines.canary import canary_analysis
from pipelines.monitoring import monitoring
from pipelines.training import training

PIPELINES = {"training": training, "monitoring": monitoring, "canary-analysis": canary_analysis}

__all__ = ["PIPELINES", "canary_analysis", "monitoring", "training"]
