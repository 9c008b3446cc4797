"""The cache-write policy: a feature cache that cannot be written costs the run its caching, never its results."""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import CacheError
from ..features import FeatureCache

__all__ = ["CacheWrites"]


class CacheWrites:
    """Cache writes that, on a full disk or lost permission, warn once and stop: the run goes on in memory."""

    def __init__(self, cache: FeatureCache | None):
        self.cache, self.error = cache, None

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.cache is None or self.error:
            return
        try:
            getattr(self.cache, method)(*args, **kwargs)
        except CacheError as exc:
            self.error = str(exc)
            warnings.warn(f"{exc} The run goes on without caching.", stacklevel=3)
