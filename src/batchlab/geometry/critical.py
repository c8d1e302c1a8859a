"""Is a point a local minimum, a saddle point, a local maximum, or not critical at all?

The lecture's second-order test (Hung-yi Lee, the lecture before "Batch and Momentum"): at a
critical point the gradient is zero and the Hessian H decides the kind: all eigenvalues positive
→ local minimum, all negative → local maximum, mixed signs → saddle point; at a saddle, moving
along an eigenvector u of a negative eigenvalue λ lowers the loss, since
L(θ + t·u) ≈ L(θ) + t·∇Lᵀu + ½·λ·t² and the middle term vanishes.

:func:`classify_point` applies it with explicit tolerances, from the gradient norm and the two
extreme eigenvalues of H (:mod:`batchlab.geometry.hessian`). :func:`saddle_demo` builds a small
network that sits exactly on a saddle, where gradient descent cannot move and one step along the
escape direction lowers the loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from batchlab.errors import ConfigError
from batchlab.geometry.functional import DEFAULT_CHUNK_SIZE, FlatLoss
from batchlab.geometry.hessian import CacheChoice, EigenResult, HessianOperator, extreme_eigenpairs

LOCAL_MINIMUM = "local minimum"
SADDLE_POINT = "saddle point"
LOCAL_MAXIMUM = "local maximum"
NOT_CRITICAL = "not critical"
KINDS = (LOCAL_MINIMUM, SADDLE_POINT, LOCAL_MAXIMUM, NOT_CRITICAL)

# eig_tol=None means at least this fraction of the largest eigenvalue magnitude.
EIG_RELATIVE_TOL = 1e-3


@dataclass(frozen=True)
class CriticalPointReport:
    """What the second-order test says about one point, with the tolerances it used.

    ``escape_direction`` (a unit eigenvector of λ_min, signed so it does not point uphill) and
    ``loss_after_escape`` (L after a step of length ``escape_step`` along it) are set whenever the
    point is critical and has negative curvature (a saddle or a local maximum); otherwise None.
    ``predicted_change`` is the second-order prediction t·∇Lᵀu + ½·λ_min·t² of that step.
    """

    kind: str
    degenerate: bool
    note: str
    loss: float
    gradient_norm: float
    largest_eigenvalue: float
    smallest_eigenvalue: float
    grad_tol: float
    eig_tol: float
    num_hvps: int
    method: str
    escape_direction: torch.Tensor | None = None
    escape_step: float | None = None
    loss_after_escape: float | None = None
    predicted_change: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the escape direction itself is left out: it has one entry per parameter)."""
        return {
            "kind": self.kind,
            "degenerate": self.degenerate,
            "note": self.note,
            "loss": self.loss,
            "gradient_norm": self.gradient_norm,
            "largest_eigenvalue": self.largest_eigenvalue,
            "smallest_eigenvalue": self.smallest_eigenvalue,
            "grad_tol": self.grad_tol,
            "eig_tol": self.eig_tol,
            "num_hvps": self.num_hvps,
            "method": self.method,
            "escape_step": self.escape_step,
            "loss_after_escape": self.loss_after_escape,
            "predicted_change": self.predicted_change,
        }


def classify(gradient_norm: float, largest: float, smallest: float, *, grad_tol: float, eig_tol: float) -> tuple[str, bool, str]:
    """The rule, on numbers: returns ``(kind, degenerate, note)``.

    1. ‖∇L‖ > grad_tol → "not critical".
    2. Otherwise eigenvalues with |λ| ≤ eig_tol count as zero, and
       - λ_min < −eig_tol and λ_max > eig_tol → "saddle point" (both curvatures exist; flat
         directions cannot change that);
       - λ_min < −eig_tol and λ_max ≤ eig_tol → "local maximum";
       - λ_min ≥ −eig_tol → "local minimum".
    3. ``degenerate`` is True when the extreme eigenvalue on the kind's side counts as zero
       (λ_min of a minimum, λ_max of a maximum): there are flat directions, along which
       higher-order terms decide, so the second-order test alone cannot confirm the kind.
    """
    if gradient_norm > grad_tol:
        return NOT_CRITICAL, False, f"gradient norm {gradient_norm:.3g} > grad_tol {grad_tol:.3g}"
    negative = smallest < -eig_tol
    positive = largest > eig_tol
    if negative and positive:
        return SADDLE_POINT, False, "negative and positive curvature: the eigenvector of λ_min is an escape direction"
    if negative:
        degenerate = largest >= -eig_tol
        note = "all curvature ≤ 0" + ("; flat directions (λ_max counts as zero): degenerate" if degenerate else "")
        return LOCAL_MAXIMUM, degenerate, note
    degenerate = smallest <= eig_tol
    note = "no negative curvature" + ("; flat directions (λ_min counts as zero): degenerate" if degenerate else "")
    return LOCAL_MINIMUM, degenerate, note


