"""The one metric registry: metadata, lookup and the public ``score``/``score_zoo`` entry points."""

from __future__ import annotations

import contextlib
import enum
import inspect
import math
import numbers
import types
import typing
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Literal, Mapping

import numpy as np
import torch

from ._validation import MetricInputError, MetricInputs, prepare_inputs, prepare_model_inputs

__all__ = [
    "InputKind", "MetricSpec", "MetricTable", "register", "register_transform", "get_metric", "list_metrics", "score",
    "score_zoo",
    "check_parameters",
]

class InputKind(enum.StrEnum):
    """What a metric consumes; the value is the text shown by ``hf-tsel metrics``.

    ``REFERENCE_FEATURES``: the model's features of its *source reference set* with their source labels
    (not the target's); the pipeline feeds them from the zoo entry's ``source_reference`` dataset.
    ``MODEL_SET``: every model's features at once (the metric scales its parts over the models).
    """

    FEATURES = "features"
    SOURCE_PROBS = "source_probs"
    FEATURES_AND_SOURCE_PROBS = "features+source_probs"
    REFERENCE_FEATURES = "reference_features"
    MODEL_SET = "model_set"

    @property
    def needs_features(self) -> bool:
        """Whether the metric reads features (the target's, or for ``REFERENCE_FEATURES`` the reference set's)."""
        return self is not InputKind.SOURCE_PROBS

    @property
    def needs_source_probs(self) -> bool:
        """Whether the metric reads the source classifier head's probabilities."""
        return self in (InputKind.SOURCE_PROBS, InputKind.FEATURES_AND_SOURCE_PROBS)


def _input_kind(name: str, consumes: InputKind | str) -> InputKind:
    try:
        return InputKind(consumes)
    except ValueError:
        raise ValueError(f"metric {name!r}: consumes={consumes!r} is not an input kind; use one of "
                         f"{', '.join(repr(k.value) for k in InputKind)} (hf_tsel.metrics.InputKind).") from None


@dataclass(frozen=True)
class MetricSpec:
    """Metadata of one registered metric.

    ``fn`` receives validated :class:`MetricInputs` (a ``dict`` of them, keyed by model name, for
    ``consumes=InputKind.MODEL_SET``) plus keyword parameters, and returns the score in the reference's own
    direction; :func:`score` negates it when ``negated`` so every exposed score is higher-is-better.
    ``prior``: for a baseline that ranks by a fact about the model, not the target data (``prior:params``), that
    fact; ``metadata_fact``: the fact it reads from each zoo entry's ``metadata`` (passed as ``priors=``).
    """

    name: str
    fn: Callable[..., Any] = field(repr=False)
    consumes: InputKind
    paper: str
    reference: str = ""
    stochastic: bool = False
    negated: bool = False
    aliases: tuple[str, ...] = ()
    summary: str = ""
    min_samples_per_class: int = 2
    dtype: torch.dtype = torch.float64
    # For a score that is the mean of per-sample values (a cross-validated accuracy): those values, ``[N]``
    # (NaN where not computed), so a bootstrap can resample them exactly instead of recomputing the metric.
    per_sample: Callable[..., torch.Tensor] | None = field(default=None, repr=False)
    prior: str | None = None
    metadata_fact: str | None = None

    @property
    def is_prior(self) -> bool:
        """Whether this is a model prior (a fact about the model, constant over the target samples)."""
        return self.prior is not None

    @property
    def higher_is_better(self) -> bool:
        """Always True: scores of lower-is-better references are negated before they are returned."""
        return True

    @property
    def parameters(self) -> tuple[str, ...]:
        """Keyword parameters the metric accepts (besides ``seed``)."""
        return tuple(name for name, p in inspect.signature(self.fn).parameters.items()
                     if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "seed")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "consumes": self.consumes.value, "higher_is_better": True,
                "reference_lower_is_better": self.negated, "stochastic": self.stochastic, "paper": self.paper,
                "reference": self.reference, "aliases": list(self.aliases), "parameters": list(self.parameters),
                "summary": self.summary}


@dataclass(frozen=True)
class _Transform:
    """A feature transform that can prefix any feature metric, e.g. ``ped+logme``."""

    prefix: str
    fn: Callable[..., MetricInputs]
    paper: str
    summary: str

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(name for name, p in inspect.signature(self.fn).parameters.items()
                     if p.kind is inspect.Parameter.KEYWORD_ONLY)


_METRICS: dict[str, MetricSpec] = {}
_ALIASES: dict[str, str] = {}
_TRANSFORMS: dict[str, _Transform] = {}


