"""Releases: gate results and the decision, the trust gates, publishing or recording a rejection."""
