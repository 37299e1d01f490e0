"""Monitoring: the inference-log format, drift statistics and reports, metrics pushed to Prometheus."""
