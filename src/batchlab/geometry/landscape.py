"""Loss landscapes between and around minima.

**1-D parametric plot** (Keskar et al. 2017, Figure 3). For two minima x_A and x_B of the same
architecture (Keskar: x_A = x_SB, x_B = x_LB) the network with parameters

    x(α) = (1 − α) x_A + α x_B,    α ∈ [−1, 2] (31 points by default),

is evaluated on training and test data: mean cross-entropy and accuracy, in eval mode (a user's
task's own loss and metric with ``objective=``; ``train_acc``/``test_acc`` then hold that metric,
named by the line's ``metric``). α = 0 is
x_A and α = 1 is x_B, exactly: the combination is computed as ``(1 − α)·a + α·b``, which is
``a`` at α = 0 and ``b`` at α = 1 in floating point.

Batch normalization. A network with batch norm is not a function of its weights alone: at test
time it also uses each layer's running mean and variance. Two ways are offered (``bn=``):

* ``"recompute"`` (default): at each α the running statistics are thrown away and measured
  again for the interpolated weights, by one pass over the training examples in train mode with
  ``momentum=None`` (cumulative average over the pass's chunks) -- the procedure of
  :func:`torch.optim.swa_utils.update_bn`, with dropout active as when the statistics were
  first accumulated (its random masks drawn from a generator seeded with ``seed``, the caller's
  global random state restored afterwards). The network is then evaluated in eval mode. The
  curve then measures the *weights* at x(α), each with statistics that fit them.
* ``"interpolate"``: the running mean and variance are interpolated together with the weights,
  with the same α. This is what Keskar et al.'s own parametric-plot code does (it interpolates
  every weight of the Keras model, batch-norm statistics included); it needs no data pass and
  reproduces both minima exactly. But outside [0, 1] the extrapolated variance
  (1 − α)v_A + αv_B falls below zero wherever v_B < v_A·(α − 1)/α, and batch norm is undefined
  there; such entries are set to 0 (the nearest valid variance) and counted per α in
  ``clamped_variances``, and the loss then explodes because of the statistics, not the weights.

Why recompute is the default: two minima found by different batch sizes can differ a lot in the
scale of their weights (a batch-norm network computes the same function when the weights before a
batch-norm layer are scaled, so nothing holds that scale fixed), and their running variances
differ by the square of it. On ``batchlab gap --scale quick`` (first seed) the F1 minimum of
B = 16 has running variances more than 11 times those of B = 400 in 2,483 of its 2,560
batch-norm features, so interpolation clamps them already at α = 1.1, where the training loss
jumps from 0.001 (α = 1) to 4.5·10^10. Interpolation stays available, and exact, for comparison
with Keskar et al.'s code.

Integer buffers (batch norm's ``num_batches_tracked``) are taken from x_A.

**2-D contour** (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets"). Around one
minimum θ*, the training loss f(θ* + a·d₁ + b·d₂) on a grid (a, b) ∈ [−span, span]² (21 × 21 over
[−1, 1]² by default). d₁ and d₂ are Gaussian directions drawn from ``torch.Generator`` seeded
with ``seed`` (d₁ first, then d₂, parameter by parameter, on the CPU) and *filter-normalized*:
for every weight tensor with two or more dimensions, each filter j (index j along dimension 0: a
conv output channel, a row of a linear layer) is rescaled to d_j ← ‖θ*_j‖ · d_j / ‖d_j‖, so a step
of 1 along d moves each filter by its own norm and the picture does not depend on how the
network's scale is spread over its layers. Biases and batch-norm weights and biases (all
one-dimensional parameters) are 0 in both directions, as in Li et al.'s ``ignore_biasbn``
option; batch-norm running statistics stay at θ*'s. The grid is symmetric around 0, so with an
odd number of steps its centre is exactly θ*.

Neither function changes the caller's models: every evaluation happens on a private copy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from batchlab.data import TensorSplit
from batchlab.errors import ConfigError
from batchlab.training.loop import evaluate
from batchlab.training.objective import ACCURACY, CLASSIFICATION, Objective

BN_INTERPOLATE = "interpolate"
BN_RECOMPUTE = "recompute"
BN_MODES = (BN_INTERPOLATE, BN_RECOMPUTE)
DEFAULT_BN_MODE = BN_RECOMPUTE

# Keskar et al.'s Figure 3 range and a point every 0.1.
DEFAULT_ALPHA_RANGE = (-1.0, 2.0, 31)
DEFAULT_GRID_STEPS = 21
DEFAULT_SPAN = 1.0
# Examples per forward pass of the batch-norm recompute pass (the normalization batch).
RECOMPUTE_CHUNK = 500


@dataclass(frozen=True)
class LinePoint:
    """The network x(α) evaluated: mean cross-entropy and accuracy on training and test data."""

    alpha: float
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    clamped_variances: int = 0


@dataclass(frozen=True)
class ParametricLine:
    """Keskar's 1-D parametric plot between x_A (α = 0) and x_B (α = 1)."""

    points: tuple[LinePoint, ...]
    bn: str
    train_examples: int
    test_examples: int
    has_batch_norm: bool
    # The metric in the points' *_acc fields: "acc" (accuracy), or a user's task's metric key; and
    # the loss in their *_loss fields.
    metric: str = ACCURACY
    loss: str = CLASSIFICATION.loss_name

    @property
    def alphas(self) -> list[float]:
        return [p.alpha for p in self.points]

    def column(self, name: str) -> list[float]:
        return [getattr(p, name) for p in self.points]

    def at(self, alpha: float) -> LinePoint:
        """The point whose α is closest to ``alpha``."""
        return min(self.points, key=lambda p: abs(p.alpha - alpha))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["points"] = [asdict(p) for p in self.points]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ParametricLine":
        points = tuple(LinePoint(**p) for p in data["points"])
        return cls(points, data["bn"], int(data["train_examples"]), int(data["test_examples"]),
                   bool(data["has_batch_norm"]), str(data.get("metric", ACCURACY)),
                   str(data.get("loss", CLASSIFICATION.loss_name)))


