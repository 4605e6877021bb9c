"""Recipes for the shipped models: one TOML per sensor family and ``run.py``, which
trains Fose and KSDiff on the family's imagery, scores every method on a held-out
region, and writes ``resources/weights/<family>-<arch>.safetensors`` with model cards."""
