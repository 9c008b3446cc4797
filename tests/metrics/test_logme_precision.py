"""LogME's float32 Gram path agrees with the exact one, including near a perfect fit (N < D)."""

import numpy as np
import pytest

from hf_tsel.metrics import score


@pytest.mark.parametrize("separation", [0.2, 0.9, 1.5])
def test_float32_kernel_path_is_finite_and_close_when_n_below_d(separation):
    # N < D takes the N×N kernel (in float32 under gram_precision="auto" from N=1000, D=2048 on); the
    # residual used to be ‖y‖² − 2yᵀFm + ‖Fm‖², which cancelled to a negative number (NaN score) here.
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    features = (rng.normal(size=(10, 600))[labels] * separation + rng.normal(size=(300, 600))).astype(np.float32)
    fast = score("logme", features, labels, gram_precision="float32")
    exact = score("logme", features, labels, gram_precision="float64")
    assert np.isfinite(fast)
    assert fast == pytest.approx(exact, abs=1e-3)