@dataclass(frozen=True)
class ContourGrid:
    """Li et al.'s filter-normalized 2-D slice: ``loss[i][j]`` = f(θ* + a_j d₁ + b_i d₂)."""

    a: tuple[float, ...]
    b: tuple[float, ...]
    loss: tuple[tuple[float, ...], ...]
    center_loss: float
    examples: int
    seed: int
    span: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["a"], data["b"] = list(self.a), list(self.b)
        data["loss"] = [list(row) for row in self.loss]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ContourGrid":
        return cls(tuple(data["a"]), tuple(data["b"]), tuple(tuple(r) for r in data["loss"]),
                   float(data["center_loss"]), int(data["examples"]), int(data["seed"]), float(data["span"]))


# --------------------------------------------------------------------------------------- checks


def alpha_grid(start: float, stop: float, count: int) -> list[float]:
    """``count`` evenly spaced α from ``start`` to ``stop`` inclusive (numpy.linspace's rule)."""
    for name, value in (("alpha start", start), ("alpha stop", stop)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{name} {value!r} is not a finite number; allowed: e.g. --alphas -1 2 31")
    if isinstance(count, bool) or not isinstance(count, int) or count < 2:
        raise ConfigError(f"number of alphas {count!r} is invalid; allowed: an integer ≥ 2, e.g. --alphas -1 2 31")
    if not start < stop:
        raise ConfigError(f"alpha range {start:g} … {stop:g} is empty; allowed: start < stop, e.g. --alphas -1 2 31")
    step = (stop - start) / (count - 1)
    # Rounded so that 0 and 1 come out exactly when they lie on the grid (−1 + 10·0.1 is not 0).
    return [round(start + i * step, 12) for i in range(count)]


def check_bn_mode(bn: str) -> None:
    if bn not in BN_MODES:
        raise ConfigError(f"unknown batch-norm mode {bn!r}; allowed: {', '.join(BN_MODES)}")


def check_same_architecture(model_a: nn.Module, model_b: nn.Module) -> None:
    """ConfigError unless the two models have the same state-dict entries with the same shapes."""
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    if list(state_a) != list(state_b):
        missing = sorted(set(state_a) ^ set(state_b))[:3]
        raise ConfigError(
            f"the two networks have different layers (e.g. {', '.join(missing) or 'in another order'}); "
            "allowed: two runs of the same model and hidden widths"
        )
    for name, tensor in state_a.items():
        if tensor.shape != state_b[name].shape or tensor.dtype != state_b[name].dtype:
            raise ConfigError(
                f"layer {name} is {tuple(tensor.shape)} in one network and {tuple(state_b[name].shape)} in the other; "
                "allowed: two runs of the same model and hidden widths"
            )


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) for m in model.modules())


