"""Real example data for the demo and tests: datasets that ship inside scikit-learn.

The Wisconsin breast-cancer set (569 biopsies, 30 measurements, benign or
malignant) is split once into the data a data scientist trains on and an
independent holdout that training never sees.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

TARGET = "diagnosis"


def breast_cancer_frame() -> pd.DataFrame:
    """The dataset with readable column names and string labels."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame[TARGET] = frame.pop("target").map(dict(enumerate(bunch.target_names)))
    return frame


def write_breast_cancer(
    out_dir: Path, holdout_share: float = 0.25, seed: int = 7
) -> tuple[Path, Path]:
    """Writes ``training.csv`` and ``holdout.csv`` (stratified, disjoint)."""
    from sklearn.model_selection import train_test_split

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = breast_cancer_frame()
    training, holdout = train_test_split(
        frame, test_size=holdout_share, random_state=seed, stratify=frame[TARGET]
    )
    paths = out_dir / "training.csv", out_dir / "holdout.csv"
    training.to_csv(paths[0], index=False)
    holdout.to_csv(paths[1], index=False)
    return paths


def large_tumour_traffic(frame: pd.DataFrame, quantile: float = 0.6) -> pd.DataFrame:
    """Real rows from a shifted population: only the larger tumours, features only.

    A screening programme that starts receiving referrals of larger tumours is
    a covariate shift built from real measurements, not noise: the size-related
    features drift, the relation between features and diagnosis does not.
    """
    shifted = frame[frame["mean_radius"] > frame["mean_radius"].quantile(quantile)]
    return shifted.drop(columns=[TARGET], errors="ignore").reset_index(drop=True)


def revised_grading_traffic(
    frame: pd.DataFrame, rows: int, seed: int, quantile: float = 0.5
) -> tuple[pd.DataFrame, pd.Series]:
    """Production requests after a change in what the label means, with their true labels.

    A revised grading standard: a biopsy whose ``mean_concave_points`` is above the
    training median is now graded malignant, whatever the other measurements say.
    The features are real rows (drawn with replacement, with 1% measurement noise
    so no two requests are the same); what changed is the relationship between the
    features and the label, which no drift test on the features can see.

    Returns:
        ``(features, labels)``.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    features = frame.drop(columns=[TARGET])
    drawn = frame.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    picked = drawn.drop(columns=[TARGET])
    noise = rng.normal(scale=0.01, size=picked.shape) * features.std().to_numpy()
    picked = (picked + noise).clip(lower=0)
    threshold = features["mean_concave_points"].quantile(quantile)
    labels = drawn[TARGET].where(picked["mean_concave_points"] <= threshold, "malignant")
    return picked, labels
