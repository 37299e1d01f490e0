"""The champion/challenger gate (``no_regression``): the candidate against production on one holdout.

The model in production (the deployed stable version of the same name) is
fetched, its signature and release verified like any served model, and scored on
the very holdout rows the candidate was scored on. The candidate passes when its
score is at least the champion's minus ``max_regression``. Macro-F1 of both and an
exact McNemar test on the paired predictions (did the two models err on different
rows more often than chance?) are reported with the verdict. Without a champion
(the first release) the gate passes and says so.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops.core.errors import UsageError
from mlops.core.rules import check_fraction
from mlops.release.decision import GateResult

logger = logging.getLogger(__name__)

GATE = "no_regression"
CHAMPION_METRICS = ("accuracy", "f1_macro")


def check_champion_metric(metric: str) -> str:
    """``metric`` when it is one of :data:`CHAMPION_METRICS`; else a UsageError listing them."""
    if metric not in CHAMPION_METRICS:
        raise UsageError(
            f"champion_metric must be one of {', '.join(CHAMPION_METRICS)}, got {metric!r}"
        )
    return metric


def mcnemar_exact_p(candidate_right: np.ndarray, champion_right: np.ndarray) -> float:
    """Two-sided exact McNemar p-value on paired correctness (1.0 when the models never disagree)."""
    from scipy.stats import binomtest

    only_candidate = int(np.sum(candidate_right & ~champion_right))
    only_champion = int(np.sum(~candidate_right & champion_right))
    disagreements = only_candidate + only_champion
    if disagreements == 0:
        return 1.0
    return float(binomtest(only_candidate, disagreements, 0.5).pvalue)


@dataclass(frozen=True)
class Comparison:
    """Candidate and champion on the same rows."""

    champion_version: str
    candidate: dict[str, float]
    champion: dict[str, float]
    p_value: float

    def metrics(self) -> dict[str, float]:
        """As flat ``Metrics`` entries (``champion_accuracy``, ``candidate_f1_macro``, ...)."""
        out = {f"candidate_{k}": v for k, v in self.candidate.items()}
        out.update({f"champion_{k}": v for k, v in self.champion.items()})
        out["mcnemar_p_value"] = self.p_value
        return out


def _scores(truth: pd.Series, predicted: np.ndarray, labels: list[Any]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "f1_macro": float(
            f1_score(truth, predicted, average="macro", labels=labels, zero_division=0)
        ),
    }


def compare(
    candidate: Any,
    champion: Any,
    champion_version: str,
    features_candidate: pd.DataFrame,
    features_champion: pd.DataFrame,
    truth: pd.Series,
) -> Comparison:
    """Scores both models on the same rows (each on its own coerced features)."""
    labels = sorted(set(truth.unique()) | set(candidate.classes_), key=str)
    predicted_candidate = candidate.predict(features_candidate)
    predicted_champion = champion.predict(features_champion)
    expected = truth.to_numpy()
    return Comparison(
        champion_version,
        _scores(truth, predicted_candidate, labels),
        _scores(truth, predicted_champion, labels),
        mcnemar_exact_p(predicted_candidate == expected, predicted_champion == expected),
    )


def verdict(
    comparison: Comparison | None, max_regression: float, metric: str = "accuracy"
) -> GateResult:
    """The ``no_regression`` gate for a comparison (None: there is no champion)."""
    max_regression = check_fraction("max_regression", max_regression, inclusive=True)
    metric = check_champion_metric(metric)
    if comparison is None:
        return GateResult(GATE, True, "first release: no champion in production to compare with")
    ours, theirs = comparison.candidate[metric], comparison.champion[metric]
    passed = ours >= theirs - max_regression
    detail = (
        f"candidate {metric} {ours:.4f} {'>=' if passed else '<'} champion "
        f"{comparison.champion_version} {metric} {theirs:.4f} - max_regression "
        f"{max_regression:.4f} (macro-F1 {comparison.candidate['f1_macro']:.4f} vs "
        f"{comparison.champion['f1_macro']:.4f}; McNemar exact p={comparison.p_value:.4g})"
    )
    return GateResult(GATE, passed, detail, comparison.metrics())


def load_champion(
    store: Any, model_name: str, public_key: Path, work: Path
) -> tuple[Any, Any, str] | None:
    """The deployed stable version of ``model_name``: (model, schema, version), or None.

    It is verified as serving verifies it (signature, identity, release evidence)
    before it is loaded; a champion that does not verify fails the step (fail closed).
    """
    from mlops.deployment.state import read_state
    from mlops.model.modelio import load_model
    from mlops.model.packaging import MODEL_FILE, read_metadata
    from mlops.model.registry import fetch_model, parse_model_uri
    from mlops.model.schema import FeatureSchema
    from mlops.trust.evidence import check_release
    from mlops.trust.signing import verify_identity, verify_model_dir

    state = read_state(store, model_name)
    if state is None or state.stable is None:
        return None
    _, name, version = parse_model_uri(state.stable.model_uri)
    model_dir = fetch_model(store, state.stable.model_uri, work / "champion")
    verify_model_dir(model_dir, public_key)
    verify_identity(model_dir, name, version)
    # The champion is the bar to beat, not a model being admitted: a policy raised
    # since its release must not block the candidate meant to replace it.
    check_release(model_dir, name, version, floor=0.0)
    metadata = read_metadata(model_dir)
    return load_model(model_dir / MODEL_FILE), FeatureSchema.from_metadata(metadata), version


def no_regression_gate(
    candidate: Any,
    candidate_schema: Any,
    holdout: pd.DataFrame,
    target: str,
    model_name: str,
    *,
    max_regression: float = 0.0,
    metric: str = "accuracy",
    store: Any = None,
    public_key: Path | None = None,
) -> GateResult:
    """Scores the production champion on the candidate's holdout and decides ``no_regression``.

    Args:
        candidate: The fitted candidate.
        candidate_schema: Its feature schema.
        holdout: The labelled holdout (as read).
        target: Label column.
        model_name: The model whose deployed stable version is the champion.
        max_regression: How much lower than the champion's the candidate's score may be.
        metric: ``accuracy`` or ``f1_macro``.
        store: The object store (default: from the environment).
        public_key: Key the champion is verified with (default: the configured one).
    """
    from mlops.core import settings
    from mlops.core.store import ObjectStore
    from mlops.model.schema import coerce

    check_fraction("max_regression", max_regression, inclusive=True)
    check_champion_metric(metric)
    store = store or ObjectStore.from_env()
    public_key = public_key or settings.signing_key_paths()[1]
    with tempfile.TemporaryDirectory(prefix="mlops-champion-") as work:
        loaded = load_champion(store, model_name, Path(public_key), Path(work))
    if loaded is None:
        return verdict(None, max_regression, metric)
    champion, champion_schema, version = loaded
    comparison = compare(
        candidate,
        champion,
        version,
        coerce(holdout, candidate_schema, source="holdout"),
        coerce(holdout, champion_schema, source="holdout (champion's features)"),
        holdout[target],
    )
    result = verdict(comparison, max_regression, metric)
    logger.info("no_regression gate: %s", result.detail)
    return result
