"""The champion/challenger gate (``no_regression``): the candidate against the deployed model.

The champion is real: a model trained in-process, released (``release.json``) and
signed, published to the test store and recorded as the deployed stable version.
The McNemar p-value is checked against scipy's binomial distribution and
statsmodels' exact McNemar test, both computed independently of the gate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom
from sklearn.dummy import DummyClassifier
from sklearn.metrics import accuracy_score, f1_score

from mlops.core.errors import UsageError, VerificationError
from mlops.deployment.state import Release, deploy
from mlops.model.schema import FeatureSchema
from mlops.model.training import build_pipeline
from mlops.release.champion import (
    GATE,
    Comparison,
    mcnemar_exact_p,
    no_regression_gate,
    verdict,
)
from tests.serving_helpers import NUMERIC, build_model_dir, flip_byte, iris_frame, publish
from tests.training_helpers import make_keypair

MODEL = "iris"


# -- McNemar ------------------------------------------------------------------------------------
def _paired(only_candidate: int, only_champion: int, both_right: int = 7, both_wrong: int = 3):
    """Paired correctness with the given discordant counts (concordant rows do not matter)."""
    candidate = [True] * only_candidate + [False] * only_champion
    champion = [False] * only_candidate + [True] * only_champion
    candidate += [True] * both_right + [False] * both_wrong
    champion += [True] * both_right + [False] * both_wrong
    order = np.random.default_rng(0).permutation(len(candidate))
    return np.array(candidate)[order], np.array(champion)[order]


def _reference_p(b: int, c: int) -> float:
    """Two-sided exact McNemar: twice the smaller binomial tail, at most 1."""
    if b + c == 0:
        return 1.0
    return min(1.0, 2 * float(binom.cdf(min(b, c), b + c, 0.5)))


@pytest.mark.parametrize(
    "b, c", [(1, 9), (9, 1), (0, 6), (5, 5), (12, 3), (0, 1), (40, 25), (100, 0)]
)
def test_mcnemar_exact_p_matches_scipy_and_statsmodels(b: int, c: int) -> None:
    from statsmodels.stats.contingency_tables import mcnemar

    candidate, champion = _paired(b, c)
    p = mcnemar_exact_p(candidate, champion)
    assert p == pytest.approx(_reference_p(b, c), rel=1e-12)
    table = [[7, b], [c, 3]]  # rows: candidate right/wrong; columns: champion right/wrong
    assert p == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-9)


def test_mcnemar_exact_p_known_values() -> None:
    assert mcnemar_exact_p(*_paired(1, 9)) == pytest.approx(22 / 1024)  # 2 * (1 + 10) / 2**10
    assert mcnemar_exact_p(*_paired(0, 6)) == pytest.approx(2 / 64)
    assert mcnemar_exact_p(*_paired(3, 3)) == 1.0


def test_mcnemar_without_disagreement_is_one() -> None:
    same = np.array([True, False, True, True, False])
    assert mcnemar_exact_p(same, same.copy()) == 1.0
    assert mcnemar_exact_p(np.array([], dtype=bool), np.array([], dtype=bool)) == 1.0


# -- verdict ------------------------------------------------------------------------------------
def _comparison(candidate: float, champion: float, f1=(0.5, 0.5)) -> Comparison:
    return Comparison(
        "v1",
        {"accuracy": candidate, "f1_macro": f1[0]},
        {"accuracy": champion, "f1_macro": f1[1]},
        0.03125,
    )


def test_verdict_without_a_champion_is_the_first_release() -> None:
    result = verdict(None, 0.0)
    assert (result.name, result.passed) == (GATE, True)
    assert "first release" in result.detail and result.metrics == {}


def test_verdict_pass_and_fail_name_both_scores() -> None:
    worse = verdict(_comparison(0.75, 0.875), 0.0)
    assert not worse.passed
    assert "candidate accuracy 0.7500 < champion v1 accuracy 0.8750" in worse.detail
    assert "McNemar exact p=0.03125" in worse.detail
    assert worse.metrics == {
        "candidate_accuracy": 0.75,
        "candidate_f1_macro": 0.5,
        "champion_accuracy": 0.875,
        "champion_f1_macro": 0.5,
        "mcnemar_p_value": 0.03125,
    }
    better = verdict(_comparison(0.875, 0.75), 0.0)
    assert better.passed and "candidate accuracy 0.8750 >= champion v1" in better.detail
    # Exactly at the allowance passes; a hair below it fails.
    assert verdict(_comparison(0.75, 0.875), 0.125).passed
    assert not verdict(_comparison(0.75, 0.875), 0.12).passed


def test_verdict_on_macro_f1_ignores_accuracy() -> None:
    comparison = _comparison(0.9, 0.8, f1=(0.5, 0.75))
    assert verdict(comparison, 0.0, "accuracy").passed
    result = verdict(comparison, 0.0, "f1_macro")
    assert not result.passed
    assert "candidate f1_macro 0.5000 < champion v1 f1_macro 0.7500" in result.detail


@pytest.mark.parametrize("max_regression", [-0.01, 1.5, float("nan"), "a lot"])
def test_verdict_refuses_a_bad_allowance(max_regression) -> None:
    with pytest.raises(UsageError, match="max_regression"):
        verdict(_comparison(0.9, 0.8), max_regression)


def test_verdict_refuses_an_unknown_metric() -> None:
    with pytest.raises(UsageError, match="champion_metric must be one of accuracy, f1_macro"):
        verdict(_comparison(0.9, 0.8), 0.0, "roc_auc")


# -- the gate against a deployed champion -------------------------------------------------------
@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return make_keypair(tmp_path / "keys")


@pytest.fixture
def champion(store, keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Version v1 released, signed, published and deployed as the stable version: its model."""
    monkeypatch.delenv("MLOPS_MIN_ACCURACY", raising=False)
    model_dir, model, _ = build_model_dir(tmp_path / "v1", keys[0], model_name=MODEL)
    published = publish(store, model_dir, MODEL, "v1")
    deploy(store, MODEL, Release("v1", published.uri))
    return model


