"""The first step of a training run: fetch the repository, read its ``mlops.yaml``, settle the parameters.

:func:`checkout` is what the ``fetch_repository`` component and the CLI's checks
before a run both call, so the values a run uses (target column, model name,
threshold, columns) are decided in one place: an explicit pipeline parameter wins,
else the repository's ``mlops.yaml``, else the default, and the record says which.
Nothing in the repository is imported or executed here: ``mlops.yaml`` is data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.core.errors import UsageError
from mlops.repository.config import RepoConfig, effective_parameters, load_config
from mlops.repository.source import FetchedRepo, fetch_repository

logger = logging.getLogger(__name__)

#: The recipe a run uses when it names none: the built-in one its ``estimator`` selects.
BUILTIN_SCHEME = "builtin:"


def recipe_uri_for(recipe_uri: str, estimator: str) -> str:
    """``recipe_uri``, or the built-in recipe named by the ``estimator`` shorthand when it is ''."""
    return recipe_uri.strip() or f"{BUILTIN_SCHEME}{estimator}"


@dataclass(frozen=True)
class Checkout:
    """A fetched repository, its configuration and the parameters a run uses.

    Attributes:
        fetched: Where the files are, where they came from, their tree digest.
        config: The parsed ``mlops.yaml``.
        values: ``target_column``, ``model_name``, ``min_accuracy``, ``drop_columns``,
            ``categorical_columns`` as the run uses them.
        sources: For each of those, ``parameter``, ``mlops.yaml`` or ``default``.
    """

    fetched: FetchedRepo
    config: RepoConfig
    values: dict[str, Any]
    sources: dict[str, str]

    def record(self) -> dict[str, Any]:
        """What the model's ``metadata.json``, the outcome and a rejection record keep."""
        return {
            **self.fetched.source.to_dict(),
            "uri": self.fetched.source.pinned_uri(),
            "tree_digest": self.fetched.tree_digest,
            "parameters": {
                key: {"value": self.values[key], "source": self.sources[key]} for key in self.values
            },
        }


def checkout(
    recipe_uri: str, dest: Path, overrides: dict[str, Any], estimator: str = "logistic_regression"
) -> Checkout:
    """Fetches the repository into ``dest`` and settles the run's parameters.

    Args:
        recipe_uri: Where the repository is ('' = the built-in recipe ``estimator`` names).
        dest: An empty folder for the files.
        overrides: The run's explicit parameters (``target_column``, ``model_name``,
            ``min_accuracy`` (-1 = not given), ``drop_columns``, ``categorical_columns``).
        estimator: The built-in recipe used when ``recipe_uri`` is ''.

    Raises:
        UsageError: the URI, the git ref or ``mlops.yaml`` is bad, or a required value
            (target column, model name) is given neither as a parameter nor in ``mlops.yaml``.
    """
    fetched = fetch_repository(recipe_uri_for(recipe_uri, estimator), dest)
    try:
        config = load_config(fetched.path)
    except UsageError as exc:
        # Name the repository as the user gave it, not the folder it was fetched into.
        message = str(exc).replace(str(fetched.path), fetched.source.pinned_uri())
        raise UsageError(f"{fetched.source.pinned_uri()}: {message}") from None
    values, sources = effective_parameters(config, overrides)
    logger.info(
        "repository %s (tree %s): %s",
        fetched.source.pinned_uri(),
        fetched.tree_digest,
        ", ".join(f"{k}={values[k]!r} ({sources[k]})" for k in values),
    )
    return Checkout(fetched, config, values, sources)
