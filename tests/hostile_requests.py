"""What the hostile fuzz sends and what each answer must be (``tests/integration/test_hostile_fuzz.py``).

Hypothesis strategies build :class:`Case` objects: one HTTP request to the model
server of the fuzz test (models ``iris`` and ``iris-forest``, features
:data:`tests.serving_helpers.FEATURES`) plus what the server must do with it:
``ok`` (a 200), ``reject`` (a 4xx) or ``any`` (anything but a 5xx).
:func:`problems_with` checks one answer. The requests issue 9 reported are
here as fixed seeds (``ISSUE_*_SEEDS``), sent before the generated ones.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tests.hostile_helpers import MODEL, ROW
from tests.serving_helpers import CATEGORICAL, FEATURES, NUMERIC

JSON_TYPE = "application/json"


# -- cases ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One generated request and what the server must do with it.

    Attributes:
        family: What kind of request this is (groups the failure report).
        expect: ``ok`` (must be 200), ``reject`` (must be a 4xx) or ``any`` (no 5xx).
        method: HTTP method.
        path: URL path (and query).
        body: Request body, or None.
        headers: Request headers.
    """

    family: str
    expect: str
    method: str
    path: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = (("Content-Type", JSON_TYPE),)

    def describe(self, limit: int = 220) -> str:
        """``METHOD path [headers] body`` shortened for a failure report."""
        extra = {k: v for k, v in self.headers if k != "Content-Type" or v != JSON_TYPE}
        body = (self.body or b"")[:limit].decode("utf-8", "backslashreplace")
        more = "..." if self.body and len(self.body) > limit else ""
        return f"{self.method} {self.path} {extra or ''} {body}{more}".strip()


def _json(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True, ensure_ascii=False).encode()


def _post(family: str, expect: str, path: str, payload: Any, **headers: str) -> Case:
    body = payload if isinstance(payload, bytes) else _json(payload)
    merged = {"Content-Type": JSON_TYPE, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return Case(family, expect, "POST", path, body, tuple(merged.items()))


#: A second model, tree-only, so TreeSHAP answers every explanation sent to it.
FOREST = "iris-forest"
V1_PREDICT = f"/v1/models/{MODEL}:predict"
FOREST_PREDICT = f"/v1/models/{FOREST}:predict"
V1_EXPLAIN = f"/v1/models/{MODEL}:explain"
FOREST_EXPLAIN = f"/v1/models/{FOREST}:explain"
V2_INFER = f"/v2/models/{MODEL}/infer"

# -- values -----------------------------------------------------------------------------------
HOSTILE_TEXT = st.sampled_from(
    [
        "</script><img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        "\u2028\u2029",
        "'; DROP TABLE models; --",
        "../../etc/passwd",
        "%00",
        "\x00",
        "\ufeff",
        "é" * 50,
        "🦀🧪" * 20,
        "\u202eevil",
        "{{7*7}}",
        "${jndi:ldap://x}",
    ]
)
TEXT = st.one_of(
    st.sampled_from(["red", "green", "blue"]),
    HOSTILE_TEXT,
    st.text(max_size=40),
)
SANE_FLOAT = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
NUMBER = st.one_of(SANE_FLOAT, st.integers(min_value=-1000, max_value=1000))
EXTREME_FLOAT = st.sampled_from(
    [1e306, -1e306, 1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324, 3.5e38, 1e39, 1e-310]
)
# JSON text that parses to no finite float64 (or is no JSON at all).
NON_FINITE_LITERAL = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
NON_FINITE_STRING = st.sampled_from(["NaN", "nan", "inf", "-inf", "Infinity", "1e400"])
WRONG_CELL = st.one_of(
    NON_FINITE_STRING,
    HOSTILE_TEXT,
    st.booleans(),
    st.lists(NUMBER, max_size=3),
    st.dictionaries(st.text(max_size=5), NUMBER, max_size=2),
    st.sampled_from(["3.5", "", " "]),
)
CATEGORY_CELL = st.one_of(TEXT, st.none(), NUMBER)
NUMERIC_CELL = st.one_of(NUMBER, st.none())
PARAMETERS = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"probabilities": st.booleans()}),
)


