"""Environments: Gymnasium creation and validation, and vector-env evaluation (imports core)."""
