"""Desired deployment state and its application (KServe on a cluster, ``mlops serve`` locally)."""
