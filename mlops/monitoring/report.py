r"""Evidently's data drift HTML report, rendered from a bounded sample of each frame.

The verdicts of a drift check come from :func:`mlops.monitoring.drift.compute_drift`
on the full data; this report is for people. Evidently 0.7's ``DataDriftPreset``
runs on at most ``max_rows`` rows per frame, with the same columns and kinds as
the check (the model's feature schema), and when a frame was sampled a banner
right after ``<body>`` says so and lists the full-data verdicts.

Column names and categorical values come from clients (the inference log) and
from training data, so the page is made safe before it is written: Evidently
embeds the report data as JSON inside a ``<script>`` block, where HTML escaping
does not apply and a value such as ``</script><img src=x onerror=...>`` would end
the block; every ``<``, ``>``, ``&``, U+2028 and U+2029 in that JSON is written
as a ``\uXXXX`` escape instead (the same string once JavaScript parses it), and
the banner's text is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mlops.core.errors import DataError, MlopsError
from mlops.model.schema import FeatureSchema, coerce
from mlops.monitoring.drift import DriftResult, check_frames, drift_schema

__all__ = ["escape_script_data", "render_report_html", "run_data_drift_preset"]

# Evidently 0.7's page template (evidently/legacy/utils/dashboard.py) puts the
# report data on two lines of one <script> block:
#     var metric_<hex> = {...JSON...};
#     var additional_graphs_metric_<hex> = {...JSON...};
# json.dumps never writes a raw line break (inside strings it is "\n"), so each
# JSON document is exactly the rest of its line and no value can fake a line.
_DATA_LINE = re.compile(
    r"^(?P<head>[ \t]*var (?P<name>[A-Za-z_$][\w$]*) = )(?P<json>\{.*\});[ \t]*$",
    flags=re.MULTILINE,
)
# Only these characters can end a <script> block or a JavaScript string early;
# outside JSON strings they never occur, so escaping them everywhere is exact.
_SCRIPT_SAFE = str.maketrans(
    {
        "<": "\\u003c",
        ">": "\\u003e",
        "&": "\\u0026",
        "\u2028": "\\u2028",
        "\u2029": "\\u2029",
    }
)


class ReportLayoutError(MlopsError):
    """Evidently's page did not have the layout :func:`escape_script_data` makes safe."""


def escape_script_data(page: str) -> str:
    r"""Evidently's report page with its embedded JSON safe inside ``<script>``.

    Args:
        page: The page from Evidently's ``get_html_str(as_iframe=False)``.

    Returns:
        The same page, with ``<``, ``>``, ``&``, U+2028 and U+2029 in the two
        data documents written as JSON ``\uXXXX`` escapes.

    Raises:
        ReportLayoutError: The page does not hold exactly the two data documents
            (``X`` and ``additional_graphs_X``) as valid JSON; writing it unescaped
            could let a value run as script, so no page is better (exit 1).
    """
    found: list[str] = []

    def escape(match: re.Match[str]) -> str:
        try:
            json.loads(match["json"])
        except ValueError:
            return match[0]  # not one of the data documents: left as it is
        found.append(match["name"])
        return match["head"] + match["json"].translate(_SCRIPT_SAFE) + ";"

    escaped = _DATA_LINE.sub(escape, page)
    if len(found) != 2 or found[1] != f"additional_graphs_{found[0]}":
        raise ReportLayoutError(
            "Evidently's report page has an unexpected layout (data documents found: "
            f"{found}); not writing a report whose data could not be escaped"
        )
    return escaped