@st.composite
def valid_rows(draw: st.DrawFn, max_rows: int = 12) -> list[Any]:
    """Valid V1 instances: rows as lists in schema order, or objects keyed by feature."""
    count = draw(st.integers(1, max_rows))
    as_objects = draw(st.booleans())
    rows = []
    for _ in range(count):
        values = [draw(NUMERIC_CELL) for _ in NUMERIC] + [draw(CATEGORY_CELL)]
        rows.append(dict(zip(FEATURES, values, strict=True)) if as_objects else values)
    return rows


@st.composite
def v1_valid(draw: st.DrawFn, path: str, max_rows: int = 12) -> Case:
    payload: dict[str, Any] = {"instances": draw(valid_rows(max_rows))}
    parameters = draw(PARAMETERS)
    if parameters:
        payload["parameters"] = parameters
    return _post("v1 valid", "ok", path, payload)


@st.composite
def v1_extreme(draw: st.DrawFn, path: str) -> Case:
    """Finite but huge (or subnormal) numbers: a 200 must not carry null probabilities."""
    rows = draw(valid_rows(4))
    for row in rows:
        keys = list(row) if isinstance(row, dict) else list(range(len(NUMERIC)))
        for key in keys[: len(NUMERIC)]:
            if draw(st.booleans()):
                row[key] = draw(EXTREME_FLOAT)
    return _post(
        "v1 extreme floats", "any", path, {"instances": rows, "parameters": {"probabilities": True}}
    )


@st.composite
def v1_wrong_cell(draw: st.DrawFn, path: str) -> Case:
    """A numeric cell holding a string, NaN text, boolean, list or object: 400."""
    rows = draw(valid_rows(5))
    row = draw(st.sampled_from(rows))
    column = draw(st.integers(0, len(NUMERIC) - 1))
    row[FEATURES[column] if isinstance(row, dict) else column] = draw(WRONG_CELL)
    return _post("v1 wrong numeric cell", "reject", path, {"instances": rows})


@st.composite
def v1_non_finite_literal(draw: st.DrawFn, path: str) -> Case:
    """NaN/Infinity/1e400 written into the JSON text itself: 400."""
    literal = draw(NON_FINITE_LITERAL)
    column = draw(st.integers(0, len(NUMERIC) - 1))
    cells = [json.dumps(v) for v in ROW]
    cells[column] = literal
    body = ('{"instances": [[' + ", ".join(cells) + "]]}").encode()
    return _post("v1 non-finite literal", "reject", path, body)


@st.composite
def v1_ragged(draw: st.DrawFn, path: str) -> Case:
    """Rows of the wrong width, scalars among rows, nested rows, mixed list/object rows."""
    good = list(ROW)
    bad = draw(
        st.one_of(
            st.lists(NUMBER, min_size=0, max_size=len(FEATURES) - 1),
            st.lists(NUMBER, min_size=len(FEATURES) + 1, max_size=9),
            NUMBER,
            st.just([good]),
            st.just(dict(zip(FEATURES[:-1], good, strict=False))),
            st.just({**dict(zip(FEATURES, good, strict=True)), "weight": 1}),
            st.none(),
        )
    )
    rows = [good] * draw(st.integers(0, 3))
    rows.insert(draw(st.integers(0, len(rows))), bad)
    return _post("v1 ragged/wrong rows", "reject", path, {"instances": rows})


@st.composite
def v1_bad_envelope(draw: st.DrawFn, path: str) -> Case:
    """The JSON is valid but is no V1 request."""
    payload = draw(
        st.sampled_from(
            [
                {},
                [],
                [[ROW]],
                1,
                "instances",
                None,
                {"instances": []},
                {"instances": "abc"},
                {"instances": {"a": 1}},
                {"instances": None},
                {"rows": [ROW]},
                {"instances": [[]]},
                {"instances": [ROW], "parameters": "x"},
            ]
        )
    )
    expect = "any" if isinstance(payload, dict) and "parameters" in payload else "reject"
    return _post("v1 bad envelope", expect, path, payload)


