"""Hydra config groups of commbench, shipped as the package `commbench.conf` (see pyproject.toml)."""
