"""The model's input contract: its ordered features, their kinds, and the one conversion to model input.

Column kinds are decided once, at training (:meth:`FeatureSchema.from_frame`), and
stored in the model's ``metadata.json`` (:meth:`FeatureSchema.to_metadata`). Every
consumer reads them back from there (:meth:`FeatureSchema.from_metadata`): serving
validation, explanations, the drift step and ``mlops drift --model``. Only a drift
check between two plain tables, with no model, infers the kinds, with the same
:meth:`FeatureSchema.from_frame`.

On disk (``metadata.json``), unchanged since the first published model::

    "feature_names": ["age", "colour"],
    "features": [
        {"name": "age", "kind": "numeric", "min": 18.0, "max": 90.0},
        {"name": "colour", "kind": "categorical", "categories": ["blue", "red"]}
    ]

Model input (:func:`coerce` for a table, :func:`coerce_column` for one feature):
numeric features are float64 with NaN for a missing value (the model's imputer
fills it); categorical features are Python ``str`` objects with NaN for a missing
value, numbers and booleans turned into their ``str`` form (``True`` -> ``"True"``).
Training fits on exactly this, and serving, explanations and drift see the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from mlops.core.errors import DataError

__all__ = [
    "CATEGORICAL",
    "KINDS",
    "NUMERIC",
    "Feature",
    "FeatureSchema",
    "coerce",
    "coerce_column",
    "infer_kind",
]

NUMERIC = "numeric"
CATEGORICAL = "categorical"
KINDS = (NUMERIC, CATEGORICAL)


def infer_kind(column: pd.Series) -> str:
    """The kind of a training column: categorical when bool or not numeric (object, string, category)."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        return CATEGORICAL
    return NUMERIC