@st.composite
def malformed_json(draw: st.DrawFn, path: str) -> Case:
    """Bytes that are not JSON: truncated, invalid UTF-8, lone surrogates, deep nesting."""
    valid = _json({"instances": [ROW]})
    body = draw(
        st.one_of(
            st.integers(1, len(valid) - 1).map(lambda n: valid[:n]),
            st.just(b'{"instances": [[5.1, 3.5, 1.4, 0.2, "\xff\xfe"]]}'),
            st.just(b'{"instances": [[5.1, 3.5, 1.4, 0.2, "\\ud800"]]}'),
            st.integers(600, 5000).map(lambda d: b"[" * d + b"]" * d),
            st.integers(600, 5000).map(lambda d: b'{"a":' * d + b"1" + b"}" * d),
            st.binary(min_size=1, max_size=64).filter(lambda b: not _parses(b)),
            st.just(b""),
        )
    )
    return _post("malformed JSON", "reject", path, body)


def _parses(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


@st.composite
def wrong_content_type(draw: st.DrawFn, path: str) -> Case:
    """A valid JSON body sent as something else (or with no Content-Type at all)."""
    content_type = draw(
        st.sampled_from(
            [
                "text/plain",
                "text/html",
                "application/xml",
                "multipart/form-data; boundary=x",
                "application/x-www-form-urlencoded",
                "image/png",
                "application/json; charset=utf-16",
                "APPLICATION/JSON",
                "",
            ]
        )
    )
    base = content_type.split(";", 1)[0].strip().lower()
    expect = "any" if base in ("application/json", "") else "reject"
    body = _json({"instances": [ROW]})
    return Case("content type", expect, "POST", path, body, (("Content-Type", content_type),))


@st.composite
def unknown_model(draw: st.DrawFn) -> Case:
    name = draw(
        st.one_of(
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=70),
            st.sampled_from(["IRIS", "iris%00", "..%2F..", "%3Cscript%3E", "a" * 300]),
        ).filter(lambda n: n not in (MODEL, FOREST))
    )
    path = draw(
        st.sampled_from(
            [f"/v1/models/{name}:predict", f"/v1/models/{name}:explain", f"/v2/models/{name}/infer"]
        )
    )
    body = _json({"instances": [ROW]} if path.startswith("/v1") else v2_matrix_payload([ROW]))
    return _post("unknown model", "reject", path, body)


def v1_cases(path: str) -> st.SearchStrategy[Case]:
    """Everything a V1 endpoint (``:predict`` or ``:explain``) is sent."""
    rows = 5 if path.endswith(":explain") else 12
    return st.one_of(
        v1_valid(path, rows),
        v1_extreme(path),
        v1_wrong_cell(path),
        v1_non_finite_literal(path),
        v1_ragged(path),
        v1_bad_envelope(path),
        malformed_json(path),
        wrong_content_type(path),
        unknown_model(),
    )


# -- V2 ---------------------------------------------------------------------------------------
NUMERIC_TYPES = ("FP64", "FP32", "INT64", "INT32")


def v2_matrix_payload(rows: list[list[Any]]) -> dict[str, Any]:
    """One BYTES input ``[rows, features]`` in schema order (what a matrix client sends)."""
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(rows), len(FEATURES)],
                "datatype": "BYTES",
                "data": [str(v) for row in rows for v in row],
            }
        ]
    }


@st.composite
def v2_feature_inputs(draw: st.DrawFn, rows: int) -> list[dict[str, Any]]:
    """Valid per-feature inputs: numeric tensors of a numeric datatype, ``color`` as BYTES."""
    inputs = []
    for name in NUMERIC:
        datatype = draw(st.sampled_from(NUMERIC_TYPES))
        value = st.integers(-1000, 1000) if datatype.startswith("INT") else SANE_FLOAT
        shape = draw(st.sampled_from([[rows], [rows, 1]]))
        inputs.append(
            {
                "name": name,
                "shape": shape,
                "datatype": datatype,
                "data": draw(st.lists(value, min_size=rows, max_size=rows)),
            }
        )
    colors = draw(st.lists(TEXT, min_size=rows, max_size=rows))
    inputs.append({"name": "color", "shape": [rows], "datatype": "BYTES", "data": colors})
    return draw(st.permutations(inputs))


