"""Feature extraction (with accelerate) and the on-disk feature cache."""

from .cache import CacheError, CachedFeatures, FeatureCache, cache_key, default_cache_dir, model_spec
from .extract import ExtractionResult, extract_features, make_accelerator

__all__ = ["CacheError", "CachedFeatures", "FeatureCache", "cache_key", "default_cache_dir", "model_spec",
           "ExtractionResult", "extract_features", "make_accelerator"]
