"""Bundled model zoos (YAML), installed as the package data ``hf_tsel.model_zoos``; see :mod:`hf_tsel.zoo`."""
