"""Validation of manifests against a CustomResourceDefinition's OpenAPI v3 schema.

Two checks, both reported with the JSON path of each problem:

1. ``jsonschema`` validation of the version's ``openAPIV3Schema``. The
   Kubernetes extensions are annotations for jsonschema: they are stripped,
   except ``x-kubernetes-int-or-string`` (turned into ``anyOf: [integer,
   string]`` so both forms validate) and ``nullable`` (adds ``null``).
2. Unknown-field detection, like ``kubectl apply --validate=strict``: CRD
   schemas rarely set ``additionalProperties: false`` (the API server silently
   prunes unknown fields instead), so every key of an object whose schema lists
   ``properties`` must be one of them, unless the schema carries
   ``x-kubernetes-preserve-unknown-fields: true`` or an ``additionalProperties``
   schema. ``metadata`` (an untyped object in every CRD) is checked against
   ObjectMeta's fields.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlops.core.errors import UsageError

__all__ = [
    "load_crd",
    "crd_schema",
    "schema_problems",
    "validate_inferenceservice",
    "validate_manifest",
]

_SCHEMA_LIST_KEYS = ("anyOf", "allOf", "oneOf")
_OBJECT_META_FIELDS = {
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
    "ownerReferences",
    "managedFields",
    "selfLink",
}
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def load_crd(crd_path: Path) -> dict:
    """The CustomResourceDefinition in ``crd_path`` (YAML or JSON)."""
    path = Path(crd_path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise UsageError(f"cannot read CRD {path}: {exc}") from exc
    return _load_crd_cached(str(path.resolve()), stat.st_mtime_ns)


@lru_cache(maxsize=8)
def _load_crd_cached(path: str, _mtime_ns: int) -> dict:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as handle:
        docs = [doc for doc in yaml.load_all(handle, Loader=loader) if doc]
    crds = [doc for doc in docs if doc.get("kind") == "CustomResourceDefinition"]
    if not crds:
        raise UsageError(f"{path} holds no CustomResourceDefinition")
    return crds[0]


def crd_schema(crd_path: Path, version: str = "v1beta1") -> dict:
    """The raw ``openAPIV3Schema`` of ``version`` in the CRD."""
    crd = load_crd(crd_path)
    for entry in crd.get("spec", {}).get("versions", []):
        if entry.get("name") == version:
            schema = (entry.get("schema") or {}).get("openAPIV3Schema")
            if not schema:
                raise UsageError(f"CRD {crd_path} version {version} has no openAPIV3Schema")
            return schema
    raise UsageError(f"CRD {crd_path} has no version {version!r}")


# -- OpenAPI v3 (+ Kubernetes extensions) -> JSON Schema ------------------------


def _to_jsonschema(node: Any) -> Any:
    """A JSON Schema equivalent of one CRD schema node (a fresh copy)."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: _to_jsonschema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = _to_jsonschema(value)
        elif key in _SCHEMA_LIST_KEYS:
            out[key] = [_to_jsonschema(sub) for sub in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and "type" in out:
        out["type"] = (
            [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
        )
    return out


@lru_cache(maxsize=8)
def _validator_for(path: str, mtime_ns: int, version: str):
    try:
        from jsonschema import Draft4Validator
    except ImportError as exc:  # a test extra; the runtime image may lack it
        raise UsageError("CRD validation needs the 'jsonschema' package") from exc

    schema = _to_jsonschema(crd_schema(Path(path), version))
    return Draft4Validator(schema)


def _json_path(parts) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _unknown_fields(value: Any, schema: dict, parts: list, problems: list[str]) -> None:
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        for key, sub in value.items():
            if properties and key in properties:
                _unknown_fields(sub, properties[key], [*parts, key], problems)
            elif isinstance(additional, dict):
                _unknown_fields(sub, additional, [*parts, key], problems)
            elif properties and not preserve and additional is not True:
                allowed = ", ".join(sorted(properties))
                problems.append(
                    f"{_json_path([*parts, key])}: unknown field {key!r} (allowed: {allowed})"
                )
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _unknown_fields(item, schema["items"], [*parts, index], problems)


def _metadata_problems(manifest: dict) -> list[str]:
    """What the CRD leaves to Kubernetes: ObjectMeta fields, name, namespace, labels."""
    meta = manifest.get("metadata")
    if not isinstance(meta, dict):
        return ["$.metadata: required object is missing"]
    problems = []
    for key in meta:
        if key not in _OBJECT_META_FIELDS:
            problems.append(f"$.metadata.{key}: unknown field {key!r} (not an ObjectMeta field)")
    name = meta.get("name")
    if not isinstance(name, str) or not _DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
        problems.append(f"$.metadata.name: {name!r} is not a DNS-1123 subdomain")
    namespace = meta.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str) or not _DNS1123_LABEL.match(namespace) or len(namespace) > 63
    ):
        problems.append(f"$.metadata.namespace: {namespace!r} is not a DNS-1123 label")
    for key in ("labels", "annotations"):
        problems.extend(_string_map_problems(meta.get(key), key))
    return problems


