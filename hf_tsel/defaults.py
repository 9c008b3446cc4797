"""Defaults shared by the Python API and the CLI (kept free of heavy imports so `hf-tsel --help` stays fast)."""

# Chosen from the offline benchmark's held-out evidence (benchmarks/results/offline_consensus_selection.md,
# docs/metrics.md): LogME and ETran are the consensus members (every run adds the `consensus` rows, which
# reuse these scores); GBC is the next-best metric that needs no source head (mean weighted tau 0.62 over
# the 10 tasks), shown so a disagreement is visible. PARC (0.38, and 0.17-0.30 in the published tables)
# and LEEP (needs a source head; below random on the linear-probe tasks) were dropped from the defaults.
DEFAULT_METRICS: tuple[str, ...] = ("logme", "etran", "gbc")
DEFAULT_ZOO = "default"
# Bootstrap resamples behind the consensus P(best) and rank interval (hf_tsel.recommendation); measured cost in
# benchmarks/recommend_speed.py.
DEFAULT_N_BOOT = 200
# Largest seed: numpy's RandomState and scikit-learn (PACTran, the linear probe) take seeds below 2**32, so a
# larger one is refused before any work rather than failing after it.
MAX_SEED = 2**32 - 1
# Precisions of the forward pass (--precision): auto = bf16 (fp16 where unsupported) on CUDA, fp32 on the CPU.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