@st.composite
def v2_valid(draw: st.DrawFn) -> Case:
    rows = draw(st.integers(1, 10))
    if draw(st.booleans()):
        matrix = [
            [draw(SANE_FLOAT) for _ in NUMERIC] + [draw(st.sampled_from(["red", "blue"]))]
            for _ in range(rows)
        ]
        payload = v2_matrix_payload(matrix)
    else:
        payload = {"inputs": draw(v2_feature_inputs(rows))}
    if draw(st.booleans()):
        payload["id"] = draw(st.text(max_size=20))
    choice = draw(st.integers(0, 2))
    if choice == 1:
        payload["parameters"] = {"probabilities": True}
    elif choice == 2:
        payload["outputs"] = [{"name": "predict"}, {"name": "probabilities"}]
    return _post("v2 valid", "ok", V2_INFER, payload)


BAD_SHAPES = st.one_of(
    st.lists(st.integers(-3, 7), min_size=0, max_size=3),
    st.sampled_from(
        [
            [4294967296, 4294967296],
            [2**62, 4],
            [2**63 - 1, 2],
            [2**64, 1],
            [-1, 5],
            [0, 5],
            [1, -5],
            [10**30],
            [1.5, 5],
            [None, 5],
            [],
            [[1], [5]],
        ]
    ),
)


@st.composite
def v2_bad_shape(draw: st.DrawFn) -> Case:
    """A tensor whose shape does not describe its data (or is no shape at all)."""
    payload = v2_matrix_payload([ROW])
    shape = draw(BAD_SHAPES)
    if shape == [1, len(FEATURES)]:
        shape = [2, len(FEATURES)]
    payload["inputs"][0]["shape"] = shape
    return _post("v2 bad shape", "reject", V2_INFER, payload)


@st.composite
def v2_ragged(draw: st.DrawFn) -> Case:
    """Ragged or nested ``data`` in any datatype."""
    datatype = draw(st.sampled_from(["BYTES", "FP64", "FP32", "INT64"]))
    data = draw(
        st.sampled_from(
            [
                [[1, 2], 3],
                [[1, 2, 3, 4, 5], [1, 2]],
                [1, [2, [3, [4, [5]]]]],
                [[[1]], 2, 3, 4, 5],
                [{"a": 1}, 2, 3, 4, 5],
            ]
        )
    )
    payload = {"inputs": [{"name": "x", "shape": [1, 5], "datatype": datatype, "data": data}]}
    return _post("v2 ragged data", "reject", V2_INFER, payload)


@st.composite
def v2_wrong_datatype(draw: st.DrawFn) -> Case:
    """Unknown datatypes, strings in numeric tensors, numbers that do not fit the datatype."""
    datatype, data, expect = draw(
        st.sampled_from(
            [
                ("FOO", [1, 2, 3, 4, 5], "reject"),
                ("fp64", [1.0, 2.0, 3.0, 4.0, 5.0], "any"),
                ("", [1, 2, 3, 4, 5], "reject"),
                ("FP64", ["1", "2", "3", "4", "red"], "reject"),
                ("INT64", [1.5, 2, 3, 4, 5], "any"),
                ("INT8", [300, 2, 3, 4, 5], "any"),
                ("UINT8", [-1, 2, 3, 4, 5], "any"),
                ("INT64", [2**70, 2, 3, 4, 5], "any"),
                ("UINT64", [2**64, 2, 3, 4, 5], "any"),
                ("BOOL", [True, False, True, False, True], "reject"),
                ("FP16", [1.0, 2.0, 3.0, 4.0, 5.0], "any"),
            ]
        )
    )
    payload = {"inputs": [{"name": "x", "shape": [1, 5], "datatype": datatype, "data": data}]}
    return _post("v2 wrong datatype", expect, V2_INFER, payload)


