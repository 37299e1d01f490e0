"""Model serving on KServe: verified sklearn predictors, canary routing, inference logs."""