# ----------------------------------------------------------------------------- interpolation


def interpolated_state(
    state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor], alpha: float
) -> tuple[dict[str, torch.Tensor], int]:
    """(1 − α)·a + α·b for every floating entry (weights and batch-norm statistics), integer
    entries from ``a``; running variances below zero set to 0. Returns the state and how many
    variance entries were clamped."""
    state: dict[str, torch.Tensor] = {}
    clamped = 0
    for name, a in state_a.items():
        b = state_b[name]
        if not a.is_floating_point():
            state[name] = a.clone()
            continue
        mixed = (1.0 - alpha) * a + alpha * b
        if name.endswith("running_var"):
            negative = mixed < 0
            clamped += int(negative.sum())
            mixed = mixed.masked_fill(negative, 0.0)
        state[name] = mixed
    return state, clamped


@torch.no_grad()
def recompute_bn_statistics(
    model: nn.Module, x: torch.Tensor, *, chunk_size: int = RECOMPUTE_CHUNK, seed: int = 0
) -> None:
    """Replace every batch-norm layer's running mean/variance by the cumulative average over one
    pass of ``x`` in chunks of ``chunk_size`` (train mode, ``momentum=None``, dropout active with
    masks drawn under ``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng`).

    Each layer's ``momentum`` and every module's train/eval flag are restored afterwards; only
    the running statistics (and ``num_batches_tracked``) change. Without batch norm: nothing.
    """
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not layers:
        return
    saved_momenta = [m.momentum for m in layers]
    saved_modes = [(m, m.training) for m in model.modules()]
    devices = [x.device] if x.device.type == "cuda" else []
    try:
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None
        model.train()
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for start in range(0, len(x), chunk_size):
                model(x[start : start + chunk_size])
    finally:
        for layer, momentum in zip(layers, saved_momenta):
            layer.momentum = momentum
        for module, training in saved_modes:
            module.training = training


def parametric_line(
    model_a: nn.Module,
    model_b: nn.Module,
    train: TensorSplit,
    test: TensorSplit,
    *,
    alphas: Sequence[float] | None = None,
    bn: str = DEFAULT_BN_MODE,
    seed: int = 0,
    objective: Objective = CLASSIFICATION,
) -> ParametricLine:
    """Keskar's f(x(α)) for x(α) = (1 − α)x_A + αx_B on ``train`` and ``test`` (module docstring).

    ``train`` is also the data of the batch-norm recompute pass when ``bn="recompute"``. The
    models must have the same architecture; they are not modified.
    """
    check_bn_mode(bn)
    check_same_architecture(model_a, model_b)
    alphas = list(alpha_grid(*DEFAULT_ALPHA_RANGE) if alphas is None else alphas)
    if not alphas:
        raise ConfigError("no alpha given; allowed: one or more numbers, e.g. --alphas -1 2 31")
    state_a = {k: v.detach() for k, v in model_a.state_dict().items()}
    state_b = {k: v.detach() for k, v in model_b.state_dict().items()}
    scratch = _private_copy(model_a)
    points = []
    for alpha in alphas:
        state, clamped = interpolated_state(state_a, state_b, float(alpha))
        scratch.load_state_dict(state)
        if bn == BN_RECOMPUTE:
            recompute_bn_statistics(scratch, train.x, seed=seed)
            clamped = 0
        train_loss, train_acc = evaluate(scratch, train, objective=objective)
        test_loss, test_acc = evaluate(scratch, test, objective=objective)
        points.append(LinePoint(float(alpha), train_loss, train_acc, test_loss, test_acc, clamped))
    return ParametricLine(tuple(points), bn, len(train), len(test), has_batch_norm(model_a), objective.metric_name,
                          objective.loss_name)


# ---------------------------------------------------------------------------------- contour


