"""Kubeflow Pipelines components: thin ``@dsl.component`` wrappers over ``mlops`` functions.

One component per module. At module level a component imports only the
standard library, kfp and ``mlops.runtime`` (the one module that names the
images, read by ``@dsl.component``); everything else is imported inside the
body, because KFP ships the body alone into the container.

A body only translates KFP artifacts and parameters into library calls and
their results back into outputs. A component with several outputs returns a
plain tuple in the order of its ``NamedTuple("...", [...])`` return annotation.
That annotation must be written in the signature, since a class defined beside
the function would not ship with the body; mypy rejects the call form, hence
its ``# type: ignore[valid-type]``.

``tests/unit/test_architecture.py`` checks the import rule.
"""
