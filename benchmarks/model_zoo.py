"""Zoo benchmark: 32 small models trained here from offline data x 8 offline target tasks, with ground truth.

Runs on a CPU without network access (after ``pip install 'hf-tsel[offline]'`` and
``apt-get install dataset-fashion-mnist``): builds the models (or reuses them from
``--work-dir``, default ``$HF_TSEL_HOME/zoo-benchmark``), scores every registry metric through the
normal ranking path, measures linear-probe and full fine-tune ground truth and writes, under
``--results-dir``:

* ``zoo_scores.csv``        dataset, model, metric, score
* ``zoo_ground_truth.csv``  dataset, model, protocol, accuracy (linear-probe, full)
* ``zoo_evaluation.csv``    weighted tau, Kendall, Spearman, Pearson, Rel@k, regret per task and metric
* ``zoo_models.csv``        architecture, parameters, pre-training, source task, data size per model
* ``zoo_pairwise.csv``      paired-bootstrap differences between metrics
* ``zoo_summary.md``        the tables with bootstrap confidence intervals over tasks

    python benchmarks/model_zoo.py            # or: hf-tsel benchmark zoo
    python benchmarks/model_zoo.py --tiny     # 3 models x 2 tasks smoke test
"""

from __future__ import annotations

import sys

from hf_tsel.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", "zoo", *sys.argv[1:]]))
