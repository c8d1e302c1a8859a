"""Is the point being measured a minimum?

The rule (:func:`minimum_rule`, :func:`check_minimum`). Sharpness, Hessian and line plots are
about minima, and a trained network's loss has no exact one to stop at, so batchlab decides by a
stated, relative rule: a point θ is *at a minimum* when its full-batch gradient norm is at most a
fraction (default :data:`MINIMUM_GRADIENT_FRACTION` = 1 %) of the full-batch gradient norm at the
run's initialization θ₀,

    ‖∇f(θ)‖ ≤ fraction · ‖∇f(θ₀)‖,

f the mean training cross-entropy over the examples given (batch normalization in eval mode,
:mod:`batchlab.geometry.functional`), each gradient taken at its own network: ‖∇f(θ₀)‖ with θ₀'s
parameters and θ₀'s batch-norm running statistics, never with the trained network's. Relative to θ₀ because the gradient's scale depends on the
network, the loss and the data: one absolute threshold would be strict for one model and loose
for another. The verdict carries both norms, so a table can print the rule and the values; a
point that fails it is reported as "not at a minimum (‖∇f‖ = …)" (:func:`not_at_minimum_note`)
instead of a sharpness.

The one-line warnings of ``batchlab hessian`` and ``batchlab sharpness`` add three more signs
(never an error: a measurement away from a minimum is still a valid number, only not the one
Keskar et al.'s comparison of minima is about):

* the second-order test of :func:`batchlab.geometry.critical.classify` says "not critical",
  "saddle point" or "local maximum" (gradient norm above ``grad_tol``, or curvature below
  −``eig_tol``);
* for sharpness, the slope alone explains the rise: the maximum of the first-order model over
  the box, Σ_j |(Aᵀ∇f(x))_j|·ε(|(A⁺x)_j| + 1), is at least :data:`SLOPE_SHARE` of
  max f − f(x). Then φ measures how steep f is at x, not how curved a minimum is;
* the training accuracy of the stored weights (the run's last logged epoch) lies more than
  :data:`ACCURACY_DROP` below the best training accuracy the run logged: training moved away
  from where it fitted best.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from batchlab.errors import ConfigError
from batchlab.geometry.critical import LOCAL_MINIMUM
from batchlab.geometry.functional import DEFAULT_CHUNK_SIZE, FlatLoss, LossFunction

# ‖∇f(θ)‖ ≤ 1 % of ‖∇f(θ₀)‖: the default of the at-a-minimum rule (module docstring).
MINIMUM_GRADIENT_FRACTION = 0.01
# Half the rise from the slope: beyond this the linear term, not the curvature, makes φ.
SLOPE_SHARE = 0.5
# Two percentage points: more than the epoch-to-epoch wobble of a converged SGD run.
ACCURACY_DROP = 0.02


@dataclass(frozen=True)
class MinimumCheck:
    """The verdict of the at-a-minimum rule and the numbers it compared (module docstring)."""

    at_minimum: bool
    gradient_norm: float
    initial_gradient_norm: float
    fraction: float

    @property
    def threshold(self) -> float:
        """fraction · ‖∇f(θ₀)‖: the largest gradient norm that counts as a minimum."""
        return self.fraction * self.initial_gradient_norm

    @property
    def rule(self) -> str:
        """The rule with its numbers, for a table's caption."""
        return (f"at a minimum when ‖∇f‖ ≤ {self.fraction * 100:g} % of ‖∇f(θ₀)‖ = {self.threshold:.3g} "
                f"(full-batch gradient norms; ‖∇f(θ₀)‖ = {self.initial_gradient_norm:.3g})")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "threshold": self.threshold}


