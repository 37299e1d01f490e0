"""Trust checks for models and their supply chain.

Submodules (imported lazily by callers, so importing ``mlops.trust`` stays cheap):

* :mod:`mlops.trust.signing` -- ECDSA P-256 signing and verification of model
  directories with ``model-signing``.
* :mod:`mlops.trust.audit` -- dependency vulnerability audit (pip-audit with an
  offline OSV advisory database), failing closed.
* :mod:`mlops.trust.scan` -- static scan of pickle / joblib / skops files.
* :mod:`mlops.trust.quality` -- ruff + bandit code-quality gate.
"""

from __future__ import annotations

__all__ = ["audit", "quality", "scan", "signing"]