def classify_point(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    grad_tol: float = 1e-3,
    eig_tol: float | None = None,
    escape_step: float = 0.1,
    tol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
    mode: str = "eval",
    cache_graph: CacheChoice = "auto",
) -> CriticalPointReport:
    """Classify the model's current weights as a critical point of its mean cross-entropy on (x, y).

    The rule is :func:`classify`. ``grad_tol`` bounds the Euclidean norm of the full-data
    gradient. ``eig_tol`` is absolute; None means max(EIG_RELATIVE_TOL, 2·tol)·max(|λ_max|, |λ_min|):
    Lanczos with relative accuracy ``tol`` knows λ_min only to about tol·(λ_max − λ_min) ≤
    2·tol·max|λ| (see :mod:`batchlab.geometry.hessian`), so no finer zero band would be honest.
    The model's weights and mode are left unchanged.
    """
    operator = HessianOperator(FlatLoss(model, x, y, chunk_size=chunk_size, mode=mode), cache_graph=cache_graph)
    return classify_at(
        operator, grad_tol=grad_tol, eig_tol=eig_tol, escape_step=escape_step, tol=tol, max_iter=max_iter, seed=seed
    )


def classify_at(
    operator: HessianOperator,
    *,
    grad_tol: float = 1e-3,
    eig_tol: float | None = None,
    escape_step: float = 0.1,
    tol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
    top: EigenResult | None = None,
) -> CriticalPointReport:
    """:func:`classify_point` at the point of an existing operator (``top`` reuses a known λ_max)."""
    for name, value in (("grad_tol", grad_tol), ("escape_step", escape_step)):
        if not _positive_finite(value):
            raise ConfigError(f"{name} {value!r} is invalid; allowed: a number > 0")
    if eig_tol is not None and not (_finite(eig_tol) and eig_tol >= 0):
        raise ConfigError(f"eig_tol {eig_tol!r} is invalid; allowed: a number ≥ 0, or None for relative")
    value, gradient = operator.value_and_grad()
    extremes = extreme_eigenpairs(operator, tol=tol, max_iter=max_iter, seed=seed, top=top)
    gradient_norm = float(gradient.norm())
    if eig_tol is None:
        eig_tol = max(EIG_RELATIVE_TOL, 2 * tol) * max(abs(extremes.largest), abs(extremes.smallest))
    kind, degenerate, note = classify(
        gradient_norm, extremes.largest, extremes.smallest, grad_tol=grad_tol, eig_tol=eig_tol
    )
    report = dict(
        kind=kind,
        degenerate=degenerate,
        note=note,
        loss=value,
        gradient_norm=gradient_norm,
        largest_eigenvalue=extremes.largest,
        smallest_eigenvalue=extremes.smallest,
        grad_tol=grad_tol,
        eig_tol=eig_tol,
        num_hvps=extremes.num_hvps,
        method=extremes.method,
    )
    if kind in (SADDLE_POINT, LOCAL_MAXIMUM):
        direction = extremes.smallest_vector
        if float(torch.dot(gradient, direction)) > 0:
            direction = -direction  # never step uphill to first order
        slope = float(torch.dot(gradient, direction))
        report.update(
            escape_direction=direction,
            escape_step=escape_step,
            loss_after_escape=operator.loss.value(operator.point + escape_step * direction),
            predicted_change=escape_step * slope + 0.5 * extremes.smallest * escape_step**2,
        )
    return CriticalPointReport(**report)


