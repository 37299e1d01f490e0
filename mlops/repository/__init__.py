"""Model repositories: a data scientist's recipe folder, fetched, pinned and described.

A model repository holds the training code (an ``entry_point``), its ``requirements.txt``,
optionally a checked-in ``.skops`` model, and ``mlops.yaml`` saying how to train it.

* :mod:`mlops.repository.source` -- recipe URIs (folder, ``git+file://``, ``git+https://``,
  ``s3://``, ``builtin:``), resolving a git ref to its commit, fetching, the tree digest.
* :mod:`mlops.repository.config` -- reading and checking ``mlops.yaml``, the paths it names,
  and which run parameter comes from where.
* :mod:`mlops.repository.tree` -- which files of a repository count (no ``.git``, caches, venvs).
"""
