"""Feature extraction as a public step: sample a dataset once, then extract (or reuse cached) features per model.

One process extracts model after model. Under ``accelerate launch`` (or any ``torch.distributed``
launch) the work is shared in one of two ways:

* ``images``: every model in turn, each chunk of images split across the processes (the only
  choice when the zoo has no more models than there are processes);
* ``zoo``: whole models split across the processes (largest first, balanced by weight size),
  each process extracting its models over all images into the shared feature cache; the main
  process then reads every model's features from that cache.

Progress is reported through ``on_event`` (:class:`ExtractionEvent`); nothing is printed here.

One module per job: :mod:`.resolution` (which zoo entries), :mod:`.extract_models` (``extract``:
cached or freshly extracted features per model), :mod:`.coordination` (several processes),
:mod:`.cache_writes` (a cache that cannot be written), :mod:`.references` (the source-reference
second stage) and :mod:`.outcomes` (what comes back). Which commit a Hub revision names now is
asked in :mod:`hf_tsel.hub_access`.

Example:
    >>> import hf_tsel
    >>> zoo = hf_tsel.extract("uoft-cs/cifar10", split="test", samples_per_class=20)  # doctest: +SKIP
    >>> outcome = zoo["resnet50-tv"]  # doctest: +SKIP
    >>> outcome.status, outcome.features.features.shape, outcome.labels.shape  # doctest: +SKIP
    ('extracted', torch.Size([200, 2048]), (200,))
"""

from .coordination import PARALLEL_MODES, choose_parallel
from .extract_models import check_seed, extract
from .outcomes import Extraction, ExtractionEvent, MissingFeaturesError, ModelOutcome
from .references import attach_source_references
from .resolution import resolve_models

__all__ = ["Extraction", "ExtractionEvent", "MissingFeaturesError", "ModelOutcome", "PARALLEL_MODES",
           "attach_source_references", "check_seed", "choose_parallel", "extract", "resolve_models"]