@pytest.fixture
def holdout() -> pd.DataFrame:
    features, target = iris_frame(seed=3)
    return features.assign(species=target)


def _schema(holdout: pd.DataFrame) -> FeatureSchema:
    return FeatureSchema.from_frame(holdout.drop(columns="species"))


def _gate(candidate, holdout, store, keys, schema=None, **kwargs):
    return no_regression_gate(
        candidate,
        schema or _schema(holdout),
        holdout,
        "species",
        MODEL,
        store=store,
        public_key=keys[1],
        **kwargs,
    )


def _shuffled_candidate(holdout: pd.DataFrame, share: float):
    """A candidate trained with ``share`` of its labels shuffled: worse than the champion."""
    features, target = holdout.drop(columns="species"), holdout["species"].to_numpy().copy()
    rng = np.random.default_rng(1)
    noisy = rng.random(len(target)) < share
    target[noisy] = rng.permutation(target[noisy])
    return build_pipeline(_schema(holdout), "logistic_regression", 0).fit(features, target)


def test_without_a_deployed_champion_the_gate_passes_as_first_release(store, keys, holdout) -> None:
    result = _gate(_shuffled_candidate(holdout, 0.9), holdout, store, keys)
    assert result.passed and "first release" in result.detail


def test_a_worse_candidate_fails_with_both_accuracies(store, keys, champion, holdout) -> None:
    candidate = _shuffled_candidate(holdout, 0.9)
    truth = holdout["species"]
    features = holdout.drop(columns="species")
    ours = accuracy_score(truth, candidate.predict(features))
    theirs = accuracy_score(truth, champion.predict(features))
    assert ours < theirs - 0.05, "the fixture must make a clearly worse candidate"

    result = _gate(candidate, holdout, store, keys)
    assert (result.name, result.passed) == (GATE, False)
    assert f"candidate accuracy {ours:.4f} < champion v1 accuracy {theirs:.4f}" in result.detail
    assert result.metrics["candidate_accuracy"] == pytest.approx(ours)
    assert result.metrics["champion_accuracy"] == pytest.approx(theirs)
    assert result.metrics["champion_f1_macro"] == pytest.approx(
        f1_score(truth, champion.predict(features), average="macro")
    )
    expected_p = mcnemar_exact_p(
        candidate.predict(features) == truth.to_numpy(),
        champion.predict(features) == truth.to_numpy(),
    )
    assert result.metrics["mcnemar_p_value"] == pytest.approx(expected_p)
    assert expected_p < 0.05, "so clear a regression is significant"

    # The allowance: a gap within max_regression passes, one beyond it fails.
    gap = theirs - ours
    assert _gate(candidate, holdout, store, keys, max_regression=gap + 0.01).passed
    assert not _gate(candidate, holdout, store, keys, max_regression=gap - 0.01).passed


