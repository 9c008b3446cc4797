"""Defaults shared by the Python API and the CLI (kept free of heavy imports so `hf-tsel --help` stays fast)."""

# Fast on a CPU and complementary (see docs/readme/usage.md): a Bayesian evidence (LogME), a
# class-separability score after a Fisher projection (SFDA), a class-overlap score (GBC), and the
# source-head metric LEEP for models that have a classifier head.
DEFAULT_METRICS: tuple[str, ...] = ("logme", "sfda", "gbc", "leep")
DEFAULT_ZOO = "default"
