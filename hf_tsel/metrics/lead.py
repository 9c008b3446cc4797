"""LEAD: logit evolution through a dynamical equation (Hu et al., CVPR 2024).

Fine-tuning with an MSE loss moves the logits along ``dF/dt = -eta * Phi * (F - Y)`` (paper Eq. 5,
appendix Eq. 15-17), where ``Phi`` is the neural tangent kernel (NTK). Its solution interpolates
between the initial logits and the one-hot labels (Eq. 6/22). LEAD replaces ``Phi`` by the mean
eigenvalue of a per-class NTK (Eq. 7) and scores the evolved logits with the cross-entropy:

1. initial logits ``F_0``: a one-vs-rest linear SVM on the features, its K decision values
   turned into probabilities (appendix B: "normalized to obtain the predicted probabilities"),
   cross-fitted over 5 folds so that they describe unseen samples;
2. a randomly initialised MLP head (hidden widths 1024 and 2048, Kaiming init, the paper's [22]);
3. per class, the NTK of ``S = 64`` random samples with gradients of the *summed* logits w.r.t. the
   head parameters (appendix Eq. 24, the approximation of Mohamadi & Sutherland), and its mean
   eigenvalue ``lambda_k = trace / S``;
4. ``F_t = (1 - exp(-eta*lambda_k*t)) * y + exp(-eta*lambda_k*t) * F_0`` for every sample of class k;
5. score = minus the cross-entropy of ``F_t`` with the labels, ``mean log F_t[y]`` (``F_t`` is a
   probability vector; higher is better).

No official code exists; every choice the paper leaves open is listed in ``docs/methods.md``. The
main ones: features are z-scored (per dimension) before both the SVM and the head; the SVM is
liblinear's L2-regularised squared-hinge primal (``LinearSVC()`` defaults, bias regularised too);
probabilities are ``sigmoid(d_k) / sum_j sigmoid(d_j)``, from SVMs fitted without the sample
(an in-sample SVM in high dimension puts nearly every training sample on its margin, so its
outputs say little about the model); the paper's ablation keeps "the unit
as 1e6" for t, read here as ``eta = 1e-6`` so that ``t = 1`` (its default) means 1e6 time units
of rate ``lambda * 1e-6``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..sampling import shuffled_by_class
from ._common import one_hot
from ._registry import register
from ._validation import MetricInputError, MetricInputs

__all__ = ["lead", "ovr_svm_probabilities", "init_mlp_head", "head_ntk", "head_ntk_diagonal", "evolve_logits"]

PAPER = "Hu et al., Exploring Logit Space Evolution for Model Selection (LEAD), CVPR 2024"


def _standardise(features: torch.Tensor, floor: float = 1e-8) -> torch.Tensor:
    return (features - features.mean(dim=0)) / features.std(dim=0, correction=0).clamp_min(floor)


def _fit_ovr_svm(augmented: torch.Tensor, signs: torch.Tensor, gram: torch.Tensor, svm_c: float,
                 max_iter: int) -> torch.Tensor:
    """``[D+1, K]`` weights of K squared-hinge SVMs, by L-BFGS in coordinates whitened by ``I + 2c A^T A``.

    That matrix is the Hessian of the least-squares problem and bounds the SVM's Hessian, so after
    whitening the problem is well conditioned; the least-squares solution (the optimum when every
    margin is active) is the starting point, and a few iterations suffice.
    """
    hessian = 2 * svm_c * gram
    hessian.diagonal().add_(1.0)
    factor = torch.linalg.cholesky(hessian)
    start = torch.cholesky_solve(2 * svm_c * augmented.T @ signs, factor)
    whitened = (factor.T @ start).contiguous().requires_grad_(True)
    optimiser = torch.optim.LBFGS([whitened], lr=1, max_iter=max_iter, history_size=10, tolerance_grad=1e-9,
                                  tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        weights = torch.linalg.solve_triangular(factor.T, whitened, upper=True)
        margins = (1 - signs * (augmented @ weights)).clamp_min(0)
        # Divided by n for conditioning; the minimiser is unchanged.
        loss = (0.5 * (weights * weights).sum() + svm_c * (margins * margins).sum()) / len(augmented)
        loss.backward()
        return loss

    if max_iter > 0:
        with torch.enable_grad():
            optimiser.step(closure)
    return torch.linalg.solve_triangular(factor.T, whitened.detach(), upper=True)


def ovr_svm_probabilities(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, svm_c: float = 1.0,
                          max_iter: int = 10, folds: int = 5, generator: torch.Generator | None = None) -> torch.Tensor:
    """``[N, K]`` class probabilities of a one-vs-rest linear SVM (LEAD appendix B), cross-fitted.

    Each class k solves liblinear's primal ``1/2 |[w; b]|^2 + svm_c * sum_i max(0, 1 - s_ik (w.x_i + b))^2``
    with ``s_ik = +-1`` (scikit-learn ``LinearSVC()`` defaults: squared hinge, bias regularised with
    ``intercept_scaling=1``). With ``folds > 1`` every sample's decision values come from the SVM
    fitted on the other folds (stratified, seeded by ``generator``); ``folds = 1`` fits and predicts
    on all samples. The decision values ``d_k`` become ``sigmoid(d_k) / sum_j sigmoid(d_j)``.
    """
    n = len(features)
    augmented = torch.cat([features, torch.ones(n, 1, dtype=features.dtype, device=features.device)], dim=1)
    signs = 2 * one_hot(labels, num_classes, features.dtype) - 1
    gram = augmented.T @ augmented
    if folds <= 1:
        decision = augmented @ _fit_ovr_svm(augmented, signs, gram, svm_c, max_iter)
    else:
        fold_of = torch.empty(n, dtype=torch.long, device=features.device)
        # stratified: consecutive ranks of a shuffled class go to different folds
        for members in shuffled_by_class(labels, range(num_classes), lambda n: torch.randperm(n, generator=generator)):
            fold_of[members] = torch.arange(len(members), device=features.device) % folds
        decision = torch.empty(n, num_classes, dtype=features.dtype, device=features.device)
        for fold in range(folds):
            held_out = fold_of == fold
            if not bool(held_out.any()):
                continue
            held = augmented[held_out]
            train_gram = gram - held.T @ held  # the training folds' Gram without recomputing it
            weights = _fit_ovr_svm(augmented[~held_out], signs[~held_out], train_gram, svm_c, max_iter)
            decision[held_out] = held @ weights
    positive = torch.sigmoid(decision)
    return positive / positive.sum(dim=1, keepdim=True)


def init_mlp_head(in_features: int, out_features: int, hidden: Sequence[int] = (1024, 2048), *,
                  generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                  device: torch.device | str = "cpu") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random ReLU-MLP head as ``[(W, b), ...]`` with ``W`` of shape ``[out, in]``.

    Kaiming-normal weights (``std = sqrt(2 / fan_in)``, He et al. 2015, LEAD's [22]) and zero biases.
    """
    widths = [in_features, *hidden, out_features]
    layers = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        weight = torch.randn(fan_out, fan_in, generator=generator, dtype=dtype) * math.sqrt(2.0 / fan_in)
        layers.append((weight.to(device), torch.zeros(fan_out, dtype=dtype, device=device)))
    return layers


