"""LEAD: logit evolution through a dynamical equation (Hu et al., CVPR 2024).

Fine-tuning with an MSE loss moves the logits along ``dF/dt = -eta * Phi * (F - Y)`` (paper Eq. 5,
appendix Eq. 15-17), where ``Phi`` is the neural tangent kernel (NTK). Its solution interpolates
between the initial logits and the one-hot labels (Eq. 6/22). LEAD replaces ``Phi`` by the mean
eigenvalue of a per-class NTK (Eq. 7) and scores the evolved logits with the cross-entropy:

1. initial probabilities ``F_0`` of a classifier on the features, cross-fitted over 5 folds so
   that they describe unseen samples: a one-vs-rest linear SVM whose decision values are
   Platt-calibrated (appendix B: "normalized to obtain the predicted probabilities"), or a
   shrinkage LDA (appendix C.1; the default, chosen by evidence);
2. a randomly initialised MLP head (hidden widths 1024 and 2048, Kaiming init, the paper's [22]);
3. per class, the NTK of ``S = 64`` random samples with gradients of the *summed* logits w.r.t. the
   head parameters (appendix Eq. 24, the approximation of Mohamadi & Sutherland), and its mean
   eigenvalue ``lambda_k = trace / S``;
4. ``F_t = (1 - exp(-r_k * t)) * y + exp(-r_k * t) * F_0`` for every sample of class k, with the
   rate ``r_k = lambda_k / lambda_pooled`` (time in units of the pooled mean eigenvalue: order 1 at
   the paper's default t = 1, saturated by t = 10 as its Fig. 4 describes, and comparable across
   feature dimensions);
5. score = minus the cross-entropy of ``F_t`` with the labels, ``mean log F_t[y]`` (``F_t`` is a
   probability vector; higher is better).

No official code exists; every choice the paper leaves open, and the derivation of the time unit,
is in ``docs/methods.md``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..sampling import shuffled_by_class
from ._common import class_counts, class_means, one_hot
from ._lda import check_within_class_variance, discriminant_directions, lda_posteriors, shrink
from ._registry import register
from ._validation import MetricInputError, MetricInputs

__all__ = ["lead", "initial_probabilities", "ovr_svm_decision_values", "ovr_svm_probabilities", "platt_probabilities",
           "lda_probabilities", "init_mlp_head", "head_ntk", "head_ntk_diagonal", "class_mean_eigenvalues",
           "evolve_logits"]

INITIAL_CLASSIFIERS = ("svm-platt", "lda", "svm-normalised")

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


def stratified_folds(labels: torch.Tensor, num_classes: int, folds: int, generator: torch.Generator | None) -> torch.Tensor:
    """``[N]`` fold of each sample: consecutive ranks of a shuffled class go to different folds."""
    fold_of = torch.empty(len(labels), dtype=torch.long, device=labels.device)
    for members in shuffled_by_class(labels, range(num_classes), lambda n: torch.randperm(n, generator=generator)):
        fold_of[members] = torch.arange(len(members), device=labels.device) % folds
    return fold_of


def ovr_svm_decision_values(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, svm_c: float = 1.0,
                            max_iter: int = 10, folds: int = 5,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """``[N, K]`` decision values of K one-vs-rest linear SVMs (LEAD appendix B), cross-fitted.

    Each class k solves liblinear's primal ``1/2 |[w; b]|^2 + svm_c * sum_i max(0, 1 - s_ik (w.x_i + b))^2``
    with ``s_ik = +-1`` (scikit-learn ``LinearSVC()`` defaults: squared hinge, bias regularised with
    ``intercept_scaling=1``). With ``folds > 1`` every sample's decision values come from the SVMs
    fitted on the other folds (stratified, seeded by ``generator``); ``folds = 1`` fits and predicts
    on all samples.
    """
    n = len(features)
    augmented = torch.cat([features, torch.ones(n, 1, dtype=features.dtype, device=features.device)], dim=1)
    signs = 2 * one_hot(labels, num_classes, features.dtype) - 1
    gram = augmented.T @ augmented
    if folds <= 1:
        return augmented @ _fit_ovr_svm(augmented, signs, gram, svm_c, max_iter)
    fold_of = stratified_folds(labels, num_classes, folds, generator)
    decision = torch.empty(n, num_classes, dtype=features.dtype, device=features.device)
    for fold in range(folds):
        held_out = fold_of == fold
        if not bool(held_out.any()):
            continue
        held = augmented[held_out]
        train_gram = gram - held.T @ held  # the training folds' Gram without recomputing it
        weights = _fit_ovr_svm(augmented[~held_out], signs[~held_out], train_gram, svm_c, max_iter)
        decision[held_out] = held @ weights
    return decision


def platt_probabilities(decision: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                        max_iter: int = 100) -> torch.Tensor:
    """``[N, K]`` Platt-scaled one-vs-rest probabilities ``sigmoid(a_k d_k + b_k)``, normalised over classes.

    Per class, ``(a_k, b_k)`` minimise the cross-entropy against Platt's smoothed targets
    ``(N_+ + 1)/(N_+ + 2)`` and ``1/(N_- + 2)`` (Platt 1999; Lin, Lin & Weng 2007), by damped Newton
    steps with backtracking, all classes at once. ``decision`` must be held-out decision values
    (cross-fitted), otherwise the sigmoid learns the SVM's over-fit margins. This is scikit-learn's
    ``CalibratedClassifierCV(LinearSVC(), method="sigmoid")`` fitted on out-of-fold values.
    """
    d = decision.double()
    positive = one_hot(labels, num_classes)
    n_pos = positive.sum(dim=0)
    targets = torch.where(positive > 0, (n_pos + 1) / (n_pos + 2), 1 / (len(d) - n_pos + 2))
    slope = torch.zeros(num_classes, dtype=d.dtype, device=d.device)
    offset = torch.log((len(d) - n_pos + 1) / (n_pos + 1)).neg()

    def loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        z = a * d + b  # cross-entropy with soft targets, computed stably from the logits
        return (torch.nn.functional.softplus(z) - targets * z).sum(dim=0)

    current = loss(slope, offset)
    for _ in range(max_iter):
        p = torch.sigmoid(slope * d + offset)
        residual, weight = p - targets, p * (1 - p) + 1e-12
        grad = torch.stack([(residual * d).sum(0), residual.sum(0)], dim=1)
        h_aa, h_ab, h_bb = (weight * d * d).sum(0) + 1e-12, (weight * d).sum(0), weight.sum(0) + 1e-12
        det = h_aa * h_bb - h_ab * h_ab
        step_a = (h_bb * grad[:, 0] - h_ab * grad[:, 1]) / det
        step_b = (h_aa * grad[:, 1] - h_ab * grad[:, 0]) / det
        size = torch.ones_like(slope)
        for _ in range(30):  # backtracking: halve each class's step until its loss does not increase
            trial = loss(slope - size * step_a, offset - size * step_b)
            worse = trial > current + 1e-12 * current.abs()
            if not bool(worse.any()):
                break
            size = torch.where(worse, size / 2, size)
        slope, offset = slope - size * step_a, offset - size * step_b
        previous, current = current, loss(slope, offset)
        if bool(((previous - current).abs() <= 1e-12 * previous.abs().clamp_min(1.0)).all()):
            break
    positive_probability = torch.sigmoid(slope * d + offset)
    return positive_probability / positive_probability.sum(dim=1, keepdim=True)


def ovr_svm_probabilities(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                          calibration: str = "platt", svm_c: float = 1.0, max_iter: int = 10, folds: int = 5,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """``[N, K]`` class probabilities of the cross-fitted one-vs-rest SVM (:func:`ovr_svm_decision_values`).

    ``calibration="platt"``: :func:`platt_probabilities` (calibrated). ``"normalised-sigmoid"``:
    ``sigmoid(d_k) / sum_j sigmoid(d_j)``, the literal "normalized" decision values of appendix B;
    not calibrated (hinge decision values are not log-odds) and kept for the ablation.
    """
    decision = ovr_svm_decision_values(features, labels, num_classes, svm_c=svm_c, max_iter=max_iter, folds=folds,
                                       generator=generator)
    if calibration == "platt":
        return platt_probabilities(decision, labels, num_classes)
    positive = torch.sigmoid(decision)
    return positive / positive.sum(dim=1, keepdim=True)


def ledoit_wolf_shrinkage(squared_norms: torch.Tensor, covariance: torch.Tensor, n: int) -> float:
    """Ledoit & Wolf (2004) shrinkage of ``covariance`` (of ``n`` centred rows) towards ``tr/D * I``, in [0, 1].

    ``squared_norms`` are the rows' squared norms; ``sum |x_i|^4 / n - |S|_F^2`` over ``n`` is the
    variance of the sample covariance's entries, ``|S - mu I|_F^2`` their dispersion.
    """
    dim = covariance.shape[0]
    mu = covariance.trace() / dim
    frobenius = (covariance * covariance).sum()
    dispersion = frobenius - dim * mu * mu
    variance = (squared_norms.square().sum() / n - frobenius) / n
    if float(dispersion) <= 0:
        return 1.0
    return float(torch.clamp(variance / dispersion, 0.0, 1.0))


def lda_probabilities(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, folds: int = 5,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """``[N, K]`` posteriors of a Ledoit-Wolf shrinkage LDA (LEAD appendix C.1's alternative), cross-fitted.

    Every sample's posterior comes from the LDA fitted on the other folds (``folds = 1``: in-sample),
    with the pooled within-class covariance shrunk as scikit-learn's ``shrinkage="auto"``.
    """
    features = features.double()  # an over-confident LDA needs the range: a float32 posterior can underflow to 0
    fold_of = (torch.zeros(len(labels), dtype=torch.long, device=labels.device) if folds <= 1
               else stratified_folds(labels, num_classes, folds, generator))
    gram = features.T @ features
    posteriors = torch.empty(len(labels), num_classes, dtype=features.dtype, device=features.device)
    for fold in range(max(folds, 1)):
        held_out = fold_of == fold
        if not bool(held_out.any()):
            continue
        fit = ~held_out if folds > 1 else held_out
        x, y = features[fit], labels[fit]
        counts = class_counts(y, num_classes).to(x.dtype)
        means = class_means(x, y, num_classes)
        # Within-class scatter from the full Gram minus the held-out fold's (no second N x D^2 product).
        fit_gram = gram - features[held_out].T @ features[held_out] if folds > 1 else gram
        covariance = (fit_gram - (means.T * counts) @ means) / len(x)
        check_within_class_variance("lead", covariance)
        squared_norms = (x - means[y]).square().sum(dim=1)
        shrinkage = ledoit_wolf_shrinkage(squared_norms, covariance, len(x))
        directions = discriminant_directions(means, shrink(covariance, shrinkage))
        posteriors[held_out] = lda_posteriors(features[held_out], means, (counts + 1e-12) / len(x), directions)
    return posteriors


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


def initial_probabilities(features: torch.Tensor, labels: torch.Tensor, num_classes: int, classifier: str, *,
                          svm_c: float = 1.0, svm_max_iter: int = 10, folds: int = 5,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """``F_0``: cross-fitted class probabilities of the initial classifier (one of ``INITIAL_CLASSIFIERS``)."""
    if classifier == "lda":
        return lda_probabilities(features, labels, num_classes, folds=folds, generator=generator)
    calibration = "platt" if classifier == "svm-platt" else "normalised-sigmoid"
    return ovr_svm_probabilities(features, labels, num_classes, calibration=calibration, svm_c=svm_c,
                                 max_iter=svm_max_iter, folds=folds, generator=generator)


def class_mean_eigenvalues(layers: Sequence[tuple[torch.Tensor, torch.Tensor]], features: torch.Tensor,
                           labels: torch.Tensor, num_classes: int, samples_per_class: int,
                           generator: torch.Generator) -> tuple[torch.Tensor, float]:
    """Mean NTK eigenvalue of each class (``trace / S`` of its ``S x S`` kernel) and of all chosen samples pooled.

    The pooled value is the mean eigenvalue of the class-mixed NTK (the paper's "original NTK",
    appendix C.2); all classes share one batched pass.
    """
    chosen = [members[:samples_per_class]
              for members in shuffled_by_class(labels, range(num_classes), lambda n: torch.randperm(n, generator=generator))]
    diagonal = head_ntk_diagonal(layers, features[torch.cat(chosen)]).double()
    sample_class = torch.repeat_interleave(torch.arange(num_classes, device=features.device),
                                           torch.tensor([len(c) for c in chosen], device=features.device))
    per_class = torch.zeros(num_classes, dtype=torch.float64, device=features.device).index_add_(0, sample_class,
                                                                                               diagonal)
    return per_class / torch.bincount(sample_class, minlength=num_classes).double(), float(diagonal.mean())


@register("lead", consumes="features", paper=PAPER, stochastic=True, dtype=torch.float32)
def lead(inputs: MetricInputs, *, t: float = 1.0, time_unit: float | None = None, initial: str = "lda",
         samples_per_class: int = 64, hidden: Sequence[int] = (1024, 2048), svm_c: float = 1.0,
         svm_max_iter: int = 10, folds: int = 5, seed: int = 0) -> float:
    """LEAD: minus the cross-entropy of logits evolved by the NTK closed form (Hu et al., CVPR'24, Eq. 7).

    Args:
        t: time of the dynamics (paper default 1). ``t = 0`` scores ``F_0`` alone, ``t -> inf`` the labels.
        time_unit: the unit of ``eta * lambda`` per unit of t. ``None`` (default): the model's pooled
            mean NTK eigenvalue, so the exponent of class k is ``t * lambda_k / lambda_pooled`` (order 1
            at t = 1, saturated by t = 10, as the paper's Fig. 4 describes; comparable across feature
            dimensions). A number fixes it for every model (``1e6``: the previous absolute reading).
        initial: classifier for ``F_0`` (appendix B / C.1): ``"lda"`` (Ledoit-Wolf LDA; the default,
            chosen by evidence, leave-one-dataset-out, see docs/methods.md), ``"svm-platt"`` (the
            paper's one-vs-rest linear SVM, Platt-calibrated) or ``"svm-normalised"`` (uncalibrated
            ``sigmoid(d)/sum``, the previous behaviour, ablation only).
        samples_per_class: S, samples of each class in its NTK (fewer if the class is smaller).
        hidden: hidden widths of the random MLP head.
        svm_c: SVM regularisation (``LinearSVC`` ``C``); svm_max_iter: L-BFGS iterations per fit.
        folds: cross-fitting folds for ``F_0`` (1: fit and predict in-sample).
        seed: seeds the folds, the head initialisation and the NTK samples.

    Example:
        >>> import numpy as np
        >>> from hf_tsel.metrics import score
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1, 2], 40)
        >>> good = rng.normal(size=(120, 16)) + 3 * np.eye(16)[y]
        >>> score("lead", good, y, hidden=(64, 64)) > score("lead", rng.normal(size=(120, 16)), y, hidden=(64, 64))
        True
    """
    if not (t >= 0 and math.isfinite(t)) or (time_unit is not None and not (time_unit > 0 and math.isfinite(time_unit))):
        raise MetricInputError("lead", f"t must be finite and >= 0 and time_unit None or > 0 (got t={t}, "
                               f"time_unit={time_unit}).", "use the defaults t=1, time_unit=None.")
    if initial not in INITIAL_CLASSIFIERS:
        raise MetricInputError("lead", f"unknown initial classifier {initial!r}.",
                               f"use one of {', '.join(INITIAL_CLASSIFIERS)}.")
    if samples_per_class < 1 or not hidden or min(hidden) < 1:
        raise MetricInputError("lead", f"samples_per_class ({samples_per_class}) and every hidden width ({hidden}) "
                               "must be >= 1.", "use the paper's samples_per_class=64, hidden=(1024, 2048).")
    features, labels, k = _standardise(inputs.features), inputs.labels, inputs.num_classes
    generator = torch.Generator().manual_seed(int(seed))
    probabilities = initial_probabilities(features, labels, k, initial, svm_c=svm_c, svm_max_iter=svm_max_iter,
                                          folds=folds, generator=generator)
    layers = init_mlp_head(features.shape[1], k, hidden, generator=generator, dtype=features.dtype,
                           device=features.device)
    per_class, pooled = class_mean_eigenvalues(layers, features, labels, k, samples_per_class, generator)
    rate = per_class / (pooled if time_unit is None else time_unit)
    evolved = evolve_logits(probabilities.double(), one_hot(labels, k), rate[labels], t)
    # F_t is a convex combination of probability vectors: its cross-entropy with the labels is -log F_t[y].
    true_class = evolved[torch.arange(len(labels), device=labels.device), labels]
    return float(torch.log(true_class.clamp_min(torch.finfo(true_class.dtype).tiny)).mean())  # t = 0: F_0 may be 0
