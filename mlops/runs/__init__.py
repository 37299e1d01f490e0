"""Local pipeline runs: parameters, checks before a run, kfp.local execution, the outcome after."""