def filter_normalized_direction(model: nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One random direction, parameter by parameter, filter-normalized as in Li et al. 2018.

    Drawn in float32 on the CPU from ``generator`` in ``named_parameters()`` order (a draw is
    made for one-dimensional parameters too, then zeroed, so adding a layer type does not shift
    the other draws), then moved to each parameter's device and dtype.
    """
    direction = {}
    for name, parameter in model.named_parameters():
        theta = parameter.detach()
        draw = torch.randn(theta.shape, generator=generator, dtype=torch.float32)
        if theta.dim() <= 1:
            draw.zero_()
        else:
            weight = theta.to("cpu", torch.float32)
            filter_norms = weight.flatten(1).norm(dim=1)
            draw_norms = draw.flatten(1).norm(dim=1)
            scale = filter_norms / draw_norms.clamp_min(torch.finfo(torch.float32).tiny)
            draw = draw * scale.view(-1, *([1] * (draw.dim() - 1)))
        direction[name] = draw.to(device=theta.device, dtype=theta.dtype)
    return direction


def grid_points(steps: int, span: float) -> list[float]:
    """``steps`` evenly spaced values over [−span, span] (0 exactly in the middle when odd)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ConfigError(f"grid steps {steps!r} is invalid; allowed: an integer ≥ 2 (odd puts the minimum at the centre)")
    if isinstance(span, bool) or not isinstance(span, (int, float)) or not math.isfinite(span) or span <= 0:
        raise ConfigError(f"span {span!r} is invalid; allowed: a number > 0")
    values = alpha_grid(-float(span), float(span), steps)
    if steps % 2 == 1:
        values[steps // 2] = 0.0
    return values


@torch.no_grad()
def loss_contour(
    model: nn.Module,
    train: TensorSplit,
    *,
    steps: int = DEFAULT_GRID_STEPS,
    span: float = DEFAULT_SPAN,
    seed: int = 0,
    objective: Objective = CLASSIFICATION,
) -> ContourGrid:
    """Li et al.'s training loss f(θ* + a·d₁ + b·d₂) on a ``steps`` × ``steps`` grid (module
    docstring), in eval mode (the loss of ``objective``). ``model`` is not modified."""
    axis = grid_points(steps, span)
    generator = torch.Generator().manual_seed(seed)
    first = filter_normalized_direction(model, generator)
    second = filter_normalized_direction(model, generator)
    scratch = _private_copy(model)
    center = {name: p.detach().clone() for name, p in model.named_parameters()}
    parameters = dict(scratch.named_parameters())
    rows = []
    for b in axis:
        row = []
        for a in axis:
            for name, theta in center.items():
                parameters[name].copy_(theta + a * first[name] + b * second[name])
            row.append(evaluate(scratch, train, objective=objective)[0])
        rows.append(tuple(row))
    center_loss = evaluate(model, train, objective=objective)[0]
    return ContourGrid(tuple(axis), tuple(axis), tuple(rows), center_loss, len(train), seed, float(span))


def _private_copy(model: nn.Module) -> nn.Module:
    """A deep copy to evaluate on, so the caller's weights, buffers and modes stay untouched."""
    scratch = copy.deepcopy(model)
    for parameter in scratch.parameters():
        parameter.requires_grad_(False)
    return scratch


# ------------------------------------------------------------------------------ record keys


def parametric_record_key(
    run_a: str, run_b: str, alphas: Sequence[float], bn: str, train_examples: int | None,
    test_examples: int | None, seed: int,
) -> str:
    """The store key (kind ``landscape``) of a parametric line: both runs and every option that
    changes its numbers (``all`` for a whole split)."""
    grid = f"{alphas[0]:g}:{alphas[-1]:g}:{len(alphas)}"
    return (
        f"parametric|{run_a}|{run_b}|alphas={grid}|bn={bn}|examples={_count(train_examples)}"
        f"|test_examples={_count(test_examples)}|seed={seed}"
    )


def contour_record_key(run: str, steps: int, span: float, examples: int | None, seed: int) -> str:
    """The store key (kind ``landscape``) of a 2-D contour around ``run``'s minimum."""
    return f"contour|{run}|steps={steps}|span={span:g}|examples={_count(examples)}|seed={seed}"


def _count(examples: int | None) -> str:
    return "all" if examples is None else str(examples)
