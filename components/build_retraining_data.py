"""KFP component: the retraining and holdout tables from labelled production rows."""

from typing import NamedTuple

from kfp import dsl

from mlops.runtime import COMPONENT_KWARGS


@dsl.component(**COMPONENT_KWARGS)
def build_retraining_data(
    model_name: str,
    trigger: str,
    retrain_window_hours: float = 168.0,
    holdout_hours: float = 24.0,
    base_data_uri: str = "",
    holdout_uri: str = "",
    min_train_rows: int = 100,
    min_holdout_rows: int = 30,
) -> NamedTuple(  # type: ignore[valid-type]
    "RetrainingData",
    [("enough", bool), ("train_uri", str), ("holdout_uri", str), ("trigger", str)],
):
    """Joins the inference logs of the window with their feedback labels and splits them in time.

    The holdout is the newest labelled slice, strictly later than every training
    row and disjoint by request id, unless ``holdout_uri`` names a fixed one.

    Args:
        model_name: The deployed model.
        trigger: JSON of why retraining was decided (extended with the data windows).
        retrain_window_hours: Hours of labelled production rows to train on, > 0.
        holdout_hours: The newest hours that form the holdout, shorter than the window.
        base_data_uri: A base table unioned with the labelled rows ('' = none).
        holdout_uri: A fixed holdout table ('' = the newest labelled slice).
        min_train_rows: Fewest training rows worth retraining (0 = the base table alone may do).
        min_holdout_rows: Fewest holdout rows worth a verdict.

    Returns:
        enough: False means "not enough ground truth" (nothing retrained). train_uri,
        holdout_uri: The tables written to the store. trigger: The trigger with the
        windows and counts used.
    """
    import json
    import logging

    from mlops.core.store import ObjectStore
    from mlops.monitoring.check import load_deployed_model
    from mlops.monitoring.retraining import build_retraining_set

    logging.basicConfig(level=logging.INFO)
    store = ObjectStore.from_env()
    deployed = load_deployed_model(store, model_name)
    result = build_retraining_set(
        store,
        model_name,
        metadata=deployed.metadata,
        retrain_window_hours=retrain_window_hours,
        holdout_hours=holdout_hours,
        base_data_uri=base_data_uri,
        holdout_uri=holdout_uri,
        min_train_rows=min_train_rows,
        min_holdout_rows=min_holdout_rows,
    )
    record = {**json.loads(trigger), "retraining": result.summary()}
    return (
        result.enough,
        result.train_uri,
        result.holdout_uri,
        json.dumps(record, sort_keys=True, default=str),
    )
