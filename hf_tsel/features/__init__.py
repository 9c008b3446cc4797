"""Feature extraction (with accelerate) and the on-disk feature cache."""

from .cache import (CacheError, CachedFeatures, FeatureCache, cache_key, default_cache_dir, entry_key,
                    local_weights_digest, model_spec)
from .extract import PRECISIONS, ExtractionResult, effective_precision, extract_features, make_accelerator

__all__ = ["CacheError", "CachedFeatures", "FeatureCache", "cache_key", "default_cache_dir", "entry_key",
           "local_weights_digest", "model_spec", "PRECISIONS", "ExtractionResult", "effective_precision",
           "extract_features", "make_accelerator"]