@st.composite
def v2_non_finite(draw: st.DrawFn) -> Case:
    """Values that are not finite once converted to the tensor's datatype: 400 everywhere."""
    datatype, value = draw(
        st.sampled_from(
            [
                ("FP32", 1e39),
                ("FP32", -3.5e38),
                ("FP32", 1e300),
                ("FP16", 70000.0),
                ("FP16", -1e5),
                ("BYTES", "nan"),
                ("BYTES", "-Infinity"),
                ("BYTES", "1e400"),
            ]
        )
    )
    rows = draw(st.integers(1, 3))
    inputs = draw(v2_feature_inputs(rows))
    target = draw(st.sampled_from([i for i in inputs if i["name"] in NUMERIC]))
    target["datatype"] = datatype
    target["data"] = [value if isinstance(value, str) else float(value)] * rows
    if datatype == "BYTES":
        target["data"] = [str(v) for v in target["data"]]
    return _post("v2 non-finite after conversion", "reject", V2_INFER, {"inputs": inputs})


@st.composite
def v2_bad_structure(draw: st.DrawFn) -> Case:
    """Missing fields, wrong field types, duplicated or unknown inputs, unknown outputs."""
    one = v2_matrix_payload([ROW])["inputs"][0]
    payload = draw(
        st.sampled_from(
            [
                {"inputs": []},
                {"inputs": None},
                {"inputs": "x"},
                {"inputs": [1]},
                {"inputs": [{k: v for k, v in one.items() if k != "shape"}]},
                {"inputs": [{k: v for k, v in one.items() if k != "datatype"}]},
                {"inputs": [{k: v for k, v in one.items() if k != "name"}]},
                {"inputs": [{k: v for k, v in one.items() if k != "data"}]},
                {"inputs": [{**one, "data": None}]},
                {"inputs": [{**one, "data": {"a": 1}}]},
                {"inputs": [{**one, "data": "1,2,3,4,red"}]},
                {"inputs": [{**one, "name": 5}]},
                {"inputs": [one, one]},
                {"inputs": [{**one, "name": "sepal_length"}]},
                {"inputs": [one], "outputs": [{"name": "secret"}]},
                {"inputs": [one], "outputs": "predict"},
                {"inputs": [one], "parameters": [1, 2]},
                {"instances": [ROW]},
            ]
        )
    )
    return _post("v2 bad structure", "reject", V2_INFER, payload)


@st.composite
def v2_bad_header_length(draw: st.DrawFn) -> Case:
    """A JSON body with a bad ``Inference-Header-Content-Length``."""
    value = draw(st.sampled_from(["abc", "-1", "", "1e3", "99999999999999999999", "0", "10", "5"]))
    body = _json(v2_matrix_payload([ROW]))
    return _post(
        "v2 bad Inference-Header-Content-Length",
        "any",
        V2_INFER,
        body,
        **{"Inference_Header_Content_Length": value},
    )