def _gradient_factors(layers: Sequence[tuple[torch.Tensor, torch.Tensor]],
                      inputs: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, the input activations ``A_{l-1}`` and back-propagated signals ``Delta_l`` of the summed logits.

    For a ReLU MLP, ``grad_W_l s(x) = delta_l(x) a_{l-1}(x)^T`` and ``grad_b_l s(x) = delta_l(x)``; the
    output layer has ``delta = 1`` (all K logits are summed), so its back-propagated signal is the
    same for every sample: the column sums of the last weight matrix.
    """
    activations, masks = [inputs], []
    for weight, bias in layers[:-1]:
        pre_activation = activations[-1] @ weight.T + bias
        masks.append((pre_activation > 0).to(inputs.dtype))
        activations.append(torch.relu(pre_activation))
    out_dim = layers[-1][0].shape[0]
    deltas = [torch.ones(len(inputs), out_dim, dtype=inputs.dtype, device=inputs.device)]
    signal = layers[-1][0].sum(dim=0).expand(len(inputs), -1)
    for index in range(len(layers) - 2, -1, -1):
        deltas.insert(0, signal * masks[index])
        if index > 0:
            signal = deltas[0] @ layers[index][0]
    return list(zip(activations, deltas))


def head_ntk(layers: Sequence[tuple[torch.Tensor, torch.Tensor]], inputs: torch.Tensor) -> torch.Tensor:
    """``[S, S]`` NTK of the summed logits w.r.t. all head parameters (LEAD appendix Eq. 24).

    ``Phi = sum_l (Delta_l Delta_l^T) * (A_{l-1} A_{l-1}^T + 1)`` (elementwise product): Gram
    matrices of activations and back-propagated signals, never the ``S x P`` Jacobian.
    """
    return sum((delta @ delta.T) * (act @ act.T + 1) for act, delta in _gradient_factors(layers, inputs))


def head_ntk_diagonal(layers: Sequence[tuple[torch.Tensor, torch.Tensor]], inputs: torch.Tensor) -> torch.Tensor:
    """``[S]`` diagonal of :func:`head_ntk` (squared gradient norms), without the ``S x S`` products."""
    return sum((delta * delta).sum(dim=1) * ((act * act).sum(dim=1) + 1)
               for act, delta in _gradient_factors(layers, inputs))


def evolve_logits(initial: torch.Tensor, targets: torch.Tensor, rate: torch.Tensor, t: float) -> torch.Tensor:
    """Closed-form solution of ``dF/dt = -rate * (F - Y)`` at time ``t`` (LEAD Eq. 7); ``rate`` is ``[N]``."""
    decay = torch.exp(-rate * t)[:, None]
    return (1 - decay) * targets + decay * initial


@register("lead", consumes="features", paper=PAPER, stochastic=True, dtype=torch.float32)
def lead(inputs: MetricInputs, *, eta: float = 1e-6, t: float = 1.0, samples_per_class: int = 64,
         hidden: Sequence[int] = (1024, 2048), svm_c: float = 1.0, svm_max_iter: int = 10, svm_folds: int = 5,
         seed: int = 0) -> float:
    """LEAD: minus the cross-entropy of logits evolved by the NTK closed form (Hu et al., CVPR'24, Eq. 7).

    Args:
        eta, t: learning rate and time of the dynamics; only ``eta * t`` matters. ``eta = 1e-6``
            reads the paper's "unit 1e6" for t; ``t = 1`` is its default (``t -> 0`` scores the SVM).
        samples_per_class: S, samples of each class in its NTK (fewer if the class is smaller).
        hidden: hidden widths of the random MLP head.
        svm_c: SVM regularisation (``LinearSVC`` ``C``); svm_max_iter: L-BFGS iterations per fit.
        svm_folds: cross-fitting folds for the initial logits (1: fit and predict in-sample).
        seed: seeds the head initialisation and the NTK samples.

    Example:
        >>> import numpy as np
        >>> from hf_tsel.metrics import score
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1, 2], 40)
        >>> good = rng.normal(size=(120, 16)) + 3 * np.eye(16)[y]
        >>> score("lead", good, y, hidden=(64, 64)) > score("lead", rng.normal(size=(120, 16)), y, hidden=(64, 64))
        True
    """
    if not (eta >= 0 and t >= 0 and math.isfinite(eta * t)):
        raise MetricInputError("lead", f"eta and t must be finite and >= 0 (got eta={eta}, t={t}).",
                               "use the defaults eta=1e-6, t=1.")
    if samples_per_class < 1 or not hidden or min(hidden) < 1:
        raise MetricInputError("lead", f"samples_per_class ({samples_per_class}) and every hidden width ({hidden}) "
                               "must be >= 1.", "use the paper's samples_per_class=64, hidden=(1024, 2048).")
    features, labels, k = _standardise(inputs.features), inputs.labels, inputs.num_classes
    generator = torch.Generator().manual_seed(int(seed))
    probabilities = ovr_svm_probabilities(features, labels, k, svm_c=svm_c, max_iter=svm_max_iter, folds=svm_folds,
                                          generator=generator)
    layers = init_mlp_head(features.shape[1], k, hidden, generator=generator, dtype=features.dtype,
                           device=features.device)
    # Mean eigenvalue of each class's S x S NTK = its trace / S; all classes share one batched pass.
    chosen = [members[:samples_per_class]
              for members in shuffled_by_class(labels, range(k), lambda n: torch.randperm(n, generator=generator))]
    diagonal = head_ntk_diagonal(layers, features[torch.cat(chosen)]).double()
    sample_class = torch.repeat_interleave(torch.arange(k, device=features.device),
                                           torch.tensor([len(c) for c in chosen], device=features.device))
    mean_eigenvalue = torch.zeros(k, dtype=torch.float64, device=features.device).index_add_(0, sample_class, diagonal)
    mean_eigenvalue /= torch.bincount(sample_class, minlength=k).double()
    evolved = evolve_logits(probabilities.double(), one_hot(labels, k), eta * mean_eigenvalue[labels], t)
    # F_t is a convex combination of probability vectors: its cross-entropy with the labels is -log F_t[y].
    return float(torch.log(evolved[torch.arange(len(labels), device=labels.device), labels]).mean())