def _string_map_problems(mapping: object, key: str) -> list[str]:
    """``metadata.labels`` / ``annotations``: absent, or an object of strings."""
    if mapping is None:
        return []
    if not isinstance(mapping, dict):
        return [f"$.metadata.{key}: must be an object of strings"]
    return [
        f"$.metadata.{key}.{item_key}: {item_value!r} is not of type 'string'"
        for item_key, item_value in mapping.items()
        if not isinstance(item_value, str)
    ]


def schema_problems(manifest: dict, crd_path: Path, version: str | None = None) -> list[str]:
    """Every problem of ``manifest`` against the CRD, each prefixed by its JSON path.

    ``version`` defaults to the one in the manifest's ``apiVersion``.
    """
    if not isinstance(manifest, dict):
        return ["$: the manifest must be an object"]
    crd = load_crd(crd_path)
    group = crd.get("spec", {}).get("group", "")
    kind = crd.get("spec", {}).get("names", {}).get("kind", "")
    problems: list[str] = []
    api_version = manifest.get("apiVersion", "")
    api_group, _, api_ver = str(api_version).rpartition("/")
    if api_group != group:
        problems.append(f"$.apiVersion: {api_version!r} is not in group {group!r}")
    version = version or api_ver or "v1beta1"
    if manifest.get("kind") != kind:
        problems.append(f"$.kind: {manifest.get('kind')!r} is not {kind!r}")

    path = Path(crd_path).resolve()
    validator = _validator_for(str(path), path.stat().st_mtime_ns, version)
    for error in sorted(
        validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path))
    ):
        if list(error.absolute_path)[:1] == ["metadata"]:
            continue  # the CRD leaves metadata untyped; checked below
        problems.append(f"{_json_path(error.absolute_path)}: {error.message}")
    raw = crd_schema(crd_path, version)
    unknown: list[str] = []
    for key, value in manifest.items():
        # The envelope is checked above against the CRD's group and kind; some CRDs
        # (Istio's) describe spec/status only, as the API server owns the envelope.
        if key in ("metadata", "apiVersion", "kind"):
            continue
        if key in raw.get("properties", {}):
            _unknown_fields(value, raw["properties"][key], [key], unknown)
        else:
            unknown.append(f"$.{key}: unknown field {key!r}")
    problems.extend(unknown)
    problems.extend(_metadata_problems(manifest))
    return problems


def validate_manifest(manifest: dict, crd_path: Path, version: str | None = None) -> None:
    """Raises ``UsageError`` listing every problem of ``manifest`` against the CRD."""
    problems = schema_problems(manifest, crd_path, version)
    if problems:
        kind = manifest.get("kind", "manifest") if isinstance(manifest, dict) else "manifest"
        name = (manifest.get("metadata") or {}).get("name") if isinstance(manifest, dict) else None
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise UsageError(
            f"{kind} {name!r} does not match {os.path.basename(str(crd_path))}:\n{lines}"
        )


def validate_inferenceservice(manifest: dict, crd_path: Path) -> None:
    """Validates an InferenceService against the CRD's ``v1beta1`` schema.

    Args:
        manifest: The InferenceService as a dict.
        crd_path: ``serving.kserve.io_inferenceservices.yaml``.

    Raises:
        UsageError: one line per problem, each starting with its JSON path
            (``$.spec.predictor.containers[0].ports[0].containerPort: ...``).
    """
    validate_manifest(manifest, crd_path, "v1beta1")
