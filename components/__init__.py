"""Kubeflow Pipelines components: thin ``@dsl.component`` wrappers over ``mlops`` functions.

One component per module. Each imports only the standard library and kfp at
module level; the body imports what it needs at run time, because KFP ships the
body alone into the container.
"""