@dataclass(frozen=True)
class SaddleDemo:
    """Gradient descent stuck on a saddle, and the escape along negative curvature.

    ``descent_displacement`` is ‖θ_T − θ_0‖ after ``descent_steps`` of full-batch gradient
    descent from the saddle (zero: the gradient vanishes exactly). ``loss_after_escape`` is the
    loss one step of length ``report.escape_step`` along the escape direction, and
    ``loss_after_escape_and_descent`` after the same gradient descent from there.
    """

    initial_loss: float
    loss_after_descent: float
    descent_steps: int
    learning_rate: float
    descent_displacement: float
    report: CriticalPointReport
    loss_after_escape: float
    loss_after_escape_and_descent: float


def saddle_network(n_inputs: int = 2, hidden: int = 2, n_classes: int = 2) -> nn.Module:
    """x → W₂ tanh(W₁ x) with W₁ = 0 and W₂ = 0, in float64: a saddle of the cross-entropy.

    Why it is a saddle: with both layers zero the hidden activations are 0, so ∂L/∂W₂ = 0, and
    ∂L/∂W₁ carries the factor W₂ = 0. The only non-zero second derivatives couple the layers,
    ∂²L/∂W₂[c,i]∂W₁[i,j] = E[(softmax − onehot)_c · x_j], so H = [[0, C], [Cᵀ, 0]] has the
    eigenvalues ±(singular values of C): negative curvature whenever the class means differ.
    """
    model = nn.Sequential(
        nn.Linear(n_inputs, hidden, bias=False),
        nn.Tanh(),
        nn.Linear(hidden, n_classes, bias=False),
    ).double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    return model


def saddle_demo(
    *,
    n_examples: int = 64,
    hidden: int = 2,
    descent_steps: int = 50,
    learning_rate: float = 0.5,
    escape_step: float = 0.5,
    seed: int = 0,
) -> SaddleDemo:
    """Run the demonstration of :class:`SaddleDemo` on two Gaussian blobs in 2-D.

    Data: ``n_examples`` points, half of class 0 around (1, 0.5) and half of class 1 around
    (−1, −0.5), standard deviation 0.5, drawn with ``seed``; the model is :func:`saddle_network`.
    """
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 2:
        raise ConfigError(f"n_examples {n_examples!r} is invalid; allowed: an integer ≥ 2")
    if isinstance(descent_steps, bool) or not isinstance(descent_steps, int) or descent_steps < 1:
        raise ConfigError(f"descent_steps {descent_steps!r} is invalid; allowed: an integer ≥ 1")
    if not _positive_finite(learning_rate):
        raise ConfigError(f"learning_rate {learning_rate!r} is invalid; allowed: a number > 0")
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_examples) % 2
    centers = torch.tensor([[1.0, 0.5], [-1.0, -0.5]], dtype=torch.float64)
    inputs = centers[labels] + 0.5 * torch.randn(n_examples, 2, generator=generator, dtype=torch.float64)
    model = saddle_network(2, hidden, 2)
    loss = FlatLoss(model, inputs, labels, chunk_size=None)

    start = loss.point()
    initial_loss = loss.value(start)
    stuck = _gradient_descent(loss, start, descent_steps, learning_rate)
    report = classify_point(model, inputs, labels, escape_step=escape_step, chunk_size=None, seed=seed)
    if report.escape_direction is None:  # a data draw without distinct class means
        raise ConfigError(f"seed {seed} gave data without negative curvature at zero; allowed: another seed")
    escaped = start + escape_step * report.escape_direction
    resumed = _gradient_descent(loss, escaped, descent_steps, learning_rate)
    return SaddleDemo(
        initial_loss=initial_loss,
        loss_after_descent=loss.value(stuck),
        descent_steps=descent_steps,
        learning_rate=learning_rate,
        descent_displacement=float((stuck - start).norm()),
        report=report,
        loss_after_escape=loss.value(escaped),
        loss_after_escape_and_descent=loss.value(resumed),
    )


def _gradient_descent(loss: FlatLoss, theta: torch.Tensor, steps: int, learning_rate: float) -> torch.Tensor:
    """Full-batch gradient descent θ ← θ − η∇L(θ), ``steps`` times; returns the final θ."""
    theta = theta.clone()
    for _ in range(steps):
        _, gradient = loss.value_and_grad(theta)
        theta -= learning_rate * gradient
    return theta


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _positive_finite(value: Any) -> bool:
    return _finite(value) and value > 0