def run_data_drift_preset(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    schema: FeatureSchema,
    drift_share_threshold: float,
) -> Any:
    """Runs Evidently's ``DataDriftPreset`` (with its tests) on the schema's features.

    Both frames are given to Evidently as model input (:func:`coerce`) with an
    explicit ``DataDefinition`` from the schema's kinds, so Evidently infers nothing.

    Returns:
        Evidently's snapshot (``.dict()`` for the values, ``.get_html_str()`` for the page).
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=schema.numeric_names,
        categorical_columns=schema.categorical_names,
        text_columns=[],
        datetime_columns=[],
        unknown_columns=[],
        list_columns=[],
    )
    ref_ds = Dataset.from_pandas(
        coerce(reference, schema, source="reference data"), data_definition=definition
    )
    cur_ds = Dataset.from_pandas(
        coerce(current, schema, source="current data"), data_definition=definition
    )
    report = Report(
        [DataDriftPreset(columns=list(schema.names), drift_share=drift_share_threshold)],
        include_tests=True,
    )
    return report.run(current_data=cur_ds, reference_data=ref_ds)


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed).sort_index()


def _banner(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    ref_sample: pd.DataFrame,
    cur_sample: pd.DataFrame,
    seed: int,
    verdict: DriftResult | None,
) -> str:
    lines = [
        "<strong>Sampled report.</strong> The drift verdicts come from the full data "
        f"(reference: {len(reference):,} rows, current: {len(current):,} rows). "
        f"The charts and the scores shown below come from a random sample "
        f"(reference: {len(ref_sample):,} rows, current: {len(cur_sample):,} rows, seed {seed}) "
        "and may differ slightly from the full-data verdicts."
    ]
    if verdict is not None:
        lines.extend(_verdict_lines(verdict))
    return (
        '<div id="mlops-sample-note" style="background:#fff3cd;color:#533f03;'
        "border:1px solid #ffe08a;padding:10px 14px;margin:8px;font-family:sans-serif;"
        'font-size:14px">' + "".join(lines) + "</div>"
    )


def _verdict_lines(verdict: DriftResult) -> list[str]:
    """The full-data verdict and its per-column table, as HTML."""
    esc = html.escape
    state = "DETECTED" if verdict.drift_detected else "not detected"
    rows = "".join(
        f"<tr><td>{esc(str(c.name))}</td><td>{esc(c.method)}</td>"
        f"<td>{c.score:.6g}</td><td>{c.threshold:g}</td>"
        f"<td>{'drift' if c.drifted else 'no drift'}</td></tr>"
        for c in verdict.columns.values()
    )
    return [
        f"<br>Full-data verdict: dataset drift <strong>{state}</strong> "
        f"({len(verdict.drifted_columns)} of {len(verdict.columns)} columns drifted, "
        f"share {verdict.drift_share:.3f}, threshold {verdict.share_threshold:g}).",
        '<table style="margin-top:6px;border-collapse:collapse" border="1" cellpadding="3">'
        "<tr><th>column</th><th>method</th><th>score (full data)</th><th>threshold</th>"
        f"<th>verdict (full data)</th></tr>{rows}</table>",
    ]


def _insert_after_body(page: str, fragment: str) -> str:
    match = re.search(r"<body[^>]*>", page, flags=re.IGNORECASE)
    if match is None:
        return fragment + page
    return page[: match.end()] + fragment + page[match.end() :]


def render_report_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    out_path: Path,
    *,
    schema: FeatureSchema | None = None,
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    max_rows: int = 20_000,
    seed: int = 0,
    verdict: DriftResult | None = None,
    drift_share_threshold: float | None = None,
) -> Path:
    """Render Evidently's data drift HTML report from at most ``max_rows`` rows per frame.

    When either frame is sampled, a banner is inserted right after ``<body>`` saying the
    verdicts come from the full data and the charts from the sample (plus the full-data
    per-column verdicts when ``verdict`` is given).

    Args:
        reference: Reference data.
        current: Current data.
        out_path: Where the page goes (parent folders are created).
        schema: The model's feature schema (kinds from it); see
            :func:`mlops.monitoring.drift.drift_schema` for ``columns`` and ``categorical``.
        columns: Only these columns.
        categorical: Without ``schema``: columns that are categorical whatever their dtype.
        max_rows: Sample size per frame.
        seed: Sampling seed (the current frame uses ``seed + 1``).
        verdict: The full-data result, listed in the banner.
        drift_share_threshold: Dataset drift threshold (default: the verdict's, else 0.5).

    Returns:
        ``out_path``.

    Raises:
        DataError: Empty frames, no shared column, or ``max_rows`` below 1.
        ReportLayoutError: Evidently's page could not be made safe (see
            :func:`escape_script_data`).
    """
    check_frames(reference, current, min_rows=1)
    if max_rows < 1:
        raise DataError(f"max_rows must be positive, got {max_rows}")
    if drift_share_threshold is None:
        drift_share_threshold = verdict.share_threshold if verdict is not None else 0.5
    schema = drift_schema(reference, current, columns, categorical, schema)
    cols = list(schema.names)
    ref_sample = _sample(reference[cols], max_rows, seed)
    cur_sample = _sample(current[cols], max_rows, seed + 1)
    sampled = len(ref_sample) < len(reference) or len(cur_sample) < len(current)

    snapshot = run_data_drift_preset(ref_sample, cur_sample, schema, drift_share_threshold)
    # Escaped before anything else reads the page: a value must not be taken for <body>.
    page = escape_script_data(snapshot.get_html_str(as_iframe=False))
    if sampled:
        page = _insert_after_body(
            page, _banner(reference, current, ref_sample, cur_sample, seed, verdict)
        )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(page, encoding="utf-8")
    return out_path