def register(name: str, *, consumes: InputKind | str, paper: str, reference: str = "", stochastic: bool = False,
             negated: bool = False, aliases: tuple[str, ...] = (), min_samples_per_class: int = 2,
             dtype: torch.dtype = torch.float64, per_sample: Callable[..., torch.Tensor] | None = None,
             prior: str | None = None,
             metadata_fact: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding a metric implementation to the registry (the docstring's first line is its summary).

    ``consumes``: an :class:`InputKind` (or its text value). ``per_sample``: for a metric whose score is the
    mean of per-sample values, the function returning them (same inputs and parameters as the metric), used by
    the bootstrap of :func:`hf_tsel.recommend`. ``prior``, ``metadata_fact``: see :class:`MetricSpec`.
    """
    kind = _input_kind(name, consumes)

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        for key in (name, *aliases):
            if key in _METRICS or key in _ALIASES:
                raise ValueError(f"metric name {key!r} is registered twice")
        summary = (inspect.getdoc(fn) or "").split("\n")[0]
        _METRICS[name] = MetricSpec(name=name, fn=fn, consumes=kind, paper=paper, reference=reference,
                                    stochastic=stochastic, negated=negated, aliases=aliases, summary=summary,
                                    min_samples_per_class=min_samples_per_class, dtype=dtype, per_sample=per_sample,
                                    prior=prior, metadata_fact=metadata_fact)
        _ALIASES.update({alias: name for alias in aliases})
        return fn

    return decorator


def register_transform(prefix: str, *, paper: str) -> Callable[[Callable[..., MetricInputs]], Callable[..., MetricInputs]]:
    """Decorator registering a feature transform usable as ``<prefix>+<feature metric>``.

    The transform receives validated inputs plus its own keyword parameters and returns new inputs
    (same labels, transformed features); the base metric then scores those.
    """

    def decorator(fn: Callable[..., MetricInputs]) -> Callable[..., MetricInputs]:
        summary = (inspect.getdoc(fn) or "").split("\n")[0]
        _TRANSFORMS[prefix] = _Transform(prefix=prefix, fn=fn, paper=paper, summary=summary)
        return fn

    return decorator


def _unknown_metric(name: str) -> MetricInputError:
    known = ", ".join(sorted(_METRICS))
    return MetricInputError(name, f"unknown metric {name!r}.", f"use one of: {known} (or '<transform>+<metric>' "
                            f"with a transform in: {', '.join(sorted(_TRANSFORMS)) or 'none'}); see `hf-tsel metrics`.")


def _composed(transform: _Transform, base: MetricSpec) -> MetricSpec:
    transform_params = set(transform.parameters)
    base_signature = inspect.signature(base.fn)

    def composed_fn(inputs: MetricInputs, **params: Any) -> float:
        own = {k: v for k, v in params.items() if k in transform_params}
        rest = {k: v for k, v in params.items() if k not in transform_params}
        return base.fn(transform.fn(inputs, **own), **rest)

    parameters = [p for p in base_signature.parameters.values()] + [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=inspect.signature(transform.fn).parameters[n].default)
        for n in transform.parameters if n not in base_signature.parameters]
    composed_fn.__signature__ = base_signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    composed_fn.parts = (transform.fn, base.fn)  # type: ignore[attr-defined]  (their type hints check parameters)
    return replace(base, name=f"{transform.prefix}+{base.name}", fn=composed_fn, aliases=(), per_sample=None,
                   paper=f"{transform.paper}; base: {base.paper}",
                   summary=f"{transform.summary} Then: {base.summary}")


def get_metric(name: str) -> MetricSpec:
    """Look up a metric by name, alias or ``<transform>+<metric>``.

    Example:
        >>> get_metric("logme").consumes
        <InputKind.FEATURES: 'features'>
    """
    if not isinstance(name, str):
        raise MetricInputError(str(name), f"a metric name is a string, got {type(name).__name__}.",
                               "pass a registry name such as 'logme' (see hf_tsel.metrics.list_metrics()).")
    key = name.strip().lower()
    if "+" in key:
        prefix, base_name = key.split("+", 1)
        if prefix not in _TRANSFORMS:
            raise _unknown_metric(name)
        base = get_metric(base_name)
        if base.consumes is not InputKind.FEATURES:
            raise MetricInputError(name, f"{prefix} transforms features, but {base.name!r} consumes {base.consumes}.",
                                   f"combine {prefix} with a feature-based metric such as {prefix}+logme.")
        return _composed(_TRANSFORMS[prefix], base)
    key = _ALIASES.get(key, key)
    if key not in _METRICS:
        raise _unknown_metric(name)
    return _METRICS[key]


class MetricTable(list):
    """A list of :class:`MetricSpec` that prints as a table."""

    def __str__(self) -> str:
        header = f"{'name':<30} {'consumes':<21} {'stochastic':<10} {'negated':<8} paper"
        rows = [f"{m.name:<30} {m.consumes:<21} {str(m.stochastic):<10} {str(m.negated):<8} {m.paper}" for m in self]
        return "\n".join([header, "-" * len(header), *rows])

    __repr__ = __str__


def list_metrics(*, include_transforms: bool = True) -> MetricTable:
    """All registered metrics with their metadata (``print(list_metrics())`` shows a table).

    With ``include_transforms`` every ``<transform>+<feature metric>`` combination is listed too.
    """
    specs = sorted(_METRICS.values(), key=lambda m: m.name)
    if include_transforms:
        specs += [_composed(t, m) for t in sorted(_TRANSFORMS.values(), key=lambda t: t.prefix)
                  for m in specs if m.consumes is InputKind.FEATURES]
    return MetricTable(specs)


def _parameter_types(spec: MetricSpec) -> dict[str, Any]:
    """Resolved type hints of the metric's keyword parameters (of both parts of a composed metric)."""
    hints: dict[str, Any] = {}
    for fn in getattr(spec.fn, "parts", (spec.fn,)):
        try:
            hints.update(typing.get_type_hints(fn))
        except (NameError, TypeError):  # an unresolvable hint only skips the value check
            continue
    return {name: hints[name] for name in spec.parameters if name in hints}


def _accepts(hint: Any, value: Any) -> tuple[bool, str]:
    """Whether ``value`` fits the type hint ``hint``, and a description of the allowed values."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    allowed, ok = [], False
    for option in options:
        if option is type(None):
            allowed.append("None")
            ok |= value is None
        elif typing.get_origin(option) is Literal:
            allowed.append(" or ".join(repr(v) for v in typing.get_args(option)))
            ok |= value in typing.get_args(option)
        elif option is bool:
            allowed.append("true or false")
            ok |= isinstance(value, bool)
        elif option is int:
            allowed.append("a whole number")
            ok |= isinstance(value, numbers.Integral) and not isinstance(value, bool)
        elif option is float:
            allowed.append("a finite number")
            ok |= isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        elif option is str:
            allowed.append("a string")
            ok |= isinstance(value, str)
        else:
            return True, ""  # sequences, tensors, Any: checked by the metric itself
    return ok, " or ".join(allowed)


def check_parameters(spec: MetricSpec, params: Mapping[str, Any]) -> None:
    """Raise :class:`MetricInputError` naming the parameter if ``params`` has an unknown name or a bad value.

    Example:
        >>> check_parameters(get_metric("gbc"), {"gaussian_type": "full"})
        Traceback (most recent call last):
        hf_tsel.errors.MetricInputError: [gbc] parameter gaussian_type='full' is not allowed. Fix: use 'spherical' or 'diagonal'.
    """
    accepted = set(spec.parameters)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise MetricInputError(spec.name, f"unknown parameter(s) {', '.join(unknown)}.",
                               f"accepted parameters: {', '.join(sorted(accepted)) or 'none'}.")
    for name, hint in _parameter_types(spec).items():
        if name in params:
            ok, allowed = _accepts(hint, params[name])
            if not ok:
                raise MetricInputError(spec.name, f"parameter {name}={params[name]!r} is not allowed.", f"use {allowed}.")


def _call_kwargs(spec: MetricSpec, seed: int | None, params: Mapping[str, Any]) -> dict[str, Any]:
    check_parameters(spec, params)
    kwargs = dict(params)
    if "seed" in inspect.signature(spec.fn).parameters:
        kwargs["seed"] = 0 if seed is None else int(seed)
    return kwargs


def _finite(spec: MetricSpec, value: Any, model: str | None = None) -> float:
    value = float(value)
    if not math.isfinite(value):
        where = f" for model {model!r}" if model else ""
        raise MetricInputError(spec.name, f"the score{where} is not finite ({value}); the features are degenerate "
                               "for this metric (e.g. constant or duplicated).", "check the features, or use another metric.")
    return -value if spec.negated else value


def score(name: str, features: Any, labels: Any, *, source_probs: Any = None, seed: int | None = None,
          device: str | torch.device | None = None, **params: Any) -> float:
    """Transferability score of one model; higher is always better.

    Args:
        name: registry name, alias or ``<transform>+<metric>`` (see :func:`list_metrics`).
        features: ``[N, D]`` numpy array or torch tensor of frozen features (``None`` for metrics that
            consume only ``source_probs``); for ``consumes="reference_features"`` metrics, the
            model's features of its source reference images.
        labels: ``[N]`` integer class ids; any values, remapped to ``0..C-1`` (the source classes of
            the reference images for ``reference_features`` metrics).
        source_probs: ``[N, C_s]`` softmax outputs of the model's source head (LEEP, NCE); a
            ``reference_features`` metric given them takes each row's source class from them instead
            of from ``labels``.
        seed: seed of stochastic metrics (default 0); ignored by deterministic ones.
        device: torch device for the computation; default is the device of ``features`` (CPU for numpy).
        **params: metric-specific parameters (``get_metric(name).parameters``).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1], 50)
        >>> x = rng.normal(size=(100, 8)) + 3 * y[:, None]
        >>> score("logme", x, y) > score("logme", rng.normal(size=(100, 8)), y)
        True
    """
    spec = get_metric(name)
    if spec.consumes is InputKind.MODEL_SET:
        raise MetricInputError(spec.name, "this metric is only defined relative to a set of models.",
                               f"call score_zoo({spec.name!r}, {{model_name: features, ...}}, labels).")
    kwargs = _call_kwargs(spec, seed, params)
    # a reference-set metric may take the source classes as probabilities (a source head's softmax, one-hot labels)
    kind = spec.consumes
    uses_probs = kind.needs_source_probs or (kind is InputKind.REFERENCE_FEATURES and source_probs is not None)
    inputs = prepare_inputs(spec.name, features, labels, needs_features=kind.needs_features,
                            needs_source_probs=uses_probs, source_probs=source_probs,
                            device=device, dtype=spec.dtype, min_per_class=spec.min_samples_per_class)
    with _linear_algebra_errors(spec.name):
        return _finite(spec, spec.fn(inputs, **kwargs))


@contextlib.contextmanager
def _linear_algebra_errors(metric: str) -> Iterator[None]:
    """A solver that gives up on valid inputs (ill-conditioned features) is the package's error, naming the metric."""
    try:
        yield
    except (np.linalg.LinAlgError, torch.linalg.LinAlgError) as exc:
        raise MetricInputError(metric, f"a linear-algebra step failed on these features ({' '.join(str(exc).split())}).",
                               "the features are ill-conditioned for this metric: standardise them, drop constant or "
                               "duplicated dimensions, or use another metric.") from None