def test_an_equal_candidate_passes(store, keys, champion, holdout) -> None:
    result = _gate(champion, holdout, store, keys)
    assert result.passed
    assert result.metrics["candidate_accuracy"] == result.metrics["champion_accuracy"]
    assert result.metrics["mcnemar_p_value"] == 1.0
    assert "candidate accuracy" in result.detail and ">= champion v1" in result.detail


def test_the_champion_is_scored_on_its_own_features(store, keys, champion, holdout) -> None:
    # A candidate that dropped the categorical column: each model gets the columns it knows.
    numeric = holdout[[*NUMERIC, "species"]]
    schema = FeatureSchema.from_frame(numeric.drop(columns="species"))
    candidate = build_pipeline(schema, "logistic_regression", 0).fit(
        numeric.drop(columns="species"), numeric["species"]
    )
    result = _gate(candidate, holdout, store, keys, schema=schema)
    theirs = accuracy_score(holdout["species"], champion.predict(holdout.drop(columns="species")))
    assert result.metrics["champion_accuracy"] == pytest.approx(theirs)


def test_champion_metric_f1_macro_catches_what_accuracy_hides(
    store, keys, champion, holdout
) -> None:
    # An imbalanced holdout: always predicting the majority class keeps accuracy high,
    # but macro-F1 (every class counts alike) falls.
    imbalanced = pd.concat(
        [holdout[holdout.species == 0], holdout[holdout.species != 0].groupby("species").head(3)]
    ).reset_index(drop=True)
    features = imbalanced.drop(columns="species")
    majority = DummyClassifier(strategy="most_frequent").fit(features, imbalanced["species"])
    by_accuracy = _gate(majority, imbalanced, store, keys, max_regression=0.15)
    by_f1 = _gate(majority, imbalanced, store, keys, max_regression=0.15, metric="f1_macro")
    assert by_accuracy.passed, by_accuracy.detail
    assert not by_f1.passed
    assert "candidate f1_macro" in by_f1.detail and "champion v1 f1_macro" in by_f1.detail
    assert by_f1.metrics["candidate_f1_macro"] == pytest.approx(
        f1_score(imbalanced["species"], majority.predict(features), average="macro")
    )


def test_a_tampered_champion_fails_closed(store, keys, champion, holdout, tmp_path) -> None:
    key = "models/iris/v1/model.skops"
    local = tmp_path / "model.skops"
    local.write_bytes(store.get_bytes(key))
    flip_byte(local)
    store.put_bytes(key, local.read_bytes())
    with pytest.raises(VerificationError, match="changed since signing: model.skops"):
        _gate(champion, holdout, store, keys)


def test_a_champion_signed_by_another_key_fails_closed(
    store, keys, champion, holdout, tmp_path
) -> None:
    _, other_public = make_keypair(tmp_path / "other-keys")
    with pytest.raises(VerificationError, match="wrong key"):
        _gate(champion, holdout, store, (keys[0], other_public))


def test_a_deployed_champion_that_was_never_released_fails_closed(
    store, keys, holdout, tmp_path
) -> None:
    from mlops.trust.evidence import RELEASE_FILE
    from mlops.trust.signing import sign_model_dir

    model_dir, model, _ = build_model_dir(tmp_path / "v1", keys[0], model_name=MODEL)
    (model_dir / RELEASE_FILE).unlink()
    sign_model_dir(model_dir, keys[0])  # signed, but without evidence of a release
    deploy(store, MODEL, Release("v1", publish(store, model_dir, MODEL, "v1").uri))
    with pytest.raises(VerificationError, match="never released"):
        _gate(model, holdout, store, keys)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_regression": -0.1}, "max_regression"),
        ({"max_regression": 2.0}, "max_regression"),
        ({"metric": "precision"}, "champion_metric must be one of"),
    ],
)
def test_bad_arguments_are_usage_errors(store, keys, holdout, kwargs, match) -> None:
    # Refused before anything is fetched: not even a first release passes with them.
    with pytest.raises(UsageError, match=match):
        _gate(_shuffled_candidate(holdout, 0.0), holdout, store, keys, **kwargs)
