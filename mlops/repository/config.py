"""``mlops.yaml``: how a model repository is trained, read and checked before anything runs.

The file is a mapping of a fixed set of keys (:data:`KEYS`); anything else is refused,
so a typo is an error and not a silently ignored setting. Every message starts with
``mlops.yaml:`` and names the key. Paths it names are relative to the repository and
must stay inside it, symlinks included.

The run's parameters (``-p target_column=...``) and the file meet in
:func:`effective_parameters`: a parameter that is given wins, then the file, then the
default, and the caller learns which one each value came from.

The model name is only checked to be text here; its DNS-label rule lives in
:mod:`mlops.model.registry`, a layer above, which checks it where the name is used.
"""

from __future__ import annotations

import json
import keyword
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mlops.core.errors import UsageError
from mlops.repository.tree import iter_entries

logger = logging.getLogger(__name__)

CONFIG_FILE = "mlops.yaml"
DEFAULT_REQUIREMENTS = "requirements.txt"
#: Default of ``min_accuracy`` when neither a parameter nor ``mlops.yaml`` sets it.
DEFAULT_MIN_ACCURACY = 0.8
#: ``mlops.yaml`` is a few lines; anything larger is not one.
MAX_CONFIG_BYTES = 64 * 1024
#: Every key ``mlops.yaml`` may hold.
KEYS = (
    "name",
    "target",
    "entry_point",
    "drop_columns",
    "categorical_columns",
    "min_accuracy",
    "params",
    "model",
    "requirements",
    "quality",
)
_PREFIX = f"{CONFIG_FILE}: "


def _fail(message: str) -> UsageError:
    return UsageError(_PREFIX + message)


@dataclass(frozen=True)
class RepoConfig:
    """The checked contents of ``mlops.yaml``.

    Attributes:
        name: Model name, or None (then ``-p model_name=...`` must give it).
        target: Target column, or None (then ``-p target_column=...`` must give it).
        entry_point: ``"module:function"`` that trains the model.
        drop_columns: Columns removed before training.
        categorical_columns: Columns treated as categories.
        min_accuracy: Holdout accuracy the release needs, or None (the default applies).
        params: Keyword arguments for the entry point (JSON values).
        model: Relative path of a checked-in model file, or None.
        requirements: Relative path of the requirements file.
        quality: Relative paths the code-quality gate checks (empty: every module but tests).
    """

    name: str | None
    target: str | None
    entry_point: str
    drop_columns: tuple[str, ...] = ()
    categorical_columns: tuple[str, ...] = ()
    min_accuracy: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    requirements: str = DEFAULT_REQUIREMENTS
    quality: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON values (tuples as lists), every key present."""
        return {
            "name": self.name,
            "target": self.target,
            "entry_point": self.entry_point,
            "drop_columns": list(self.drop_columns),
            "categorical_columns": list(self.categorical_columns),
            "min_accuracy": self.min_accuracy,
            "params": json.loads(json.dumps(self.params)),
            "model": self.model,
            "requirements": self.requirements,
            "quality": list(self.quality),
        }


# -- reading -----------------------------------------------------------------------------------
def _parse_yaml(text: str) -> Any:
    import yaml

    try:
        # Aliases are refused before loading: a few of them nest into an exponentially
        # large value ("billion laughs") that every later check would walk.
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise _fail("YAML anchors and aliases (*name) are not accepted")
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail(f"not valid YAML: {exc}") from None


def load_config(repo_dir: Path) -> RepoConfig:
    """Reads and checks ``mlops.yaml`` of a repository.

    Args:
        repo_dir: The repository's folder.

    Returns:
        The checked configuration.

    Raises:
        UsageError: no ``mlops.yaml``, not YAML, not a mapping, an unknown key, a value of
            the wrong kind, or a path that is missing or leaves the repository (named).
    """
    repo_dir = Path(repo_dir)
    path = repo_dir / CONFIG_FILE
    if not path.is_file():
        raise UsageError(f"no {CONFIG_FILE} in {repo_dir}")
    if not path.resolve().is_relative_to(repo_dir.resolve()):
        raise _fail("is a symlink leaving the repository")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise _fail(f"larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _fail("not UTF-8 text") from None
    raw = _parse_yaml(text)
    if not isinstance(raw, Mapping):
        raise _fail(f"must be a mapping of settings, not {type(raw).__name__}")
    unknown = sorted(str(key) for key in raw if key not in KEYS)
    if unknown:
        raise _fail(f"unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(KEYS)}")
    if "entry_point" not in raw:
        raise _fail('entry_point is required ("module:function")')
    requirements = raw.get("requirements")
    config = RepoConfig(
        name=_optional_text(raw, "name"),
        target=_optional_text(raw, "target"),
        entry_point=_entry_point(raw["entry_point"]),
        drop_columns=split_columns(raw.get("drop_columns"), "drop_columns"),
        categorical_columns=split_columns(raw.get("categorical_columns"), "categorical_columns"),
        min_accuracy=_min_accuracy(raw.get("min_accuracy")),
        params=_params(raw.get("params")),
        model=None if raw.get("model") is None else _relative(raw["model"], "model"),
        requirements=(
            DEFAULT_REQUIREMENTS
            if requirements is None
            else _relative(requirements, "requirements")
        ),
        quality=_quality(raw.get("quality")),
    )
    # The paths are checked against the folder now, so a broken file fails before a run.
    model_path(repo_dir, config)
    if requirements is not None:
        _inside(repo_dir, config.requirements, "requirements", must_exist=True)
    quality_paths(repo_dir, config)
    logger.debug("read %s of %s", CONFIG_FILE, repo_dir)
    return config


# -- values ------------------------------------------------------------------------------------
def _optional_text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{key} must be a non-empty string, not {value!r}")
    return value.strip()


def _is_dotted_name(text: str) -> bool:
    parts = text.split(".")
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in parts)


def _entry_point(value: Any) -> str:
    shape = 'entry_point must be "module:function" (a dotted module path and a function name)'
    if not isinstance(value, str):
        raise _fail(f"{shape}, not {value!r}")
    module, colon, function = value.strip().partition(":")
    if not colon or not _is_dotted_name(module) or not _is_dotted_name(function):
        raise _fail(f"{shape}, not {value!r}")
    if "." in function:
        raise _fail(f"{shape}, not {value!r}")
    return f"{module}:{function}"


def split_columns(value: Any, key: str, origin: str = CONFIG_FILE) -> tuple[str, ...]:
    """Column names from a list of strings or one comma-separated string.

    Args:
        value: The list, the string, or None (no columns).
        key: The setting's name, for messages.
        origin: Where the value comes from, for messages (``mlops.yaml`` or ``parameter``).

    Returns:
        The names, blanks removed, in the order given.

    Raises:
        UsageError: not a list of strings or a string, an empty name in a list, or a
            name given twice.
    """
    where = f"{origin}: " if origin == CONFIG_FILE else f"{origin} "
    if value is None:
        return ()
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list):
        if not all(isinstance(item, str) and item.strip() for item in value):
            raise UsageError(f"{where}{key} must list non-empty column names, not {value!r}")
        names = [item.strip() for item in value]
    else:
        raise UsageError(f"{where}{key} must be a list of column names or a comma-separated string")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"{where}{key} names {', '.join(repeated)} more than once")
    return tuple(names)


def _min_accuracy(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"min_accuracy must be a number between 0 and 1, not {value!r}")
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise _fail(f"min_accuracy must be between 0 and 1, not {value!r}")
    return float(value)


def _check_json(value: Any, where: str) -> None:
    """Holds a parameter to JSON values: it is recorded in the model's metadata."""
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(f"{where} must be a finite number, not {value!r}")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(f"{where} has a key that is not a string: {key!r}")
            _check_json(item, f"{where}.{key}")
        return
    raise _fail(f"{where} must be a string, number, boolean, list or mapping, not {value!r}")