def minimum_rule(
    gradient_norm: float, initial_gradient_norm: float, *, fraction: float = MINIMUM_GRADIENT_FRACTION
) -> MinimumCheck:
    """The at-a-minimum rule on two full-batch gradient norms: ‖∇f(θ)‖ ≤ fraction · ‖∇f(θ₀)‖."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError(f"minimum gradient fraction {fraction!r} is invalid; allowed: a number in (0, 1), e.g. 0.01")
    for name, value in (("gradient norm", gradient_norm), ("initial gradient norm", initial_gradient_norm)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} {value!r} is invalid; allowed: a finite number ≥ 0")
    return MinimumCheck(
        at_minimum=gradient_norm <= fraction * initial_gradient_norm,
        gradient_norm=float(gradient_norm),
        initial_gradient_norm=float(initial_gradient_norm),
        fraction=float(fraction),
    )


def check_minimum(
    model: nn.Module,
    initial: nn.Module | torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    fraction: float = MINIMUM_GRADIENT_FRACTION,
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
    mode: str = "eval",
    loss: LossFunction | None = None,
) -> MinimumCheck:
    """:func:`minimum_rule` for the model's current weights θ against its run's θ₀: both are the
    full-batch gradients of the mean training ``loss`` on ``(x, y)`` (default cross-entropy; a
    user's task passes its own), each taken at its own point.

    ``initial`` is θ₀ as a model of the same architecture — its parameters *and* its buffers
    (batch norm's running statistics), so ‖∇f(θ₀)‖ is the gradient of the network θ₀ was — or,
    for a model without running statistics, θ₀'s flat parameter vector in
    ``named_parameters()`` order. A flat vector for a model whose batch norm uses running
    statistics is a :class:`ConfigError`: swapped into the trained model it would be evaluated
    with the trained model's statistics, a point that never existed.

    ``mode`` (:mod:`batchlab.geometry.functional`): ``"eval"`` (the default) normalizes with
    each model's running statistics, so f is the deterministic function the network computes at
    test time — the function whose minimum Keskar et al.'s sharpness and the Hessian describe —
    and a plain mean over examples, so the chunked full-batch gradient is exact. ``"train"``
    normalizes each chunk with its own batch statistics (the running ones are not used), so
    the result depends on ``chunk_size``; the buffers do not matter there.
    """
    objective = FlatLoss(model, x, y, chunk_size=chunk_size, mode=mode, loss=loss)
    if isinstance(initial, nn.Module):
        initial_objective = FlatLoss(initial, x, y, chunk_size=chunk_size, mode=mode, loss=loss)
        initial_point = None
    else:
        if mode == "eval" and uses_running_statistics(model):
            raise ConfigError(
                "θ₀ given as a flat parameter vector for a model with batch-norm running statistics; allowed: "
                "θ₀ as a model of the same architecture with its own buffers (or mode='train')"
            )
        initial_objective = objective
        initial_point = objective.check_vector(initial, "initial point")
    _, gradient = objective.value_and_grad()
    _, initial_gradient = initial_objective.value_and_grad(initial_point)
    return minimum_rule(float(gradient.norm()), float(initial_gradient.norm()), fraction=fraction)


def uses_running_statistics(model: nn.Module) -> bool:
    """Whether ``model`` in eval mode normalizes with stored running statistics (a batch-norm
    layer that tracks them): its function then depends on buffers, not on its parameters alone."""
    return any(isinstance(module, _BatchNorm) and module.track_running_stats and module.running_mean is not None
               for module in model.modules())


def not_at_minimum_note(check: MinimumCheck) -> str | None:
    """What a table prints instead of a measurement at a point that fails the rule, or None when
    the point is at a minimum: "not at a minimum (‖∇f‖ = 0.11 > 0.0052 = 1 % of ‖∇f(θ₀)‖)"."""
    if check.at_minimum:
        return None
    return (f"not at a minimum (‖∇f‖ = {check.gradient_norm:.3g} > {check.threshold:.3g} = "
            f"{check.fraction * 100:g} % of ‖∇f(θ₀)‖)")


def curvature_reason(classification: Mapping[str, Any]) -> str | None:
    """Why a :class:`~batchlab.geometry.critical.CriticalPointReport` (as a dict) is not a
    minimum, or None when it is one."""
    if classification["kind"] == LOCAL_MINIMUM:
        return None
    return f"the second-order test says {classification['kind']} ({classification['note']})"


def slope_reason(row: Mapping[str, Any]) -> str | None:
    """Why a sharpness row is dominated by the slope at x (module docstring), or None."""
    rise = row["max_loss"] - row["loss"]
    gain = row["first_order_gain"]
    if gain <= 0 or gain < SLOPE_SHARE * rise:
        return None
    space = "full space" if row["full_space"] else f"p={row['p']}"
    return (
        f"the slope explains {min(gain / rise, 1.0) if rise > 0 else 1.0:.0%} of the rise at ε={row['epsilon']:g} "
        f"({space}; gradient norm {row['gradient_norm']:.3g})"
    )


def accuracy_reason(metrics: Iterable[Mapping[str, float]]) -> str | None:
    """Why the final weights fit the training set worse than the run's best epoch, or None.

    ``metrics`` is :meth:`batchlab.store.RunStore.metrics`: one dict per logged epoch, sorted;
    epochs without a finite ``train_acc`` are skipped, and None is returned when none has one.
    """
    accuracies = [(row["epoch"], row["train_acc"]) for row in metrics
                  if isinstance(row.get("train_acc"), (int, float)) and math.isfinite(row["train_acc"])]
    if not accuracies:
        return None
    best_epoch, best = max(accuracies, key=lambda item: item[1])
    last_epoch, last = accuracies[-1]
    if best - last <= ACCURACY_DROP:
        return None
    return f"training accuracy {last:.3f} at the last epoch ({last_epoch}) vs {best:.3f} at epoch {best_epoch}"


def not_a_minimum_warning(reasons: Iterable[str | None]) -> str | None:
    """One line joining the reasons that are not None, or None when there are none."""
    found = [reason for reason in reasons if reason]
    if not found:
        return None
    return "warning: this point may not be a minimum: " + "; ".join(found)
