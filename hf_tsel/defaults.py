"""Defaults shared by the Python API and the CLI (kept free of heavy imports so `hf-tsel --help` stays fast)."""

# What the user will train on the chosen backbone (--goal): the answer's consensus is chosen per goal
# (hf_tsel.metrics.consensus.ANSWERS), because the fine-tune and linear-probe ground truths rank models differently.
GOALS: tuple[str, ...] = ("finetune", "linear-probe")
DEFAULT_GOAL = "finetune"
# Name of the answer's metric (hf_tsel.metrics.consensus); its rows of a results table carry P(best) and the rank range.
ANSWER_METRIC = "consensus"
# Both goals' answer members (every run adds the `consensus` rows, which reuse these scores; chosen over both project
# benchmarks, benchmarks/results/consensus_selection.md), LogME and its PED wrapper (the best single metrics against
# the linear-probe and fine-tune ground truths before the training-based proxies) and k-NN, a cheap second
# training-based proxy: shown so that a disagreement is visible.
DEFAULT_METRICS: tuple[str, ...] = ("etran_lda", "linear_probe_cv", "logme", "ped+logme", "knn")
DEFAULT_ZOO = "default"
# Bootstrap resamples behind the consensus P(best) and rank interval (hf_tsel.recommendation); measured cost in
# benchmarks/recommend_speed.py.
DEFAULT_N_BOOT = 200
# Largest seed: numpy's RandomState and scikit-learn (PACTran, the linear probe) take seeds below 2**32, so a
# larger one is refused before any work rather than failing after it.
MAX_SEED = 2**32 - 1
# Precisions of the forward pass (--precision): auto = bf16 (fp16 where unsupported) on CUDA, fp32 on the CPU.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
# Sort keys of a Hub model search (hf-tsel zoo search --sort, hub:...&sort=), as huggingface_hub names them; descending.
HUB_SORTS: tuple[str, ...] = ("downloads", "likes", "last_modified", "created_at", "trending_score")
# Models a --confirm race fine-tunes when K is not given (hf_tsel.racing).
DEFAULT_RACE_K = 3
