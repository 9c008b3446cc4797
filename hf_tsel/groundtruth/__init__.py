"""Ground truth for transferability rankings: measured accuracies, published ones, and how well scores predict them.

* :mod:`.linear_probe`: logistic-regression probe on frozen features (``linear-probe`` protocol).
* :mod:`.finetune`: grid-search fine-tuning with checkpoint/resume (``full`` protocol; LEAD/PED/SFDA
  SGD grid and ITM AdamW grid).
* :mod:`.table`: ground-truth tables (csv) and their link to results files.
* :mod:`.evaluate`: correlation tables and score-vs-accuracy plots (measures from :mod:`hf_tsel.evaluation`).
* :mod:`.paper`: the seed papers' published accuracies and weighted tau, mapped onto the bundled zoos.
"""

from .finetune import GRIDS, FinetuneConfig, FinetuneResult, Grid, finetune
from .linear_probe import ProbeResult, linear_probe
from .table import GT_FIELDS, read_ground_truth, upsert_ground_truth, write_ground_truth

__all__ = ["GRIDS", "FinetuneConfig", "FinetuneResult", "Grid", "finetune", "ProbeResult", "linear_probe", "GT_FIELDS",
           "read_ground_truth", "upsert_ground_truth", "write_ground_truth"]