def score_zoo(name: str, features_by_model: Mapping[str, Any], labels: Any, *,
              source_probs_by_model: Mapping[str, Any] | None = None, seed: int | None = None,
              device: str | torch.device | None = None, **params: Any) -> dict[str, float]:
    """Scores of a set of models on the same labels, ``{model_name: score}``; higher is better.

    Model-set metrics (``consumes="model_set"``, e.g. ETran and NCTI, which min-max scale their parts
    over the models) are only defined here; any other metric is scored model by model.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat(np.arange(3), 100)
        >>> zoo = {"good": rng.normal(size=(300, 8)) + 4 * np.eye(8)[y], "bad": rng.normal(size=(300, 8))}
        >>> s = score_zoo("logme", zoo, y)
        >>> s["good"] > s["bad"]
        True
    """
    spec = get_metric(name)
    if not isinstance(features_by_model, Mapping):
        raise MetricInputError(spec.name, f"features_by_model must map model names to features, got a "
                                          f"{type(features_by_model).__name__}.",
                               "pass {model_name: features}, e.g. dict(zip(names, feature_arrays)).")
    if not features_by_model:
        raise MetricInputError(spec.name, "no models were given.", "pass {model_name: features} for at least one model.")
    probs = source_probs_by_model or {}
    if spec.consumes is not InputKind.MODEL_SET:
        return {model: score(spec.name, feats, labels, source_probs=probs.get(model), seed=seed, device=device, **params)
                for model, feats in features_by_model.items()}
    if len(features_by_model) < 2:
        raise MetricInputError(spec.name, "this metric min-max scales over the models and needs at least 2.",
                               "score at least two models together.")
    kwargs = _call_kwargs(spec, seed, params)
    if probs and "source_probs" in spec.parameters:
        kwargs.setdefault("source_probs", probs)
    inputs = {model: prepare_model_inputs(spec.name, model, feats, labels, needs_features=True,
                                          needs_source_probs=False, device=device, dtype=spec.dtype,
                                          min_per_class=spec.min_samples_per_class)
              for model, feats in features_by_model.items()}
    with _linear_algebra_errors(spec.name):
        values = spec.fn(inputs, **kwargs)
    return {model: _finite(spec, values[model], model) for model in features_by_model}
