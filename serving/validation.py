"""Strict request validation: every problem is a 400 naming what is wrong, before the model runs.

The feature schema is the model's own (:class:`mlops.model.schema.FeatureSchema`,
read from its ``metadata.json``: name, kind numeric|categorical, numeric
``min``/``max``, categorical ``categories``). This module only decides which
request values are acceptable; accepted values are converted to model input by
the schema's one coercion (:func:`mlops.model.schema.coerce_column`), the same
conversion training used.

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
  their string form exactly as training does (``str(value)``); ``null`` means
  missing (imputed with the training mode). Lists and objects are rejected.
* V2: either one input per feature (named after it, shape ``[n]`` or ``[n, 1]``,
  all the same ``n``) or a single 2-D input of shape ``[n, n_features]`` in
  schema order. In ``BYTES`` tensors numeric features are parsed as decimal
  numbers (a tensor element is a string by definition); non-numbers, NaN and
  infinity are rejected. Numeric tensors (``FP*``/``INT*``/``UINT*``) given to a
  numeric feature must hold numbers, not strings; an ``FP32``/``FP16`` value past
  that type's range is rejected (it is infinite in the declared type). A shape is
  a list of whole numbers >= 0 whose product (exact, never wrapping around) is the
  number of values; ``data`` is a list, nested lists rectangular.
* V2 outputs: the request's ``outputs`` (each named once, ``predict`` or
  ``probabilities``), else all of :data:`OUTPUTS`, what the model metadata
  advertises (the Open Inference Protocol returns every output when none is
  named). ``parameters`` are objects when given.
* Envelopes are read first (:func:`read_v1`, :func:`read_v2`: rows, outputs), so
  the server's bounds (:mod:`serving.limits`) apply before any value is checked;
  then :func:`v1_frame` / :func:`v2_frame` check every value.

Values outside the training range / unseen categories are *not* errors (the
model handles them; the one-hot encoder ignores unknown categories); they are
counted by :func:`out_of_range_counts` for the ``mlops_input_out_of_range_total``
metric.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from kserve.errors import InvalidInput

from mlops.model.schema import NUMERIC, Feature, FeatureSchema, coerce_column

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
#: Largest magnitude of the narrow float datatypes (JSON numbers are parsed as float64).
_NARROW_FLOATS = {
    "FP16": float(np.finfo(np.float16).max),
    "FP32": float(np.finfo(np.float32).max),
}
_MAX_NAMES = 10  # names listed in one message before "..."
#: The V2 outputs every model advertises in its metadata, in response order.
OUTPUTS = ("predict", "probabilities")


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
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"


#: Python integers past this do not convert to a float64 (JSON parsers never produce them).
_LARGEST_INT = int(np.finfo(np.float64).max)
_NAN_WORDS = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


# -- column checks, then the model's one coercion ------------------------------------


def _check_numbers(feature: Feature, values: Sequence[Any] | np.ndarray) -> None:
    """Numeric JSON values: finite numbers or null (missing); anything else is rejected."""
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        return  # V2 numeric tensor, already checked finite
    # Ordered by how common each case is: this loop runs for every value of every request.
    for row, value in enumerate(values):
        kind = type(value)
        if kind is float:
            if math.isfinite(value):
                continue
            raise _not_finite(feature, row)
        if value is None or (kind is int and -_LARGEST_INT <= value <= _LARGEST_INT):
            continue
        _check_uncommon_number(feature, row, value)


def _check_uncommon_number(feature: Feature, row: int, value: Any) -> None:
    """A numeric feature's value that is neither a float, a float-sized int nor null."""
    if type(value) is int:
        raise InvalidInput(f"feature {feature.name!r} row {row}: {value} is beyond float range")
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # NumPy scalars
        if not math.isfinite(value):
            raise _not_finite(feature, row)
    elif isinstance(value, str) and value.strip().lower() in _NAN_WORDS:
        raise InvalidInput(
            f"feature {feature.name!r} row {row}: NaN/infinity is not allowed "
            f"(got string {value!r}); send null for a missing value"
        )
    else:
        raise InvalidInput(
            f"feature {feature.name!r} row {row}: expected a number, got {_describe(value)}"
        )