@dataclass(frozen=True)
class Feature:
    """One input feature of a model.

    Attributes:
        name: Column name.
        kind: :data:`NUMERIC` or :data:`CATEGORICAL`.
        min: Smallest finite training value (numeric; None when there was none).
        max: Largest finite training value (numeric; None when there was none).
        categories: Categories seen in training (categorical).
    """

    name: str
    kind: str
    min: float | None = None
    max: float | None = None
    categories: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"feature {self.name!r} has unknown kind {self.kind!r}")
        # Any iterable of categories is accepted; stored frozen, for membership tests.
        object.__setattr__(self, "categories", frozenset(self.categories))

    @classmethod
    def describe(cls, name: str, column: pd.Series, kind: str) -> Feature:
        """The feature ``column`` makes: finite range of a numeric one, categories of a categorical one."""
        if kind == CATEGORICAL:
            return cls(name, CATEGORICAL, categories=frozenset(map(str, column.dropna().unique())))
        values = _as_numbers(column)
        finite = np.isfinite(values)
        if not finite.any():
            return cls(name, NUMERIC)
        # Masked reductions: no copy of the finite values (drift infers schemas of big tables).
        low = values.min(where=finite, initial=np.inf)
        high = values.max(where=finite, initial=-np.inf)
        return cls(name, NUMERIC, min=float(low), max=float(high))

    def to_metadata(self) -> dict[str, Any]:
        """The ``metadata.json`` entry: ``min``/``max`` for numeric, sorted ``categories`` for categorical."""
        if self.kind == CATEGORICAL:
            return {"name": self.name, "kind": CATEGORICAL, "categories": sorted(self.categories)}
        return {"name": self.name, "kind": NUMERIC, "min": self.min, "max": self.max}

    @classmethod
    def from_metadata(cls, entry: Mapping[str, Any]) -> Feature:
        """Reads one ``metadata.json`` entry (extra keys ignored).

        Raises:
            ValueError: The entry has no name or an unknown kind.
        """
        if "name" not in entry:
            raise ValueError(f"feature entry {dict(entry)!r} has no name")
        return cls(
            name=str(entry["name"]),
            kind=entry.get("kind"),  # type: ignore[arg-type]  # checked in __post_init__
            min=_optional_float(entry.get("min")),
            max=_optional_float(entry.get("max")),
            categories=frozenset(str(c) for c in entry.get("categories") or ()),
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class FeatureSchema:
    """The ordered input features of a model; immutable.

    Args:
        features: The features in input order (at least one, names unique).

    Attributes:
        features: The features, in input order.
        names: Their names, in input order.
        name_set: The names as a set.
        index: Name -> position.
        columns: The names as a ``pandas.Index`` (built once: pandas re-validates a
            plain list of names on every DataFrame).
        numeric_positions: Positions of the numeric features.
        numeric_min: Their training minimum (-inf when unknown), for vectorised range checks.
        numeric_max: Their training maximum (+inf when unknown).
    """

    features: tuple[Feature, ...]
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    name_set: frozenset[str] = field(init=False, repr=False, compare=False)
    index: Mapping[str, int] = field(init=False, repr=False, compare=False)
    columns: pd.Index = field(init=False, repr=False, compare=False)
    numeric_positions: np.ndarray = field(init=False, repr=False, compare=False)
    numeric_min: np.ndarray = field(init=False, repr=False, compare=False)
    numeric_max: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        features = tuple(self.features)
        if not features:
            raise ValueError("a model needs at least one feature")
        names = tuple(f.name for f in features)
        if len(set(names)) != len(names):
            raise ValueError("duplicate feature names in metadata")
        numeric = [i for i, f in enumerate(features) if f.kind == NUMERIC]
        derived = {
            "features": features,
            "names": names,
            "name_set": frozenset(names),
            "index": MappingProxyType({name: i for i, name in enumerate(names)}),
            "columns": pd.Index(names),
            "numeric_positions": _read_only(np.array(numeric, dtype=np.intp)),
            "numeric_min": _read_only(
                np.array([_bound(features[i].min, -np.inf) for i in numeric], dtype=np.float64)
            ),
            "numeric_max": _read_only(
                np.array([_bound(features[i].max, np.inf) for i in numeric], dtype=np.float64)
            ),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.features)

    @property
    def numeric_names(self) -> list[str]:
        """Names of the numeric features, in input order."""
        return [f.name for f in self.features if f.kind == NUMERIC]

    @property
    def categorical_names(self) -> list[str]:
        """Names of the categorical features, in input order."""
        return [f.name for f in self.features if f.kind == CATEGORICAL]

    @property
    def all_numeric(self) -> bool:
        """Whether every feature is numeric (the model input is then one float block)."""
        return len(self.numeric_positions) == len(self.features)

    def feature(self, name: str) -> Feature:
        """The feature called ``name`` (KeyError when there is none)."""
        return self.features[self.index[name]]

    def select(self, names: Iterable[str]) -> FeatureSchema:
        """The schema of the named features only, in the order given."""
        return FeatureSchema(tuple(self.feature(name) for name in names))

    # -- construction and metadata.json --------------------------------------------
    @classmethod
    def from_frame(cls, frame: pd.DataFrame, categorical: Iterable[str] = ()) -> FeatureSchema:
        """Decides each column's kind (:func:`infer_kind`) and records its range or categories.

        Args:
            frame: The features, in input order (training data without the target).
            categorical: Columns that are categorical whatever their dtype.
        """
        declared = {categorical} if isinstance(categorical, str) else set(categorical)
        return cls(
            tuple(
                Feature.describe(
                    str(name),
                    frame[name],
                    CATEGORICAL if name in declared else infer_kind(frame[name]),
                )
                for name in frame.columns
            )
        )

    def to_metadata(self) -> dict[str, Any]:
        """The ``feature_names`` and ``features`` entries of ``metadata.json``."""
        return {
            "feature_names": list(self.names),
            "features": [f.to_metadata() for f in self.features],
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> FeatureSchema:
        """Reads ``metadata["features"]``, ordered by ``metadata["feature_names"]`` when given.

        Raises:
            ValueError: No features, an unknown kind, or names that disagree.
        """
        entries = metadata.get("features")
        if not isinstance(entries, list) or not entries:
            raise ValueError("metadata.json has no 'features' list")
        by_name = {}
        for entry in entries:
            feature = Feature.from_metadata(entry)
            by_name[feature.name] = feature
        order = [str(n) for n in metadata.get("feature_names") or by_name]
        if any(n not in by_name for n in order) or len(order) != len(by_name):
            raise ValueError("metadata 'feature_names' and 'features' disagree")
        return cls(tuple(by_name[n] for n in order))

    # -- model input -----------------------------------------------------------------
    def ordered(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with exactly the schema's columns in schema order (as is when it has them)."""
        if frame.columns is self.columns or frame.columns.tolist() == list(self.names):
            return frame
        return frame[self.columns]

    def frame(self, columns: Sequence[np.ndarray], index: pd.Index | None = None) -> pd.DataFrame:
        """The model-input DataFrame of already coerced columns (one per feature, schema order)."""
        if self.all_numeric:
            # One float block: ~10x cheaper than a DataFrame built from a dict of columns.
            return pd.DataFrame(np.column_stack(columns), columns=self.columns, index=index)
        data = dict(zip(self.names, columns, strict=True))
        return pd.DataFrame(data, columns=self.columns, index=index)


def _bound(value: float | None, default: float) -> float:
    return default if value is None else value


# -- the one coercion ------------------------------------------------------------------


def coerce_column(feature: Feature, values: pd.Series | np.ndarray | Sequence[Any]) -> np.ndarray:
    """One feature's values as model input: float64 (numeric) or ``str`` objects (categorical).

    Missing values (None, NaN, ``pd.NA``) become NaN. Numeric text ("3.5") is parsed.

    Raises:
        ValueError: A numeric feature holds a value that is not a number.
        TypeError: A numeric feature holds a value of a type numbers cannot come from.
    """
    if feature.kind == NUMERIC:
        return _as_numbers(values)
    return _as_categories(values)


def _as_numbers(values: pd.Series | np.ndarray | Sequence[Any]) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        return values  # already model input: no copy on the request path
    if isinstance(values, pd.Series):
        if not pd.api.types.is_numeric_dtype(values.dtype):
            values = pd.to_numeric(values)  # text and objects: parsed, or ValueError
        if isinstance(values.dtype, np.dtype):
            return np.asarray(values, dtype=np.float64)
        return values.to_numpy(dtype=np.float64, na_value=np.nan)  # nullable dtypes: pd.NA
    # Plain values (validated request columns): numbers and None (-> NaN).
    return np.asarray(values, dtype=np.float64)


def _as_categories(values: pd.Series | np.ndarray | Sequence[Any]) -> np.ndarray:
    items = values.tolist() if isinstance(values, (pd.Series, np.ndarray)) else list(values)
    if not all(type(value) is str for value in items):
        missing = pd.isna(np.asarray(items, dtype=object)).tolist()
        items = [
            np.nan if gone else (value if type(value) is str else str(value))
            for value, gone in zip(items, missing, strict=True)
        ]
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def coerce(frame: pd.DataFrame, schema: FeatureSchema, source: str = "data") -> pd.DataFrame:
    """The model input of a table: the schema's columns, in schema order, coerced (:func:`coerce_column`).

    Used by training (fit and evaluation), explanations (the reference sample)
    and drift (reference and current data); serving validation checks request
    values first, then converts them with :func:`coerce_column`.

    Args:
        frame: Any table holding the schema's columns (others are left out).
        schema: The model's features.
        source: What ``frame`` is, for error messages ("holdout", "current data").

    Raises:
        DataError: A feature column is missing, or a numeric one holds non-numbers.
    """
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise DataError(f"{source} lacks feature column(s) the model needs: {', '.join(missing)}")
    columns = []
    for feature in schema.features:
        try:
            columns.append(coerce_column(feature, frame[feature.name]))
        except (TypeError, ValueError) as exc:
            raise DataError(f"column {feature.name!r} in {source} is not numeric: {exc}") from exc
    return schema.frame(columns, index=frame.index)
