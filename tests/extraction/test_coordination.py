"""Coordinating the processes of one extraction: which parallel mode a launch gets."""

from __future__ import annotations

import pytest

from hf_tsel.errors import UserError
from hf_tsel.extraction import choose_parallel


def test_auto_parallel_mode():
    assert choose_parallel("auto", 10, 2, True) == "zoo"
    assert choose_parallel("auto", 2, 2, True) == "images"  # no more models than processes
    assert choose_parallel("auto", 10, 1, True) == "images"
    assert choose_parallel("auto", 10, 2, False) == "images"  # zoo mode hands features over in the cache
    assert choose_parallel("images", 10, 2, True) == "images"
    with pytest.raises(UserError, match="--no-cache"):
        choose_parallel("zoo", 10, 2, False)