def _not_finite(feature: Feature, row: int) -> InvalidInput:
    return InvalidInput(
        f"feature {feature.name!r} row {row}: NaN/infinity is not allowed; "
        "send null for a missing value"
    )


def _check_categories(feature: Feature, values: Sequence[Any] | np.ndarray) -> None:
    """Categorical JSON values: strings, numbers, booleans or null; no lists, objects, NaN."""
    for row, value in enumerate(values):
        if type(value) is str or value is None or isinstance(value, (bool, int)):
            continue
        if not isinstance(value, float):
            raise InvalidInput(
                f"feature {feature.name!r} row {row}: expected a string category, got {_describe(value)}"
            )
        if not math.isfinite(value):
            raise InvalidInput(f"feature {feature.name!r} row {row}: NaN/infinity is not allowed")


def _column(feature: Feature, values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """One feature's request values, checked, as model input (:func:`coerce_column`)."""
    if feature.kind == NUMERIC:
        _check_numbers(feature, values)
    else:
        _check_categories(feature, values)
    return coerce_column(feature, values)


def _columns(
    schema: FeatureSchema, columns: Sequence[Sequence[Any] | np.ndarray]
) -> list[np.ndarray]:
    return [
        _column(feature, values) for feature, values in zip(schema.features, columns, strict=True)
    ]


# -- V1 ------------------------------------------------------------------------


class V1Request(NamedTuple):  # a tuple: built on every request, it must be cheap
    """A V1 body's envelope, read before any value is checked (so its size can be bounded first).

    Attributes:
        instances: The non-empty ``instances`` list, as sent.
        probabilities: The client asked for class probabilities.
    """

    instances: list
    probabilities: bool

    @property
    def rows(self) -> int:
        """Rows the request sends."""
        return len(self.instances)


def read_v1(payload: Any) -> V1Request:
    """The envelope of a V1 body: its ``instances`` and whether probabilities are asked.

    Raises:
        InvalidInput: The body is not an object with a non-empty ``instances`` list.
    """
    instances = _instances(payload)
    return V1Request(instances, wants_probabilities(payload.get("parameters")))


def v1_frame(request: V1Request, schema: FeatureSchema) -> pd.DataFrame:
    """The feature frame (schema order) of a V1 request, every value checked.

    Raises:
        InvalidInput: naming the problem (see the module doc).
    """
    return schema.frame(v1_columns(request, schema))


def v1_columns(request: V1Request, schema: FeatureSchema) -> list[np.ndarray]:
    """The model-input columns (schema order) of a V1 request, every value checked.

    What :func:`v1_frame` puts in its frame; the batcher joins the columns of many
    requests into one frame instead.

    Raises:
        InvalidInput: naming the problem (see the module doc).
    """
    instances = request.instances
    first = instances[0]
    columns: Sequence[Sequence[Any]]
    if isinstance(first, list):
        columns = _list_rows(instances, len(schema))
    elif isinstance(first, dict):
        columns = _object_rows(instances, schema)
    else:
        raise InvalidInput(
            f"row 0: each instance must be a list of values or an object keyed by "
            f"feature name, got {_describe(first)}"
        )
    return _columns(schema, columns)


def parse_v1(payload: Any, schema: FeatureSchema) -> tuple[pd.DataFrame, bool]:
    """Validates a V1 body; returns the feature frame (schema order) and whether probabilities are asked.

    Raises:
        InvalidInput: naming the problem (see the module doc).
    """
    request = read_v1(payload)
    return v1_frame(request, schema), request.probabilities


def _instances(payload: Any) -> list:
    """The non-empty ``instances`` list of a V1 body."""
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
    return instances


def _list_rows(instances: list, width: int) -> list[tuple]:
    """Columns of rows given as lists of values in schema order."""
    for row, values in enumerate(instances):
        if not isinstance(values, list):
            raise InvalidInput(
                f"row {row}: expected a list of {width} values like row 0, got {_describe(values)}"
            )
        if len(values) != width:
            raise InvalidInput(
                f"row {row}: expected {width} values (one per feature), got {len(values)}"
            )
    return list(zip(*instances, strict=True))


def _object_rows(instances: list, schema: FeatureSchema) -> list[list]:
    """Columns of rows given as objects keyed by feature name."""
    names = schema.name_set
    for row, values in enumerate(instances):
        if not isinstance(values, dict):
            raise InvalidInput(
                f"row {row}: expected an object keyed by feature name like row 0, "
                f"got {_describe(values)}"
            )
        if values.keys() != names:
            keys = set(values)
            problems = _name_problems(names - keys, keys - names, "feature(s)", "feature(s)")
            raise InvalidInput(f"row {row}: " + problems)
    return [[values[name] for values in instances] for name in schema.names]


def _name_problems(
    missing: AbstractSet[str], extra: AbstractSet[str], missing_what: str, extra_what: str
) -> str:
    parts = []
    if missing:
        parts.append(f"missing {missing_what} {_names(missing)}")
    if extra:
        parts.append(f"unknown {extra_what} {_names(extra)}")
    return "; ".join(parts)


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


@dataclass(frozen=True, eq=False)
class _Column:
    """One feature's 1-D request tensor, its shape checked, its values not yet."""

    feature: Feature
    values: np.ndarray
    datatype: str
    source: str


@dataclass(frozen=True, eq=False)
class V2Request:
    """A V2 request with its tensors decoded and their shapes checked, values not yet.

    Attributes:
        outputs: The outputs to return, in order: the requested ones, else every
            output the model metadata advertises (:data:`OUTPUTS`).
        rows: Rows the request sends.
    """

    outputs: tuple[str, ...]
    rows: int
    columns: tuple[_Column, ...]

    @property
    def predictions(self) -> bool:
        """The ``predict`` output is returned."""
        return "predict" in self.outputs

    @property
    def probabilities(self) -> bool:
        """The ``probabilities`` output is returned."""
        return "probabilities" in self.outputs


def read_v2(request: Any, schema: FeatureSchema) -> V2Request:
    """Decodes a V2 InferRequest's tensors and checks their shapes against the schema.

    Raises:
        InvalidInput: naming the problem (see the module doc).
    """
    inputs = list(request.inputs or [])
    if not inputs:
        raise InvalidInput("request has no inputs")
    _check_parameters(request.parameters, "request")
    if request.id is not None and not isinstance(request.id, str):
        raise InvalidInput(f"request 'id' must be a string, got {_describe(request.id)}")
    outputs = requested_outputs(request)
    if len(inputs) == 1 and inputs[0].name not in schema.name_set:
        columns = _matrix_columns(inputs[0], schema)
    else:
        columns = _feature_columns(_inputs_by_feature(inputs, schema), schema)
    return V2Request(outputs, len(columns[0].values), tuple(columns))


def v2_frame(request: V2Request, schema: FeatureSchema) -> pd.DataFrame:
    """The feature frame (schema order) of a decoded V2 request, every value checked.

    Raises:
        InvalidInput: naming the problem (see the module doc).
    """
    return schema.frame(v2_columns(request, schema))


def v2_columns(request: V2Request, schema: FeatureSchema) -> list[np.ndarray]:
    """The model-input columns (schema order) of a decoded V2 request, every value checked.

    Raises:
        InvalidInput: naming the problem (see the module doc).
    """
    return _columns(
        schema, [_v2_values(c.feature, c.values, c.datatype, c.source) for c in request.columns]
    )


def parse_v2(request: Any, schema: FeatureSchema) -> tuple[pd.DataFrame, bool, bool]:
    """Validates a V2 InferRequest.

    Returns:
        (frame, want_probabilities, want_predict): the outputs to return (both
        when the request names none).

    Raises:
        InvalidInput: naming the problem (see the module doc).
    """
    decoded = read_v2(request, schema)
    return v2_frame(decoded, schema), decoded.probabilities, decoded.predictions


def _check_parameters(parameters: Any, where: str) -> None:
    """Parameters are an object (or absent); the binary body path hands over anything."""
    if parameters is not None and not isinstance(parameters, Mapping):
        raise InvalidInput(f"{where} 'parameters' must be an object, got {_describe(parameters)}")


def requested_outputs(request: Any) -> tuple[str, ...]:
    """The outputs a V2 request asks for: exactly the named ones, else all of :data:`OUTPUTS`.

    Raises:
        InvalidInput: An unknown or repeated output name, or output parameters that
            are not an object.
    """
    requested = getattr(request, "request_outputs", None)
    if not requested:
        return OUTPUTS
    names = []
    for output in requested:
        _check_parameters(output.parameters, f"output {output.name!r}")
        if output.name in names:
            raise InvalidInput(f"output {output.name!r} is requested twice")
        names.append(output.name)
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown:
        raise InvalidInput(
            f"unknown requested output(s) {_names(unknown)}; available: "
            + ", ".join(repr(o) for o in OUTPUTS)
        )
    return tuple(names)


def _shape(inp: Any) -> list[int]:
    """The declared shape of an input: a list of whole numbers >= 0."""
    shape = inp.shape
    if not isinstance(shape, (list, tuple)) or any(type(d) is not int or d < 0 for d in shape):
        raise InvalidInput(
            f"input {inp.name!r}: invalid shape {shape!r} (a list of whole numbers >= 0)"
        )
    return list(shape)


def _tensor(inp: Any) -> np.ndarray:
    """An InferInput as a numpy array of its declared shape (object dtype for BYTES)."""
    shape = _shape(inp)
    datatype = inp.datatype.upper() if isinstance(inp.datatype, str) else ""
    if datatype == "BYTES":
        array = _bytes_tensor(inp)
    elif datatype in _NUMERIC_V2 or datatype == "BOOL":
        array = _numeric_tensor(inp, datatype)
    else:
        raise InvalidInput(f"input {inp.name!r}: unsupported datatype {inp.datatype!r}")
    # Python integers: a product of huge dimensions is exact, never wraps around.
    expected = math.prod(shape)
    if array.size != expected:
        raise InvalidInput(
            f"input {inp.name!r}: shape {shape} needs {expected} values, got {array.size}"
        )
    return array.reshape(shape)


def _data_array(inp: Any, dtype: Any = None) -> np.ndarray:
    """The ``data`` of an input as an array; nested lists must be rectangular."""
    data = inp.data if inp.data is not None else []
    if isinstance(data, np.ndarray):
        return data
    if not isinstance(data, (list, tuple)):
        raise InvalidInput(f"input {inp.name!r}: 'data' must be a list, got {_describe(data)}")
    try:
        return np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        # Object arrays (BYTES) take ragged lists as list elements; the value checks refuse those.
        raise InvalidInput(
            f"input {inp.name!r}: 'data' is ragged (nested lists of different lengths, or "
            "lists mixed with values); send a flat list in row-major order"
        ) from None


def _bytes_tensor(inp: Any) -> np.ndarray:
    if getattr(inp, "_raw_data", None) is not None:  # binary extension: KServe decodes it
        return _decoded(inp)
    return _data_array(inp, dtype=object)


def _decoded(inp: Any) -> np.ndarray:
    """A binary-extension tensor decoded by KServe; a buffer that does not fit is a 400."""
    try:
        return inp.as_numpy()
    except (ValueError, TypeError, struct.error) as exc:
        raise InvalidInput(
            f"input {inp.name!r}: binary data does not match its shape and datatype ({exc})"
        ) from None


def _numeric_tensor(inp: Any, datatype: str) -> np.ndarray:
    if getattr(inp, "_raw_data", None) is not None:  # binary extension: KServe decodes it
        return _decoded(inp)
    raw = _data_array(inp)
    if raw.dtype.kind not in "biuf":
        raise InvalidInput(
            f"input {inp.name!r}: datatype {datatype} holds {_describe(_first_non_number(inp.data))}"
            "; send numbers, or use BYTES"
        )
    if datatype in _NARROW_FLOATS and raw.dtype.kind in "iuf":
        # The declared datatype is what the values mean: one past its range is infinite there.
        largest = _NARROW_FLOATS[datatype]
        outside = np.flatnonzero(np.abs(raw.ravel()) > largest)
        if outside.size:
            raise InvalidInput(
                f"input {inp.name!r}: value {float(raw.ravel()[outside[0]]):g} does not fit "
                f"{datatype} (largest {largest:g})"
            )
    return raw


def _first_non_number(data: Any) -> Any:
    """The first element of (nested) ``data`` that is not a number, for an error message."""
    for value in data if isinstance(data, (list, tuple)) else [data]:
        if isinstance(value, (list, tuple)):
            found = _first_non_number(value)
            if found is not None:
                return found
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
    return None


def _v2_values(
    feature: Feature, values: np.ndarray, datatype: str, source: str
) -> Sequence[Any] | np.ndarray:
    """One feature's 1-D tensor values as JSON-like Python values for the column checks."""
    if datatype == "BYTES":
        return [
            _bytes_value(feature, row, value, source) for row, value in enumerate(values.tolist())
        ]
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
        return numbers  # already checked: the coercion takes it as is
    return values.tolist()


def _bytes_value(feature: Feature, row: int, value: Any, source: str) -> Any:
    """One BYTES element as text; a number when the feature is numeric (decimal text)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"feature {feature.name!r} row {row}: not UTF-8 text") from exc
    if feature.kind != NUMERIC or not isinstance(value, str):
        return value
    try:
        number = float(value.strip())
    except ValueError:
        raise InvalidInput(
            f"feature {feature.name!r} row {row}: expected a number, "
            f"got string {value!r} ({source})"
        ) from None
    if not math.isfinite(number):
        raise InvalidInput(f"feature {feature.name!r} row {row}: NaN/infinity is not allowed")
    return number


def _matrix_columns(inp: Any, schema: FeatureSchema) -> list[_Column]:
    """The columns of a single 2-D input ``[rows, features]`` in schema order."""
    width = len(schema)
    shape = _shape(inp)
    if len(shape) != 2:
        raise InvalidInput(
            f"input {inp.name!r} is not a feature name, so it must be a 2-D tensor "
            f"[rows, {width}]; got shape {shape}"
        )
    array = _tensor(inp)
    rows, got = array.shape
    if got != width:
        raise InvalidInput(
            f"input {inp.name!r}: expected {width} columns (one per feature), got {got}"
        )
    if rows == 0:
        raise InvalidInput(f"input {inp.name!r} has no rows")
    datatype = inp.datatype.upper()
    return [
        _Column(f, array[:, j], datatype, f"column {j} of {inp.name!r}")
        for j, f in enumerate(schema.features)
    ]


def _inputs_by_feature(inputs: list, schema: FeatureSchema) -> dict[str, Any]:
    """One input per feature, by name: no duplicates, none missing, none extra."""
    by_name = {}
    for inp in inputs:
        if inp.name in by_name:
            raise InvalidInput(f"input {inp.name!r} is given twice")
        by_name[inp.name] = inp
    missing = schema.name_set - by_name.keys()
    extra = by_name.keys() - schema.name_set
    if missing or extra:
        raise InvalidInput(_name_problems(missing, extra, "feature input(s)", "input(s)"))
    return by_name


def _feature_columns(by_name: dict[str, Any], schema: FeatureSchema) -> list[_Column]:
    """The columns of per-feature inputs, each ``[rows]`` or ``[rows, 1]``, all the same rows."""
    columns = []
    rows = None
    for feature in schema.features:
        inp = by_name[feature.name]
        array = _feature_vector(inp)
        if rows is None:
            rows = array.shape[0]
            if rows == 0:
                raise InvalidInput(f"input {inp.name!r} has no rows")
        elif array.shape[0] != rows:
            raise InvalidInput(
                f"input {inp.name!r} has {array.shape[0]} rows, "
                f"expected {rows} like {schema.names[0]!r}"
            )
        columns.append(_Column(feature, array, inp.datatype.upper(), f"input {inp.name!r}"))
    return columns


def _feature_vector(inp: Any) -> np.ndarray:
    """A per-feature input as a 1-D array."""
    array = _tensor(inp)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidInput(
            f"input {inp.name!r}: expected shape [rows] or [rows, 1], got {list(inp.shape)}"
        )
    return array


# -- monitoring -----------------------------------------------------------------


def out_of_range_counts(schema: FeatureSchema, frame: pd.DataFrame) -> dict[str, int]:
    """Per feature: numeric values outside the training [min, max], or unseen categories (nulls ignored)."""
    counts = {}
    # One conversion of the whole frame: selecting columns by name costs more than
    # the check itself on a one-row request.
    values = schema.ordered(frame).to_numpy()
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
