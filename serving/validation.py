"""Strict request validation: every problem is a 400 naming what is wrong, before the model runs.

The feature schema comes from the model's ``metadata.json`` (``features``: name,
kind numeric|categorical, numeric ``min``/``max``, categorical ``categories``).

Rules (V1 ``{"instances": [...]}`` and V2 tensors alike):

* ``instances`` must be a non-empty list; each row is either a list of values in
  schema order (width must equal the number of features) or an object keyed by
  feature name (no missing, no extra keys). All rows use the same style.
* Numeric features take JSON numbers. ``null`` means "missing" and is imputed
  by the model's own imputer (as in training). Strings (``"3.5"``, ``"NaN"``),
  booleans, lists and objects are rejected; so are NaN and +/-infinity in any
  form (JSON has no NaN literal, and a V2 ``FP32``/``FP64`` NaN is rejected too:
  send ``null`` through V1 to ask for imputation).
* Categorical features take strings; JSON numbers and booleans are turned into
  their string form exactly as training does (``astype(str)``); ``null`` means
  missing (imputed with the training mode). Lists and objects are rejected.
* V2: either one input per feature (named after it, shape ``[n]`` or ``[n, 1]``,
  all the same ``n``) or a single 2-D input of shape ``[n, n_features]`` in
  schema order. In ``BYTES`` tensors numeric features are parsed as decimal
  numbers (a tensor element is a string by definition); non-numbers, NaN and
  infinity are rejected. Numeric tensors (``FP*``/``INT*``/``UINT*``) given to a
  numeric feature must hold numbers, not strings.

Values outside the training range / unseen categories are *not* errors (the
model handles them; the one-hot encoder ignores unknown categories); they are
counted by :func:`out_of_range_counts` for the ``mlops_input_out_of_range_total``
metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from kserve.errors import InvalidInput

NUMERIC = "numeric"
CATEGORICAL = "categorical"
_NUMERIC_V2 = {
    "FP16",
    "FP32",
    "FP64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
}
_MAX_NAMES = 10  # names listed in one message before "..."


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str
    min: float | None = None
    max: float | None = None
    categories: frozenset[str] = frozenset()


class FeatureSchema:
    """The ordered input features of a model, from ``metadata.json``."""

    def __init__(self, features: Sequence[Feature]) -> None:
        if not features:
            raise ValueError("a model needs at least one feature")
        self.features = list(features)
        self.names = [f.name for f in self.features]
        self.name_set = frozenset(self.names)
        self.index = {name: i for i, name in enumerate(self.names)}
        if len(self.name_set) != len(self.names):
            raise ValueError("duplicate feature names in metadata")
        # Built once: pandas re-validates a plain list of names on every DataFrame.
        self.columns = pd.Index(self.names)
        # Training ranges as arrays, so the per-request range check is two vector compares.
        self.numeric_positions = np.array(
            [i for i, f in enumerate(self.features) if f.kind == NUMERIC], dtype=np.intp
        )
        bounded = [self.features[i] for i in self.numeric_positions]
        self.numeric_min = np.array(
            [-np.inf if f.min is None else f.min for f in bounded], dtype=np.float64
        )
        self.numeric_max = np.array(
            [np.inf if f.max is None else f.max for f in bounded], dtype=np.float64
        )

    def __len__(self) -> int:
        return len(self.features)

    @classmethod
    def from_metadata(cls, metadata: dict) -> "FeatureSchema":
        """Builds the schema from ``metadata["features"]`` (ordered by ``feature_names`` when given)."""
        entries = metadata.get("features")
        if not isinstance(entries, list) or not entries:
            raise ValueError("metadata.json has no 'features' list")
        by_name = {}
        for entry in entries:
            kind = entry.get("kind")
            if kind not in (NUMERIC, CATEGORICAL):
                raise ValueError(f"feature {entry.get('name')!r} has unknown kind {kind!r}")
            by_name[str(entry["name"])] = Feature(
                name=str(entry["name"]),
                kind=kind,
                min=_opt_float(entry.get("min")),
                max=_opt_float(entry.get("max")),
                categories=frozenset(str(c) for c in entry.get("categories") or ()),
            )
        order = metadata.get("feature_names") or list(by_name)
        missing = [n for n in order if n not in by_name]
        if missing or len(order) != len(by_name):
            raise ValueError("metadata 'feature_names' and 'features' disagree")
        return cls([by_name[str(n)] for n in order])


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _names(names: Iterable[str]) -> str:
    names = sorted(names)
    shown = ", ".join(repr(n) for n in names[:_MAX_NAMES])
    return shown + (f" and {len(names) - _MAX_NAMES} more" if len(names) > _MAX_NAMES else "")


def _describe(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"string {text!r}"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"{type(value).__name__} {value!r}"


_NAN_WORDS = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


# -- column conversion ---------------------------------------------------------


def _numeric_column(feature: Feature, values: Sequence[Any]) -> np.ndarray:
    """JSON values -> float64 (NaN where null); rejects anything else."""
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        return values  # V2 numeric tensor, already checked finite
    out = np.empty(len(values), dtype=np.float64)
    for row, value in enumerate(values):
        kind = type(value)
        if kind is float or kind is int:
            out[row] = value
        elif value is None:
            out[row] = np.nan
            continue
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[row] = float(value)
        elif isinstance(value, str) and value.strip().lower() in _NAN_WORDS:
            raise InvalidInput(
                f"feature {feature.name!r} row {row}: NaN/infinity is not allowed "
                f"(got string {value!r}); send null for a missing value"
            )
        else:
            raise InvalidInput(
                f"feature {feature.name!r} row {row}: expected a number, got {_describe(value)}"
            )
        if not math.isfinite(out[row]):
            raise InvalidInput(
                f"feature {feature.name!r} row {row}: NaN/infinity is not allowed; "
                "send null for a missing value"
            )
    return out


def _categorical_column(feature: Feature, values: Sequence[Any]) -> np.ndarray:
    """JSON values -> object array of str (NaN where null, as training's coerce does)."""
    out = np.empty(len(values), dtype=object)
    for row, value in enumerate(values):
        if type(value) is str:
            out[row] = value
        elif value is None:
            out[row] = np.nan
        elif isinstance(value, (bool, int)):
            out[row] = str(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidInput(
                    f"feature {feature.name!r} row {row}: NaN/infinity is not allowed"
                )
            out[row] = str(value)
        else:
            raise InvalidInput(
                f"feature {feature.name!r} row {row}: expected a string category, got {_describe(value)}"
            )
    return out


def _frame(schema: FeatureSchema, columns: Sequence[Sequence[Any]]) -> pd.DataFrame:
    if all(feature.kind == NUMERIC for feature in schema.features):
        # One float block: ~10x cheaper than a DataFrame built from a dict of columns.
        block = np.column_stack(
            [_numeric_column(f, v) for f, v in zip(schema.features, columns, strict=True)]
        )
        return pd.DataFrame(block, columns=schema.columns)
    data = {}
    for feature, values in zip(schema.features, columns, strict=True):
        if feature.kind == NUMERIC:
            data[feature.name] = _numeric_column(feature, values)
        else:
            data[feature.name] = _categorical_column(feature, values)
    return pd.DataFrame(data, columns=schema.columns)


# -- V1 ------------------------------------------------------------------------


def parse_v1(payload: Any, schema: FeatureSchema) -> tuple[pd.DataFrame, bool]:
    """Validates a V1 body; returns the feature frame (schema order) and whether probabilities are asked.

    Raises:
        InvalidInput: naming the problem (see the module doc).
    """
    if isinstance(payload, (bytes, bytearray, str)):
        raise InvalidInput("request body must be a JSON object with an 'instances' list")
    if not isinstance(payload, dict):
        raise InvalidInput(
            f"request body must be a JSON object with an 'instances' list, got {_describe(payload)}"
        )
    if "instances" not in payload:
        raise InvalidInput("request body has no 'instances' list")
    instances = payload["instances"]
    if not isinstance(instances, list):
        raise InvalidInput(f"'instances' must be a list of rows, got {_describe(instances)}")
    if not instances:
        raise InvalidInput("'instances' is empty: send at least one row")
    want_proba = wants_probabilities(payload.get("parameters"))
    width = len(schema)
    first = instances[0]
    if isinstance(first, list):
        for row, values in enumerate(instances):
            if not isinstance(values, list):
                raise InvalidInput(
                    f"row {row}: expected a list of {width} values like row 0, got {_describe(values)}"
                )
            if len(values) != width:
                raise InvalidInput(
                    f"row {row}: expected {width} values (one per feature), got {len(values)}"
                )
        columns = list(zip(*instances, strict=True))
    elif isinstance(first, dict):
        names = schema.name_set
        for row, values in enumerate(instances):
            if not isinstance(values, dict):
                raise InvalidInput(
                    f"row {row}: expected an object keyed by feature name like row 0, "
                    f"got {_describe(values)}"
                )
            if values.keys() != names:
                keys = set(values)
                missing, extra = names - keys, keys - names
                parts = []
                if missing:
                    parts.append(f"missing feature(s) {_names(missing)}")
                if extra:
                    parts.append(f"unknown feature(s) {_names(extra)}")
                raise InvalidInput(f"row {row}: " + "; ".join(parts))
        columns = [[values[name] for values in instances] for name in schema.names]
    else:
        raise InvalidInput(
            f"row 0: each instance must be a list of values or an object keyed by "
            f"feature name, got {_describe(first)}"
        )
    return _frame(schema, columns), want_proba


def wants_probabilities(parameters: Any) -> bool:
    """``{"probabilities": true}`` (bool or a "true"/"1" string) in request parameters."""
    if not parameters:
        return False
    try:
        value = parameters.get("probabilities", False)
    except AttributeError:
        return False
    if hasattr(value, "bool_param"):  # gRPC InferParameter
        value = value.bool_param
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


# -- V2 ------------------------------------------------------------------------


def _tensor(inp) -> np.ndarray:
    """An InferInput as a numpy array of its declared shape (object dtype for BYTES)."""
    shape = list(inp.shape or [])
    if any((not isinstance(d, int)) or d < 0 for d in shape):
        raise InvalidInput(f"input {inp.name!r}: invalid shape {shape}")
    datatype = (inp.datatype or "").upper()
    if datatype == "BYTES":
        if getattr(inp, "_raw_data", None) is not None:
            array = inp.as_numpy()
        else:
            array = np.asarray(inp.data if inp.data is not None else [], dtype=object)
    elif datatype in _NUMERIC_V2 or datatype == "BOOL":
        if getattr(inp, "_raw_data", None) is not None:
            array = inp.as_numpy()
        else:
            raw = np.asarray(inp.data if inp.data is not None else [])
            if raw.dtype.kind in "USO":
                bad = next((v for v in raw.ravel() if isinstance(v, str)), None)
                raise InvalidInput(
                    f"input {inp.name!r}: datatype {datatype} holds a string "
                    f"({bad!r}); send numbers, or use BYTES"
                )
            array = raw
    else:
        raise InvalidInput(f"input {inp.name!r}: unsupported datatype {inp.datatype!r}")
    expected = int(np.prod(shape)) if shape else 1
    if array.size != expected:
        raise InvalidInput(
            f"input {inp.name!r}: shape {shape} needs {expected} values, got {array.size}"
        )
    return array.reshape(shape)


def _v2_values(feature: Feature, values: np.ndarray, datatype: str, source: str) -> list:
    """One feature's 1-D tensor values as JSON-like Python values for the column converters."""
    if datatype == "BYTES":
        out = []
        for row, value in enumerate(values.tolist()):
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidInput(
                        f"feature {feature.name!r} row {row}: not UTF-8 text"
                    ) from exc
            if feature.kind == NUMERIC and isinstance(value, str):
                text = value.strip()
                try:
                    number = float(text)
                except ValueError:
                    raise InvalidInput(
                        f"feature {feature.name!r} row {row}: expected a number, "
                        f"got string {value!r} ({source})"
                    ) from None
                if not math.isfinite(number):
                    raise InvalidInput(
                        f"feature {feature.name!r} row {row}: NaN/infinity is not allowed"
                    )
                value = number
            out.append(value)
        return out
    if datatype == "BOOL":
        if feature.kind == NUMERIC:
            raise InvalidInput(f"feature {feature.name!r}: expected numbers, got BOOL ({source})")
        return [bool(v) for v in values.tolist()]
    if feature.kind == NUMERIC:
        numbers = values.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(numbers))
        if bad.size:
            raise InvalidInput(
                f"feature {feature.name!r} row {int(bad[0])}: NaN/infinity is not allowed"
            )
        return numbers  # already checked: the converter's fast path takes floats
    return values.tolist()


def parse_v2(request, schema: FeatureSchema) -> tuple[pd.DataFrame, bool, bool]:
    """Validates a V2 InferRequest.

    Returns:
        (frame, want_probabilities, want_predict): the last tells whether the
        client asked for the ``predict`` output (default True).
    """
    inputs = list(request.inputs or [])
    if not inputs:
        raise InvalidInput("request has no inputs")
    want_proba = wants_probabilities(request.parameters)
    want_predict = True
    requested = getattr(request, "request_outputs", None)
    if requested:
        names = [o.name for o in requested]
        unknown = [n for n in names if n not in ("predict", "probabilities")]
        if unknown:
            raise InvalidInput(
                f"unknown requested output(s) {_names(unknown)}; "
                "available: 'predict', 'probabilities'"
            )
        want_proba = want_proba or "probabilities" in names
        want_predict = "predict" in names
    width = len(schema)
    if len(inputs) == 1 and inputs[0].name not in schema.name_set:
        inp = inputs[0]
        array = _tensor(inp)
        if array.ndim != 2:
            raise InvalidInput(
                f"input {inp.name!r} is not a feature name, so it must be a 2-D tensor "
                f"[rows, {width}]; got shape {list(inp.shape)}"
            )
        rows, got = array.shape
        if got != width:
            raise InvalidInput(
                f"input {inp.name!r}: expected {width} columns (one per feature), got {got}"
            )
        if rows == 0:
            raise InvalidInput(f"input {inp.name!r} has no rows")
        datatype = inp.datatype.upper()
        columns = [
            _v2_values(f, array[:, j], datatype, f"column {j} of {inp.name!r}")
            for j, f in enumerate(schema.features)
        ]
        return _frame(schema, columns), want_proba, want_predict

    by_name = {}
    for inp in inputs:
        if inp.name in by_name:
            raise InvalidInput(f"input {inp.name!r} is given twice")
        by_name[inp.name] = inp
    missing = schema.name_set - by_name.keys()
    extra = by_name.keys() - schema.name_set
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing feature input(s) {_names(missing)}")
        if extra:
            parts.append(f"unknown input(s) {_names(extra)}")
        raise InvalidInput("; ".join(parts))
    columns = []
    rows = None
    for feature in schema.features:
        inp = by_name[feature.name]
        array = _tensor(inp)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise InvalidInput(
                f"input {inp.name!r}: expected shape [rows] or [rows, 1], got {list(inp.shape)}"
            )
        if rows is None:
            rows = array.shape[0]
            if rows == 0:
                raise InvalidInput(f"input {inp.name!r} has no rows")
        elif array.shape[0] != rows:
            raise InvalidInput(
                f"input {inp.name!r} has {array.shape[0]} rows, "
                f"expected {rows} like {schema.names[0]!r}"
            )
        columns.append(_v2_values(feature, array, inp.datatype.upper(), f"input {inp.name!r}"))
    return _frame(schema, columns), want_proba, want_predict


# -- monitoring -----------------------------------------------------------------


def out_of_range_counts(schema: FeatureSchema, frame: pd.DataFrame) -> dict[str, int]:
    """Per feature: numeric values outside the training [min, max], or unseen categories (nulls ignored)."""
    counts = {}
    # One conversion of the whole frame: selecting columns by name costs more than
    # the check itself on a one-row request.
    if frame.columns is not schema.columns and frame.columns.tolist() != schema.names:
        frame = frame[schema.names]
    values = frame.to_numpy()
    positions = schema.numeric_positions
    if len(positions):
        block = values[:, positions].astype(np.float64, copy=False)
        outside = np.count_nonzero(block < schema.numeric_min, axis=0) + np.count_nonzero(
            block > schema.numeric_max, axis=0
        )  # NaN compares false: ignored
        for j in np.flatnonzero(outside):
            counts[schema.names[positions[j]]] = int(outside[j])
    for i, feature in enumerate(schema.features):
        if feature.kind == NUMERIC or not feature.categories:
            continue
        n = sum(1 for v in values[:, i] if isinstance(v, str) and v not in feature.categories)
        if n:
            counts[feature.name] = n
    return counts
