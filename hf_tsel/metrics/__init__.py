"""Transferability metrics behind one registry.

Every metric is a pure function registered with :func:`register`; call it through
:func:`score` (one model) or :func:`score_zoo` (a set of models). Scores are always
higher-is-better. ``print(list_metrics())`` shows the registry.

Example:
    >>> from hf_tsel.metrics import score
    >>> import numpy as np
    >>> y = np.repeat([0, 1, 2], 40)
    >>> x = np.random.default_rng(0).normal(size=(120, 16)) + 2 * np.eye(16)[y]
    >>> round(score("hscore", x, y), 3) > 0
    True
"""

import importlib
import pkgutil

from ._inputs import NotApplicable, metric_inputs
from ._registry import (InputKind, MetricSpec, MetricTable, check_parameters, get_metric, list_metrics, register,
                        register_transform, score, score_zoo)
from ._validation import MetricInputError, MetricInputs

# Each public module of this package registers its metrics on import.
for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["InputKind", "MetricSpec", "MetricTable", "MetricInputError", "MetricInputs", "NotApplicable",
           "metric_inputs", "get_metric", "list_metrics", "register", "register_transform", "score", "score_zoo",
           "check_parameters"]
