"""Defaults shared by the Python API and the CLI (kept free of heavy imports so `hf-tsel --help` stays fast)."""

# Chosen for speed on a CPU and for staying informative on small samples (N < feature dim), where
# H-score and SFDA saturate (every model gets the same score): LogME (Bayesian evidence), GBC
# (class overlap), PARC (representation similarity to labels), ETran (energy + LDA, scaled over the
# zoo) and, for models with a source classifier head, LEEP. See docs/usage.md.
DEFAULT_METRICS: tuple[str, ...] = ("logme", "gbc", "parc", "etran", "leep")
DEFAULT_ZOO = "default"