def _params(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(f"params must be a mapping of keyword arguments, not {value!r}")
    for key in value:
        if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
            raise _fail(f"params key {key!r} is not a valid Python keyword-argument name")
    _check_json(value, "params")
    return dict(value)


def _relative(value: Any, key: str) -> str:
    """A relative path as written: text, not absolute, no ``..`` (resolution comes later)."""
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{key} must be a relative path, not {value!r}")
    text = value.strip()
    path = PurePosixPath(text)
    if "\\" in text or path.is_absolute() or ".." in path.parts:
        raise _fail(f"{key} {text!r} must be a relative path inside the repository")
    return path.as_posix()


def _quality(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise _fail(f"quality must be a list of relative paths, not {value!r}")
    return tuple(_relative(item, "quality") for item in items)


# -- paths -------------------------------------------------------------------------------------
def _inside(repo_dir: Path, relative: str, key: str, must_exist: bool) -> Path | None:
    """``repo_dir / relative`` when it stays inside the repository once symlinks resolve.

    Returns:
        The path (unresolved, below ``repo_dir``), or None when it does not exist and
        ``must_exist`` is false.
    """
    path = Path(repo_dir) / _relative(relative, key)
    base = Path(repo_dir).resolve()
    if not path.resolve().is_relative_to(base):
        raise _fail(f"{key} {relative!r} leaves the repository (through a symlink)")
    if not path.exists():
        if must_exist:
            raise _fail(f"{key} {relative!r} does not exist in the repository")
        return None
    return path


def model_path(repo_dir: Path, config: RepoConfig) -> Path | None:
    """The checked-in model file ``mlops.yaml`` names, or None when it names none.

    The file need not be ``.skops``: the model-scan gate rejects other formats with a
    reason, which says more than a configuration error would.

    Raises:
        UsageError: the file is missing, not a file, or outside the repository.
    """
    if config.model is None:
        return None
    path = _inside(repo_dir, config.model, "model", must_exist=True)
    assert path is not None  # must_exist
    if not path.is_file():
        raise _fail(f"model {config.model!r} is not a file")
    return path


def requirements_path(repo_dir: Path, config: RepoConfig) -> Path | None:
    """The repository's requirements file.

    Returns:
        Its path, or None when the default ``requirements.txt`` is absent.

    Raises:
        UsageError: a file ``mlops.yaml`` names is missing, or a path leaves the repository.
    """
    named = config.requirements != DEFAULT_REQUIREMENTS
    path = _inside(repo_dir, config.requirements, "requirements", must_exist=named)
    if path is not None and not path.is_file():
        raise _fail(f"requirements {config.requirements!r} is not a file")
    return path


def _is_test_module(relative: Path) -> bool:
    name = relative.name
    in_tests = "tests" in relative.parts[:-1]
    return (
        in_tests or name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"
    )


def quality_paths(repo_dir: Path, config: RepoConfig) -> list[Path]:
    """What the code-quality gate checks.

    Args:
        repo_dir: The repository's folder.
        config: Its configuration.

    Returns:
        The ``quality`` paths of ``mlops.yaml`` (files or folders), or by default every
        ``*.py`` file of the repository except tests (``tests/``, ``test_*.py``,
        ``*_test.py``, ``conftest.py``), version control, caches, venvs and symlinks;
        sorted, below ``repo_dir``.

    Raises:
        UsageError: a named path is missing or leaves the repository.
    """
    repo_dir = Path(repo_dir)
    if config.quality:
        paths = [_inside(repo_dir, item, "quality", must_exist=True) for item in config.quality]
        return [path for path in paths if path is not None]
    return [
        repo_dir / relative
        for relative in iter_entries(repo_dir)
        if relative.suffix == ".py"
        and not (repo_dir / relative).is_symlink()
        and not _is_test_module(relative)
    ]


# -- run parameters ----------------------------------------------------------------------------
#: Run parameter -> the ``mlops.yaml`` attribute it defaults to.
_PARAMETER_KEYS = {
    "target_column": "target",
    "model_name": "name",
    "min_accuracy": "min_accuracy",
    "drop_columns": "drop_columns",
    "categorical_columns": "categorical_columns",
}
_REQUIRED = {
    "target_column": "target column not set: give `target` in mlops.yaml or -p target_column=...",
    "model_name": "model name not set: give `name` in mlops.yaml or -p model_name=...",
}


def _given_accuracy(value: Any) -> float | None:
    """A ``min_accuracy`` parameter, or None when not given (the pipelines pass -1.0)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise UsageError(f"parameter min_accuracy must be a number between 0 and 1, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(
            f"parameter min_accuracy must be a number between 0 and 1, not {value!r}"
        ) from None
    if math.isnan(number) or number > 1:
        raise UsageError(f"parameter min_accuracy must be between 0 and 1, not {value!r}")
    if number == -1:
        return None
    if number < 0:
        raise UsageError(
            f"parameter min_accuracy must be between 0 and 1 (or -1: not given), not {value!r}"
        )
    return number


def _given_text(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"parameter {key} must be a string, not {value!r}")
    return value.strip() or None


def effective_parameters(
    config: RepoConfig, overrides: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The run's ``target_column``, ``model_name``, ``min_accuracy`` and columns, and where each came from.

    A parameter wins when it is given (a non-empty string; for ``min_accuracy`` a
    number >= 0, the pipelines pass -1.0 for "not given"), else ``mlops.yaml``, else
    the default (``min_accuracy`` 0.8, no dropped or categorical columns).

    Args:
        config: The repository's configuration.
        overrides: The run's parameters (other keys are ignored).

    Returns:
        ``(values, sources)``: the values (columns as comma-separated strings,
        ``min_accuracy`` a float) and, per key, ``"parameter"``, ``"mlops.yaml"`` or
        ``"default"``.

    Raises:
        UsageError: the target column or model name is set nowhere, or a parameter is
            of the wrong kind.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, attribute in _PARAMETER_KEYS.items():
        raw = overrides.get(key)
        given: Any
        if key == "min_accuracy":
            given = _given_accuracy(raw)
        elif key in _REQUIRED:
            given = _given_text(raw, key)
        else:
            text = _given_text(raw, key)
            names = () if text is None else split_columns(text, key, "parameter")
            given = ",".join(names) or None
        from_file = getattr(config, attribute)
        if given is not None:
            values[key], sources[key] = given, "parameter"
        elif from_file not in (None, ()):
            value = ",".join(from_file) if isinstance(from_file, tuple) else from_file
            values[key], sources[key] = value, CONFIG_FILE
        elif key in _REQUIRED:
            raise UsageError(_REQUIRED[key])
        else:
            default = DEFAULT_MIN_ACCURACY if key == "min_accuracy" else ""
            values[key], sources[key] = default, "default"
    return values, sources
