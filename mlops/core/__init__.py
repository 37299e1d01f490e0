"""Core: errors and exit codes, settings, the object store, the embedded store, reading data."""
