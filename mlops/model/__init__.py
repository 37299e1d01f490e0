"""The model: feature schema, training, the model folder and its file format, the registry, the holdout check."""
