"""Loss and gradients of a model at a fixed point θ: full batch, one mini-batch, one example.

Everything here looks at the mean cross-entropy of the model's *current* parameters θ (the flat
vector of its trainable parameters in ``named_parameters()`` order) on some examples:

* ``L(θ) = (1/N) Σ_n ℓ_n(θ)`` over a whole split, computed in chunks whose results are weighted by
  chunk size / N, so the sum is exactly the full-batch value (up to rounding);
* ``L^i(θ) = (1/|B_i|) Σ_{n∈B_i} ℓ_n(θ)`` for one mini-batch ``B_i``, the lecture's "each batch
  has its own loss";
* ``‖∇ℓ_n(θ)‖²`` of single examples (per-example gradients by ``torch.func.vmap`` of ``grad``).

The model is evaluated in eval mode (batch-norm running statistics, no dropout), so each loss is
a fixed function of θ and the data; the caller's train/eval flags are restored afterwards. The
weights are never changed: shifted points θ + αd are evaluated with ``torch.func.functional_call``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

# Examples per forward pass for full-batch losses and gradients.
LOSS_CHUNK = 2048
# Examples per vmapped per-example-gradient pass (memory grows with chunk × parameter count).
PER_EXAMPLE_CHUNK = 32


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the duration of the block; every module's own flag is restored after."""
    saved = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for module, training in saved:
            module.training = training


class FlatParameters:
    """The trainable parameters of ``model`` seen as one flat vector θ (a detached copy)."""

    def __init__(self, model: nn.Module) -> None:
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.model = model
        self.names = [name for name, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.theta = torch.cat([p.detach().reshape(-1) for _, p in named])

    @property
    def dim(self) -> int:
        return int(self.theta.numel())

    def as_dict(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: tensor}`` views of a flat vector, for ``functional_call``."""
        return {name: part.view(shape) for name, part, shape in
                zip(self.names, vector.split(self.sizes), self.shapes)}

    def flatten(self, tensors: dict[str, torch.Tensor] | list[torch.Tensor]) -> torch.Tensor:
        parts = tensors.values() if isinstance(tensors, dict) else tensors
        return torch.cat([t.reshape(-1) for t in parts])


def _mean_loss(params: FlatParameters, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = functional_call(params.model, params.as_dict(theta), (x,))
    return F.cross_entropy(logits, y)


def loss_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor | None = None,
            chunk: int = LOSS_CHUNK) -> float:
    """Mean cross-entropy on ``(x, y)`` at θ (default: the model's own parameters), chunked."""
    params = FlatParameters(model)
    point = params.theta if theta is None else theta
    total = 0.0
    n = len(y)
    with torch.no_grad(), eval_mode(model):
        for start in range(0, n, chunk):
            xb, yb = x[start : start + chunk], y[start : start + chunk]
            total += float(_mean_loss(params, point, xb, yb)) * len(yb) / n
    return total


def loss_and_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      chunk: int = LOSS_CHUNK) -> tuple[float, torch.Tensor]:
    """``(L, ∇L)`` of the mean cross-entropy on ``(x, y)`` at the model's parameters.

    The gradient is a flat float64 vector (float64 so that differences of nearly equal gradients,
    ``g_i − G``, keep their digits); chunks are weighted by size / N, so the result is the exact
    gradient of the mean over all examples.
    """
    params = FlatParameters(model)
    theta = params.theta.clone().requires_grad_(True)
    n = len(y)
    total = 0.0
    gradient = torch.zeros(params.dim, dtype=torch.float64, device=theta.device)
    with eval_mode(model):
        for start in range(0, n, chunk):
            xb, yb = x[start : start + chunk], y[start : start + chunk]
            weight = len(yb) / n
            loss = _mean_loss(params, theta, xb, yb)
            (g,) = torch.autograd.grad(loss, theta)
            gradient.add_(g.double(), alpha=weight)
            total += float(loss.detach()) * weight
    return total, gradient


def per_example_sq_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                         chunk: int = PER_EXAMPLE_CHUNK) -> torch.Tensor:
    """``‖∇ℓ_n(θ)‖²`` for every example n (float64, one entry per example).

    Networks whose only parameters sit in ``nn.Linear`` layers applied once to flat inputs (the
    lecture's MLP) use Goodfellow's identity (2015, "Efficient per-example gradient
    computations"): for a layer ``z = W a + b`` the per-example gradients are
    ``∇W_n = δ_n a_nᵀ`` and ``∇b_n = δ_n`` with ``δ_n = ∂ℓ_n/∂z_n``, so
    ``‖∇W_n‖² + ‖∇b_n‖² = ‖a_n‖² ‖δ_n‖² + ‖δ_n‖²`` — one ordinary backward pass per chunk instead of
    materializing N gradient vectors. Any other network falls back to ``torch.func.vmap`` of
    ``grad`` (exact for any architecture, but memory-bound and much slower).
    """
    linears = _linear_only_layers(model)
    if linears is not None:
        norms = _linear_layer_sq_norms(model, linears, x, y, chunk=max(chunk, LOSS_CHUNK))
        if norms is not None:
            return norms
    params = FlatParameters(model)

    def one_example_loss(theta: torch.Tensor, xn: torch.Tensor, yn: torch.Tensor) -> torch.Tensor:
        return _mean_loss(params, theta, xn.unsqueeze(0), yn.unsqueeze(0))

    per_example = vmap(grad(one_example_loss), in_dims=(None, 0, 0))
    norms = []
    with eval_mode(model):
        for start in range(0, len(y), chunk):
            gradients = per_example(params.theta, x[start : start + chunk], y[start : start + chunk])
            norms.append(gradients.double().pow(2).sum(dim=1))
    return torch.cat(norms)


