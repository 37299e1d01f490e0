"""YAML as GitHub Actions reads it, for the tests that validate workflow files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

__all__ = ["WorkflowLoader", "load_workflow"]


class WorkflowLoader(yaml.SafeLoader):
    """YAML 1.2 booleans only: ``on``, ``off``, ``yes`` and ``no`` stay strings, as GitHub reads them."""


WorkflowLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
WorkflowLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_workflow(path: Path) -> dict[str, Any]:
    """A workflow file, its bare ``on:`` key kept as the string ``"on"``."""
    return yaml.load(
        path.read_text(encoding="utf-8"), Loader=WorkflowLoader
    )  # a SafeLoader subclass
