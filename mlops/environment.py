"""The exact package set a model is served with, for the dependency audit."""

from __future__ import annotations

import importlib.metadata as md

# What the predictor imports at run time; the audit covers these and everything they pull in.
SERVING_ROOTS = ("kfp-mlops", "kserve", "scikit-learn", "skops", "numpy", "scipy", "pandas",
                 "pyarrow", "minio", "prometheus-client", "model-signing")


def installed_closure(roots: tuple[str, ...] = SERVING_ROOTS) -> dict[str, str]:
    """Installed versions of ``roots`` and their transitive requirements (markers evaluated).

    Args:
        roots: Distribution names to start from.

    Returns:
        ``{canonical name: version}``, sorted by name; names not installed are left out.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    versions: dict[str, str] = {}
    pending = list(roots)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in versions:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        versions[name] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return dict(sorted(versions.items()))


def serving_requirements() -> str:
    """``name==version`` lines of the serving environment, excluding this project itself."""
    pins = installed_closure()
    pins.pop("kfp-mlops", None)
    return "".join(f"{name}=={version}\n" for name, version in pins.items())