def _linear_only_layers(model: nn.Module) -> list[nn.Linear] | None:
    """The model's ``nn.Linear`` layers when every trainable parameter belongs to one, else None."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    owned = {id(p) for m in linears for p in m.parameters(recurse=False)}
    if not linears or any(p.requires_grad and id(p) not in owned for p in model.parameters()):
        return None
    if any(not m.weight.requires_grad or (m.bias is not None and not m.bias.requires_grad) for m in linears):
        return None
    return linears


def _linear_layer_sq_norms(model: nn.Module, linears: list[nn.Linear], x: torch.Tensor, y: torch.Tensor,
                           chunk: int) -> torch.Tensor | None:
    """Goodfellow's per-example squared gradient norms (see :func:`per_example_sq_norms`), or None
    when a layer is called more than once or on inputs that are not (n, features)."""
    calls: dict[nn.Linear, list[tuple[torch.Tensor, torch.Tensor]]] = {m: [] for m in linears}

    def remember(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        calls[module].append((args[0], output))

    handles = [m.register_forward_hook(remember) for m in linears]
    norms = []
    try:
        with eval_mode(model):
            for start in range(0, len(y), chunk):
                for seen in calls.values():
                    seen.clear()
                xb, yb = x[start : start + chunk], y[start : start + chunk]
                # Summed, not averaged: then ∂loss/∂z_n is the gradient of example n's own loss.
                loss = F.cross_entropy(model(xb), yb, reduction="sum")
                if any(len(seen) != 1 or seen[0][0].dim() != 2 for seen in calls.values()):
                    return None
                deltas = torch.autograd.grad(loss, [calls[m][0][1] for m in linears])
                total = torch.zeros(len(yb), dtype=torch.float64, device=xb.device)
                for module, delta in zip(linears, deltas):
                    inputs = calls[module][0][0].detach().double()
                    delta_sq = delta.double().pow(2).sum(dim=1)
                    total += inputs.pow(2).sum(dim=1) * delta_sq
                    if module.bias is not None:
                        total += delta_sq
                norms.append(total)
    finally:
        for handle in handles:
            handle.remove()
        for seen in calls.values():
            seen.clear()
    return torch.cat(norms)
