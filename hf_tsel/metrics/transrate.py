"""TransRate (Huang et al., ICML 2022): coding rate of the features minus that given the labels."""

from __future__ import annotations

import torch

from ._common import class_counts, gram
from ._registry import register
from ._validation import MetricInputError, MetricInputs

__all__ = ["transrate", "transrate_official", "coding_rate"]


def _smaller_gram(matrix: torch.Tensor) -> torch.Tensor:
    """``AᵀA`` or ``AAᵀ``, whichever is smaller; both have the same non-zero eigenvalues."""
    return gram(matrix) if matrix.shape[0] >= matrix.shape[1] else gram(matrix.T)


def coding_rate(features: torch.Tensor, eps: float) -> torch.Tensor:
    """Rate–distortion ``R(Z, ε) = ½ log det(I + ZᵀZ / (n ε))`` of ``features`` ``[n, d]`` (paper Eq. 2, tllib scaling).

    Evaluated on the smaller of the d×d and n×n Gram matrices (Sylvester's determinant identity)
    with a Cholesky factorisation, since ``I + ZᵀZ/(nε)`` is positive definite.
    """
    gram = _smaller_gram(features) / (len(features) * eps)
    gram.diagonal().add_(1.0)
    chol, info = torch.linalg.cholesky_ex(gram)
    if int(info) != 0:  # only reachable through round-off on huge, nearly singular inputs
        return 0.5 * torch.linalg.slogdet(gram)[1]
    return torch.log(chol.diagonal()).sum()


def _class_subsets(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[torch.Tensor]:
    order = torch.argsort(labels, stable=True)
    return list(torch.split(features[order], class_counts(labels, num_classes).tolist()))


def _check_eps(metric: str, eps: float) -> None:
    if not eps > 0:
        raise MetricInputError(metric, f"eps must be > 0, got {eps}.", "use the default eps=1e-4 or another positive value.")


@register("transrate", consumes="features",
          paper="Huang et al., Frustratingly Easy Transferability Estimation, ICML 2022",
          reference="thuml/Transfer-Learning-Library@c4aa59e:tllib/ranking/transrate.py::transrate")
def transrate(inputs: MetricInputs, *, eps: float = 1e-4) -> float:
    """TransRate: R(Z, ε) − (1/C) Σ_c R(Z_c, ε), the information the features carry about the labels.

    Paper Eq. 5 with the coding rate of Eq. 2, computed as tllib does (the formula used by most
    benchmarks): features centred once globally, class subsets not re-centred, ``R(Z_c)`` scaled by
    the class size ``n_c``, and an unweighted mean over classes. See ``transrate_official`` for the
    authors' repository variant.
    """
    _check_eps("transrate", eps)
    features = inputs.features - inputs.features.mean(dim=0)
    class_rates = torch.stack([coding_rate(part, eps) for part in
                               _class_subsets(features, inputs.labels, inputs.num_classes)])
    return float(coding_rate(features, eps) - class_rates.mean())


def _rates_from_spectrum(features: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``Σ log(1 + |λ|/ε)`` over the eigenvalues λ of ``ZᵀZ/n``, and those eigenvalues."""
    eigenvalues = torch.linalg.eigvalsh(_smaller_gram(features) / len(features))
    return torch.log1p(eigenvalues.abs() / eps).sum(), eigenvalues


@register("transrate_official", consumes="features",
          paper="Huang et al., Frustratingly Easy Transferability Estimation, ICML 2022 (official repository variant)",
          reference="Long-Kai/TransRate@247d41a:generate_transrate/transrate.py::transrate_eig + "
                    "extract_result_utils.py::process_transrate_logs")
def transrate_official(inputs: MetricInputs, *, eps: float = 1e-4) -> float:
    """TransRate as the authors' repository computes it (non-projected path, its default settings).

    Rows are L2-normalised, centred, and L2-normalised again; with λ the eigenvalues of ``ZᵀZ/n``
    and of each ``Z_cᵀZ_c/n_c`` (class subsets not re-centred), ``R = ½ Σ log(1 + λ/ε) / rank(Z)``
    and the score is ``R(Z) − Σ_c (n_c/n) R(Z_c)`` (class term weighted by size). The repository's
    projected default path crashes as shipped and is not reproduced.
    """
    _check_eps("transrate_official", eps)
    features = torch.nn.functional.normalize(inputs.features, dim=1, eps=1e-12)
    features = torch.nn.functional.normalize(features - features.mean(dim=0), dim=1, eps=1e-12)
    dim = features.shape[1]
    rate, eigenvalues = _rates_from_spectrum(features, eps)
    # numpy.linalg.matrix_rank of the d×d matrix ZᵀZ/n: tolerance σ_max · d · machine epsilon.
    rank = int((eigenvalues.abs() > eigenvalues.abs().max() * dim * torch.finfo(eigenvalues.dtype).eps).sum())
    weights = class_counts(inputs.labels, inputs.num_classes).to(features.dtype) / len(features)
    class_rates = torch.stack([_rates_from_spectrum(part, eps)[0] for part in
                               _class_subsets(features, inputs.labels, inputs.num_classes)])
    return float((rate - (weights * class_rates).sum()) / (2 * rank))