def _binary_tensors(rows: list[list[Any]]) -> tuple[dict[str, Any], bytes]:
    """The binary tensor extension: FP64 numeric inputs and a BYTES ``color``, raw after JSON."""
    inputs, blobs = [], []
    for j, name in enumerate(FEATURES):
        if name in CATEGORICAL:
            raw = b"".join(
                struct.pack("<I", len(s)) + s for s in (str(r[j]).encode() for r in rows)
            )
            datatype = "BYTES"
        else:
            raw = struct.pack(f"<{len(rows)}d", *(float(r[j]) for r in rows))
            datatype = "FP64"
        inputs.append(
            {
                "name": name,
                "shape": [len(rows)],
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        blobs.append(raw)
    return {"inputs": inputs}, b"".join(blobs)


@st.composite
def v2_binary(draw: st.DrawFn) -> Case:
    """Binary tensors: correct ones (200), and ones short, overlong or lying about sizes (4xx)."""
    count = draw(st.integers(1, 6))
    rows = [[draw(SANE_FLOAT) for _ in NUMERIC] + ["red"] for _ in range(count)]
    header, blob = _binary_tensors(rows)
    mutation = draw(
        st.sampled_from(
            [
                "none",
                "one value short",
                "header longer than body",
                "header not a number",
                "header negative",
                "size lies",
                "nan bits",
                "json cut",
            ]
        )
    )
    head = _json(header)
    length = str(len(head))
    expect = "reject"
    if mutation == "none":
        expect = "ok"
    elif mutation == "one value short":
        blob = blob[:-8] if header["inputs"][-1]["datatype"] == "FP64" else blob[:-1]
    elif mutation == "header longer than body":
        length = str(len(head) + len(blob) + draw(st.integers(1, 1000)))
    elif mutation == "header not a number":
        length = draw(st.sampled_from(["abc", "", "1.5", "0x10"]))
    elif mutation == "header negative":
        length = str(-draw(st.integers(1, 50)))
    elif mutation == "size lies":
        header["inputs"][0]["parameters"]["binary_data_size"] = draw(
            st.sampled_from([0, 1, 7, 10**12, -8])
        )
        head = _json(header)
        length = str(len(head))
    elif mutation == "nan bits":
        blob = struct.pack("<d", math.nan) + blob[8:]
    elif mutation == "json cut":
        length = str(len(head) // 2)
    return _post(
        f"v2 binary ({mutation})",
        expect,
        V2_INFER,
        head + blob,
        Content_Type="application/octet-stream",
        Inference_Header_Content_Length=length,
    )


def _binary_case(family: str, rows: list[list[Any]], cut: int) -> Case:
    """A binary-tensor request whose raw data lacks its last ``cut`` bytes."""
    header, blob = _binary_tensors(rows)
    head = _json(header)
    return _post(
        family,
        "reject",
        V2_INFER,
        head + blob[: len(blob) - cut],
        Content_Type="application/octet-stream",
        Inference_Header_Content_Length=str(len(head)),
    )


def v2_cases() -> st.SearchStrategy[Case]:
    """Everything ``/v2/models/<name>/infer`` is sent."""
    return st.one_of(
        v2_valid(),
        v2_bad_shape(),
        v2_ragged(),
        v2_wrong_datatype(),
        v2_non_finite(),
        v2_bad_structure(),
        v2_bad_header_length(),
        v2_binary(),
        malformed_json(V2_INFER),
        wrong_content_type(V2_INFER),
    )


# -- metadata ---------------------------------------------------------------------------------
@st.composite
def metadata_case(draw: st.DrawFn) -> Case:
    """GETs of every metadata endpoint (known and unknown names), other methods on every path."""
    name = draw(
        st.one_of(
            st.just(MODEL),
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~", min_size=1, max_size=40),
            st.sampled_from(["%3Cscript%3E", "%2e%2e", "IRIS", "a" * 256]),
        )
    )
    version = draw(st.sampled_from(["v1", "v2", "1", "latest", "%00", "x" * 80]))
    known = name == MODEL
    paths = [
        ("/v2", True),
        ("/v2/health/live", True),
        ("/v2/health/ready", True),
        ("/v1/models", True),
        (f"/v1/models/{name}", known),
        (f"/v2/models/{name}", known),
        (f"/v2/models/{name}/ready", known),
        (f"/v2/models/{name}/versions/{version}", known and version in ("v1", "v2")),
        (f"/v2/models/{name}/versions/{version}/ready", known and version in ("v1", "v2")),
        ("/metrics", True),
        (f"/{name}", False),
    ]
    path, exists = draw(st.sampled_from(paths))
    method = draw(st.sampled_from(["GET"] * 6 + ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    if method != "GET":
        return Case("metadata other method", "any", method, path, b"{}")
    return Case("metadata GET", "ok" if exists else "reject", "GET", path, None, ())


def wrong_method_on_inference(path: str) -> st.SearchStrategy[Case]:
    return st.sampled_from(["GET", "PUT", "DELETE", "PATCH"]).map(
        lambda method: Case("inference wrong method", "reject", method, path, None, ())
    )


# -- checking ---------------------------------------------------------------------------------
def problems_with(case: Case, status: int, headers: dict[str, str], text: str) -> list[str]:
    """What is wrong with the answer to ``case`` (empty when it is right)."""
    found = []
    if status == 0:
        return ["no answer (connection failed or timed out)"]
    if status >= 500:
        found.append("5xx")
    if 400 <= status < 500 and case.method != "HEAD":
        error = _json_error(headers, text)
        if error:
            found.append(error)
    if case.expect == "ok" and status != 200:
        found.append("valid request refused")
    if case.expect == "reject" and not 400 <= status < 500:
        found.append("invalid request not refused with a 4xx")
    if status == 200 and case.method == "POST":
        found += _null_outputs(text)
    return found


def _json_error(headers: dict[str, str], text: str) -> str | None:
    if not headers.get("content-type", "").startswith(JSON_TYPE):
        return f"4xx not JSON ({headers.get('content-type')})"
    try:
        body = json.loads(text)
    except ValueError:
        return "4xx body does not parse as JSON"
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return "4xx JSON has no 'error' string"
    return None


def _null_outputs(text: str) -> list[str]:
    """A 200 with null (NaN) predictions, probabilities or attributions."""
    try:
        body = json.loads(text)
    except ValueError:
        return ["200 body does not parse as JSON"]
    if not isinstance(body, dict):
        return []
    values: list[Any] = []
    for key in ("predictions", "probabilities"):
        if key in body:
            values += _flat(body[key])
    for output in body.get("outputs") or []:
        values += _flat(output.get("data"))
    for explanation in body.get("explanations") or []:
        values.append(explanation.get("probability", 0))
        values += [a.get("attribution") for a in explanation.get("attributions", [])]
    if any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in values):
        return ["200 with null/non-finite outputs"]
    return []


def _flat(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [item for inner in value for item in _flat(inner)]
    return [value]


# The requests issue 9 reported as 5xx or as a 200 with null probabilities: always sent first.
ISSUE_V2_SEEDS = (
    _post(
        "issue 9: ragged data",
        "reject",
        V2_INFER,
        {"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP64", "data": [[1, 2], 3]}]},
    ),
    _post(
        "issue 9: shape product overflows",
        "reject",
        V2_INFER,
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [4294967296, 4294967296],
                    "datatype": "BYTES",
                    "data": [str(v) for v in ROW],
                }
            ]
        },
    ),
    _post(
        "issue 9: Inference-Header-Content-Length abc",
        "any",
        V2_INFER,
        v2_matrix_payload([ROW]),
        Inference_Header_Content_Length="abc",
    ),
    _binary_case("issue 9: binary tensor one value short", [ROW, ROW], cut=8),
)
ISSUE_V1_SEEDS = (
    _post(
        "issue 9: 1e306 with probabilities",
        "any",
        V1_PREDICT,
        {"instances": [[1e306] * 4 + ["red"]], "parameters": {"probabilities": True}},
    ),
)
ISSUE_EXPLAIN_SEEDS = tuple(
    _post(family, "any", path, {"instances": [row]})
    for path in (V1_EXPLAIN, FOREST_EXPLAIN)
    for family, row in (
        ("issue 9: 1e306 explained", [1e306] * 4 + ["red"]),
        ("issue 9: float32 overflow explained", [3.5e38, 1e39, 1.4, 0.2, "red"]),
    )
)
# The issue's GET /v2/models/NAME/versions/1 answered 501: a version not served is a 4xx,
# a served one its metadata.
ISSUE_METADATA_SEEDS = (
    Case("issue 9: versions endpoint", "reject", "GET", f"/v2/models/{MODEL}/versions/1"),
    Case("issue 9: versions endpoint", "ok", "GET", f"/v2/models/{MODEL}/versions/v1"),
    Case("issue 9: versions endpoint", "ok", "GET", f"/v2/models/{MODEL}/versions/v2/ready"),
)
