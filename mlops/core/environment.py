"""The exact package sets the project's two images run with.

- The pipeline image (``requirements.lock``): everything ``kfp-mlops`` depends on
  (kfp, evidently, the audit and quality tools...), for the pipeline components.
- The serving image (``requirements-serving.lock``): only what the predictor
  imports at run time, plus this project's code. A model's ``requirements.txt``
  -- what the dependency-audit gate checks -- is this same closure, so the
  audit covers exactly what serves the model, and no build or audit tool ships
  into production.

``python -m mlops.core.environment pipeline|serving`` prints either set (``make lock``).
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata as md
import sys

PROJECT = "kfp-mlops"

# What the predictor (``serving/``) imports at run time; the serving closure is
# these and everything they pull in. A test checks that serving a model
# imports nothing outside this closure.
SERVING_ROOTS = (
    "kserve",
    "scikit-learn",
    "skops",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "minio",
    "prometheus-client",
    "model-signing",
    "pyopenssl",
    "shap",
)


def installed_closure(roots: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of ``roots`` and their transitive requirements.

    Markers are evaluated for this interpreter, and extras are followed: a
    dependency on ``uvicorn[standard]`` brings in what that extra names.

    Args:
        roots: Distribution names to start from.

    Returns:
        ``{canonical name: version}``, sorted by name; names not installed are left out
        (a new dict each call: the caller may change it).
    """
    return dict(_closure(tuple(roots)))


@functools.lru_cache(maxsize=8)
def _closure(roots: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    # Walking the installed metadata costs about 0.25 s, and the training step needs the
    # serving closure twice (requirements.txt and the SBOM): walk it once per process.
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    versions: dict[str, str] = {}
    expanded: set[tuple[str, str]] = set()  # (distribution, extra) pairs already followed
    pending: list[tuple[str, str]] = [(canonicalize_name(root), "") for root in roots]
    while pending:
        name, extra = pending.pop()
        if (name, extra) in expanded:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        expanded.add((name, extra))
        versions[name] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
                continue
            if extra and (requirement.marker is None or requirement.marker.evaluate({"extra": ""})):
                continue  # a base requirement, followed with the base
            child = canonicalize_name(requirement.name)
            pending.append((child, ""))
            pending.extend((child, canonicalize_name(e)) for e in requirement.extras)
    return tuple(sorted(versions.items()))


def _pins(versions: dict[str, str]) -> str:
    return "".join(f"{name}=={version}\n" for name, version in versions.items())


def serving_requirements() -> str:
    """``name==version`` lines of the serving environment (this project's code aside)."""
    return _pins(installed_closure(SERVING_ROOTS))


def pipeline_requirements() -> str:
    """``name==version`` lines of everything ``kfp-mlops`` needs, for the pipeline image."""
    pins = installed_closure((PROJECT,))
    pins.pop(PROJECT, None)
    return _pins(pins)


def main(argv: list[str] | None = None) -> int:
    """Prints one image's pins (``pipeline`` or ``serving``) to stdout; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m mlops.core.environment", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "image", choices=("pipeline", "serving"), help="which image's pins to print"
    )
    args = parser.parse_args(argv)
    sys.stdout.write(serving_requirements() if args.image == "serving" else pipeline_requirements())
    return 0


if __name__ == "__main__":
    sys.exit(main())
