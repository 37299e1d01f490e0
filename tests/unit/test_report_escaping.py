"""Hostile values and column names never become markup in the drift report (issue 9, finding 2).

A categorical value a client sends reaches the inference log, and a training value
reaches the model's drift reference; both end up in Evidently's HTML report, whose
data is JSON inside a ``<script>`` block. The reports here are real ones
(:func:`render_report_html`), read back with the stdlib HTML parser the way a
browser tokenises them.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.monitoring.drift import compute_drift
from mlops.monitoring.report import ReportLayoutError, escape_script_data, render_report_html

pytestmark = pytest.mark.filterwarnings("ignore")

CLOSE_SCRIPT = "</script><img src=x onerror=alert(1)>"
HOSTILE_VALUES = [
    CLOSE_SCRIPT,
    "</SCRIPT ><script>alert(2)</script>",
    "<!--<script>alert(3)//",
    "a & b &amp; <b>bold</b>",
    "line\u2028separator\u2029paragraph",
]
HOSTILE_COLUMN = "<svg onload=alert(4)></script>"
ROWS = 120


class Page(HTMLParser):
    """Every start tag with its attributes, and the text of every <script> element."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data

    def tag_counts(self) -> Counter[str]:
        return Counter(tag for tag, _ in self.tags)

    def attribute_names(self) -> set[str]:
        return {name for _, attrs in self.tags for name, _ in attrs}


DATA_LINE = re.compile(r"^\s*var (\w+) = (\{.*\});\s*$", flags=re.MULTILINE)


def data_documents(page: Page) -> dict[str, Any]:
    """The report's embedded JSON documents, parsed (``var NAME = {...};`` lines of the scripts)."""
    return {
        match[1]: json.loads(match[2])
        for script in page.scripts
        for match in DATA_LINE.finditer(script)
    }


def report_name(documents: dict[str, Any]) -> str:
    """The dashboard document's name (the other one is ``additional_graphs_<name>``)."""
    return next(name for name in documents if not name.startswith("additional_graphs_"))


def strings_in(value: Any) -> set[str]:
    """Every string (keys included) in a parsed JSON value."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set(value).union(*(strings_in(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(strings_in(v) for v in value))
    return set()


def frames(values: list[str], column: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    palette = ["red", "green", *values]
    reference = pd.DataFrame(
        {
            "size": rng.normal(0, 1, ROWS),
            "colour": rng.choice(palette, ROWS),
            column: rng.normal(0, 1, ROWS),
        }
    )
    current = pd.DataFrame(
        {
            "size": rng.normal(1, 1, ROWS),
            "colour": rng.choice(palette[1:], ROWS),  # drifted: the hostile ones dominate
            column: rng.normal(0.5, 1, ROWS),
        }
    )
    return reference, current


def render(tmp_path: Path, name: str, values: list[str], column: str) -> str:
    reference, current = frames(values, column, seed=3)
    verdict = compute_drift(reference, current, categorical=["colour"])
    out = render_report_html(
        reference,
        current,
        tmp_path / name,
        categorical=["colour"],
        max_rows=ROWS // 2,  # sampled: the banner, with its per-column table, is on the page too
        verdict=verdict,
    )
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> str:
    safe = [f"plain-{i}" for i in range(len(HOSTILE_VALUES))]
    return render(tmp_path_factory.mktemp("clean"), "clean.html", safe, "width")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> str:
    return render(
        tmp_path_factory.mktemp("hostile"), "hostile.html", HOSTILE_VALUES, HOSTILE_COLUMN
    )


def test_hostile_values_and_column_names_add_no_element_or_attribute(clean, hostile):
    clean_page, hostile_page = Page(clean), Page(hostile)
    assert hostile_page.tag_counts() == clean_page.tag_counts()
    assert hostile_page.tag_counts()["script"] == clean_page.tag_counts()["script"] == 4
    assert not {"img", "svg", "b"} & set(hostile_page.tag_counts())
    assert hostile_page.attribute_names() == clean_page.attribute_names()
    assert not any(name.startswith("on") for name in hostile_page.attribute_names())


def test_hostile_text_appears_only_escaped(hostile):
    for text in [*HOSTILE_VALUES, HOSTILE_COLUMN]:
        assert text not in hostile
    data_lines = [m[0] for script in Page(hostile).scripts for m in DATA_LINE.finditer(script)]
    assert len(data_lines) == 2
    for line in data_lines:  # inside <script>: JSON escapes only
        assert not {"<", ">", "&", "\u2028", "\u2029"} & set(line)
    assert "\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e" in hostile
    assert "\u2028" not in hostile and "\u2029" not in hostile
    # The banner's per-column table is HTML: escaped the HTML way.
    assert html.escape(HOSTILE_COLUMN) in hostile


def test_report_still_renders_the_same_values(clean, hostile):
    documents, clean_documents = data_documents(Page(hostile)), data_documents(Page(clean))
    name = report_name(documents)
    assert set(documents) == {name, f"additional_graphs_{name}"}
    strings = set().union(*(strings_in(d) for d in documents.values()))
    for text in HOSTILE_VALUES:  # the categories, exactly, once JavaScript reads the JSON
        assert text in strings
    assert any(HOSTILE_COLUMN in s for s in strings)
    # The same report as the clean one: escaping changed characters, not content.
    clean_report = clean_documents[report_name(clean_documents)]
    assert documents[name]["name"] == clean_report["name"] == "Report"
    assert len(documents[name]["widgets"]) == len(clean_report["widgets"])
    assert len(documents[f"additional_graphs_{name}"]) == len(
        clean_documents[f"additional_graphs_{report_name(clean_documents)}"]
    )


def test_escape_script_data_is_exact_json():
    value = {"x": [CLOSE_SCRIPT, "a&b", "\u2028"], CLOSE_SCRIPT: 1.5}
    page = (
        "<html><head><script>\n"
        f"    var metric_1 = {json.dumps(value, ensure_ascii=False)};\n"
        f"    var additional_graphs_metric_1 = {json.dumps({'k': CLOSE_SCRIPT})};\n"
        "</script></head><body></body></html>"
    )
    escaped = escape_script_data(page)
    assert CLOSE_SCRIPT not in escaped and "\u2028" not in escaped
    documents = data_documents(Page(escaped))
    assert documents == {"metric_1": value, "additional_graphs_metric_1": {"k": CLOSE_SCRIPT}}


@pytest.mark.parametrize(
    "body",
    [
        "",  # no data at all
        "    var metric_1 = {};\n",  # one document only
        "    var metric_1 = {};\n    var other = {};\n",  # not Evidently's pair
    ],
)
def test_unexpected_layout_fails_closed(body):
    with pytest.raises(ReportLayoutError, match="unexpected layout"):
        escape_script_data(f"<html><head><script>\n{body}</script></head></html>")
