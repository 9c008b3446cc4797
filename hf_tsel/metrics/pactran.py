"""PACTran-Gauss: a PAC-Bayesian transferability bound (Ding et al., ECCV'22)."""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize
import torch

from ._common import one_hot
from ._registry import register
from ._validation import MetricInputError, MetricInputs

__all__ = ["pactran"]

_INIT_SCALE = 0.03
_LOG_EPS = 1e-10
# Above this many multiply-adds per gradient evaluation the objective runs in float32 by default.
_FLOAT32_WORK = 1e9


def _loss_and_grad(features: torch.Tensor, targets: torch.Tensor, prior_variance: float):
    """Objective on flat ``theta = [W; b]`` (``(D+1) x C``): mean cross-entropy + ``|W|^2 / (2 prior_variance)``."""
    n, dim = features.shape
    num_classes = targets.shape[1]
    # The reference's cross-entropy is sum(y * (log(y + 1e-10) - log q)) / N; the first part is a constant.
    label_term = float((targets * torch.log(targets + _LOG_EPS)).sum()) / n

    def evaluate(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = torch.from_numpy(theta).to(features.device, features.dtype).view(dim + 1, num_classes)
        weights, bias = params[:dim], params[dim:]
        log_q = torch.log_softmax(features @ weights + bias, dim=1)
        loss = label_term - float((targets * log_q).sum()) / n + 0.5 * float(weights.square().sum()) / prior_variance
        residual = (log_q.exp() - targets) / n
        grad = torch.cat([features.T @ residual + weights / prior_variance, residual.sum(dim=0, keepdim=True)])
        return loss, grad.cpu().numpy().astype(np.float64).ravel()

    return evaluate


def _hessian_trace(features: torch.Tensor, theta: np.ndarray, num_classes: int, prior_variance: float) -> float:
    """Sum of the diagonal Hessian entries of all of ``theta`` as the reference's ``pac_grad2`` computes them.

    Per weight ``(d, c)``: ``sum_i x_id^2 p_ic (1 - p_ic) + 1/prior_variance``; per bias ``c``:
    ``sum_i p_ic (1 - p_ic)``. Unlike the loss, the reference does not divide these sums by N.
    """
    n, dim = features.shape
    params = torch.from_numpy(theta).to(features.device, features.dtype).view(dim + 1, num_classes)
    probs = torch.softmax(features @ params[:dim] + params[dim:], dim=1)
    curvature = (probs - probs.square()).sum(dim=1)  # summed over classes, per sample
    weights_part = float(features.square().sum(dim=1) @ curvature)
    return weights_part + dim * num_classes / prior_variance + float(curvature.sum())


@register("pactran", consumes="features", paper="Ding et al., PACTran: PAC-Bayesian Metrics for Estimating the "
          "Transferability of Pretrained Models to Classification Tasks, ECCV 2022",
          reference="google-research/pactran_metrics@a5e49972ed0856bc79f74c5c198d1c25b6fb9025:"
                    "compute_metrics.py::calculate_pac_gauss",
          stochastic=True, negated=True)
def pactran(inputs: MetricInputs, *, lda_factor: float = 1.0, s2_factor: float = 100.0, max_iterations: int = 100,
            tolerance: float = 1e-6, float32: bool | None = None, seed: int = 0) -> float:
    """PAC-Gauss bound of a Gaussian-prior linear classifier (PACTran, Ding et al. ECCV'22); lower is better (negated).

    As the reference ``calculate_pac_gauss``: centre the features; fit ``theta = [W; b]`` minimising
    ``L(theta) = mean CE + |W|^2 / (2 lambda)``, ``lambda = lda_factor * N``, by L-BFGS-B (at most
    ``max_iterations`` iterations, ``tol`` ``tolerance``; init ``W ~ N(0, 0.03^2)``, ``b = 0``); with
    ``h`` the diagonal Hessian (see :func:`_hessian_trace`) and ``K = D * C``,
    ``sigma^-2 = sum(h) * lambda / K + 1e-10`` and
    ``PAC-Gauss = L(theta*) + K / (2 lambda) * (s2_factor / D) * log sigma^-2``.

    The reference returns a loss, so :func:`~hf_tsel.metrics.score` negates it. Stochastic only
    through the initialisation: ``seed`` seeds a local ``numpy.random.RandomState`` whose normal draws
    equal the reference's after ``np.random.seed(seed)``. L-BFGS often stops at the 100-iteration cap
    slightly before converging, so other seeds move the value by ~1e-4 relative. The reference's s2
    factors are 100 and 10 for ``lda_factor`` 1, 1000/100 for 10 and 10/1 for 0.1 (the first of each
    pair is its headline metric).

    Args:
        lda_factor: prior variance of the weights per sample (``lambda = lda_factor * N``).
        s2_factor: posterior variance factor, ``s2 = s2_factor / D``.
        max_iterations: L-BFGS-B iteration cap (100 in the reference).
        tolerance: L-BFGS-B ``tol`` (1e-6 in the reference).
        float32: run loss and gradients in float32 (about twice as fast on CPU; L-BFGS itself stays in
            float64). ``None`` (default) does so only for large inputs (``N*D*C`` above 1e9 multiply-adds
            per gradient), where speed matters: there float32 changes the L-BFGS path, and with the
            100-iteration cap the value moved by 1e-6 to 4e-3 relative in our checks (the same order as
            changing the seed on slowly converging features); the small golden cases (where float32
            moves it by up to ~2e-4) stay in float64. Pass ``float32=False`` for the reference path.
    """
    if lda_factor <= 0 or s2_factor <= 0:
        raise MetricInputError("pactran", f"lda_factor and s2_factor must be positive, got {lda_factor}, {s2_factor}.",
                               "use the reference's lda_factor=1.0, s2_factor=100.0.")
    if int(max_iterations) < 1:
        raise MetricInputError("pactran", f"max_iterations must be >= 1, got {max_iterations}.", "pass e.g. 100.")
    n, dim = inputs.features.shape
    if float32 is None:
        float32 = n * dim * inputs.num_classes > _FLOAT32_WORK
    dtype = torch.float32 if float32 else inputs.features.dtype
    features = (inputs.features - inputs.features.mean(dim=0)).to(dtype)
    n, dim = features.shape
    num_classes = inputs.num_classes
    targets = one_hot(inputs.labels, num_classes, dtype)
    prior_variance = lda_factor * n

    init_weights = np.random.RandomState(seed).normal(size=(dim, num_classes)) * _INIT_SCALE
    theta0 = np.concatenate([init_weights, np.zeros((1, num_classes))]).ravel()
    objective = _loss_and_grad(features, targets, prior_variance)
    result = scipy.optimize.minimize(objective, theta0, jac=True, method="L-BFGS-B", tol=tolerance,
                                     options={"maxiter": int(max_iterations)})
    params = dim * num_classes
    sigma2_inv = _hessian_trace(features, result.x, num_classes, prior_variance) * prior_variance / params + 1e-10
    return float(result.fun) + 0.5 * params / prior_variance * (s2_factor / dim) * math.log(sigma2_inv)
