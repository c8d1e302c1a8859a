"""The lecture's update for a plain MLP, with the momentum written straight from the backward pass.

For an ``nn.Sequential`` of ``Flatten`` (optional), ``Linear``, then ``ReLU, Linear`` pairs,
trained on the mean cross-entropy with :class:`batchlab.optim.Momentum` (no Nesterov, no momentum
correction), one update is (Hung-yi Lee, "Batch and Momentum")::

    m ← λm − η(g + wd·θ),   θ ← θ + m          (λ = 0: θ ← θ − η(g + wd·θ), no buffer)

and a weight matrix's gradient is one product, g = δᵀa (δ: the layer's output gradients, a: its
inputs, B rows each). The general path writes g (one pass over the weights), then reads it in the
optimizer, scales m and adds g to it (three more). Here the product goes straight into the buffer
with one ``addmm_`` — m ← λm − η·δᵀa, a rank-B update — and θ ← θ + m follows; for λ = 0 the
product goes straight into θ. Per update that is 6 passes over a weight matrix (7 where the
layer's input gradient δW is needed) instead of 10 (11), and about a fifth of the operator calls
(no autograd graph, no gradient tensors, one ``torch._foreach_add_`` for θ ← θ + m).

Exactly the same rule: the forward pass and every gradient are computed with the operators
autograd's backward of these modules uses (``addmm``, ``nll_loss_backward``,
``_log_softmax_backward_data``, ``mm`` for δW, ``threshold_backward`` for ReLU), so δ and every
layer input are bitwise those of the general path; each layer's input gradient is taken before
its weights change. Only the last rounding of m (and of θ for λ = 0) can differ, because λm − ηδᵀa
is rounded once instead of twice; tests compare both paths over several updates to 1e-6.

Anything else — other layers or losses, module or parameter hooks, Nesterov, momentum correction,
frozen parameters, several parameter groups, another optimizer — takes the general path:
:func:`fused_update` says why not (:func:`why_not_fused`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules import module as module_hooks

from batchlab.optim.momentum import Momentum

# aten's reduction code for a mean (torch/_reduction.py), as nll_loss_forward/backward take it.
MEAN_REDUCTION = 1
IGNORE_INDEX = -100

Update = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mlp_layers(model: nn.Module) -> list[nn.Linear] | None:
    """The ``Linear`` layers of a plain MLP (``[Flatten,] Linear, (ReLU, Linear)*``), else None."""
    if type(model) is not nn.Sequential:
        return None
    children = list(model.children())
    if children and type(children[0]) is nn.Flatten:
        flatten = children.pop(0)
        if (flatten.start_dim, flatten.end_dim) != (1, -1):
            return None
    if not children or len(children) % 2 == 0:
        return None
    layers = children[0::2]
    if any(type(layer) is not nn.Linear for layer in layers):
        return None
    if any(type(relu) is not nn.ReLU for relu in children[1::2]):
        return None
    return layers


def _has_hooks(model: nn.Module) -> bool:
    global_hooks = (module_hooks._global_forward_hooks, module_hooks._global_forward_pre_hooks,
                    module_hooks._global_backward_hooks, module_hooks._global_backward_pre_hooks)
    if any(len(hooks) for hooks in global_hooks):
        return True
    for module in model.modules():
        if any(len(getattr(module, name, {}) or {}) for name in (
                "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")):
            return True
    return any(param._backward_hooks or getattr(param, "_post_accumulate_grad_hooks", None)
               for param in model.parameters())


def why_not_fused(model: nn.Module, optimizer: torch.optim.Optimizer, loss: Callable) -> str | None:
    """None when :class:`FusedMomentumMLP` applies the optimizer's rule to ``model`` exactly, else
    the first reason it does not (see the module docstring)."""
    if loss is not F.cross_entropy:
        return "the loss is not cross-entropy"
    if type(optimizer) is not Momentum:
        return f"the optimizer is {type(optimizer).__name__}, not the lecture's momentum"
    if len(optimizer.param_groups) != 1:
        return "the optimizer has several parameter groups"
    group = optimizer.param_groups[0]
    if group["nesterov"] or group["momentum_correction"]:
        return "Nesterov or momentum correction"
    if optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks:
        return "the optimizer has step hooks"
    layers = mlp_layers(model)
    if layers is None:
        return "the model is not a plain Linear/ReLU MLP"
    params = [p for layer in layers for p in (layer.weight, layer.bias) if p is not None]
    if [id(p) for p in group["params"]] != [id(p) for p in params]:
        return "the optimizer does not hold exactly the model's parameters, in order"
    if not all(p.requires_grad for p in params) or len({(p.dtype, p.device) for p in params}) != 1:
        return "frozen parameters or mixed dtypes or devices"
    if _has_hooks(model):
        return "the model has hooks"
    return None


class FusedMomentumMLP:
    """One update of a plain MLP with :class:`Momentum`, the buffer written from the backward pass.

    Call it with a batch (x, y); it updates the model's parameters and the optimizer's state in
    place (the buffers ``state[param]["momentum_buffer"]`` and ``last_lr`` that ``Momentum.step``
    keeps, so checkpoints and a switch back to the general path see the same state) and returns
    the batch's mean loss, detached. Hyperparameters are read from the optimizer's group at every
    call, so a schedule that sets ``group["lr"]`` works as with ``optimizer.step()``.
    """

    def __init__(self, model: nn.Module, optimizer: Momentum) -> None:
        layers = mlp_layers(model)
        assert layers is not None
        self.layers = layers
        self.optimizer = optimizer
        self.params = [p for layer in layers for p in (layer.weight, layer.bias) if p is not None]
        self._ones: dict[int, torch.Tensor] = {}  # a column of B ones, for a bias's sum over the batch
        self._seed: torch.Tensor | None = None  # ∂loss/∂loss = 1, what loss.backward() starts from

    def _one(self, loss: torch.Tensor) -> torch.Tensor:
        if self._seed is None:
            self._seed = torch.ones_like(loss)
        return self._seed

    def _buffers(self) -> list[torch.Tensor]:
        """Each parameter's momentum buffer, made (m₀ = 0) where it has none yet."""
        state = self.optimizer.state
        buffers = []
        for param in self.params:
            entry = state[param]
            if "momentum_buffer" not in entry:
                entry["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            buffers.append(entry["momentum_buffer"])
        return buffers

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        group = self.optimizer.param_groups[0]  # looked up each time: load_state_dict replaces it
        lr, lam, decay = group["lr"], group["momentum"], group["weight_decay"]
        # Forward, keeping each layer's input (F.linear on a 2-D input is this addmm).
        inputs = [x.flatten(1)]
        for index, layer in enumerate(self.layers):
            if layer.bias is not None:
                out = torch.addmm(layer.bias, inputs[-1], layer.weight.t())
            else:
                out = inputs[-1].mm(layer.weight.t())
            inputs.append(out.relu() if index + 1 < len(self.layers) else out)
        logits = inputs.pop()
        log_probs = torch.log_softmax(logits, 1)
        loss, total_weight = torch.ops.aten.nll_loss_forward(log_probs, y, None, MEAN_REDUCTION, IGNORE_INDEX)
        # ∂loss/∂logits, by the backward operators of cross_entropy = nll_loss ∘ log_softmax.
        grad_log_probs = torch.ops.aten.nll_loss_backward(
            self._one(loss), log_probs, y, None, MEAN_REDUCTION, IGNORE_INDEX, total_weight)
        delta = torch.ops.aten._log_softmax_backward_data(grad_log_probs, log_probs, 1, log_probs.dtype)
        buffers = self._buffers() if lam != 0.0 else None
        ones = self._ones.get(len(x))
        if ones is None:
            ones = self._ones[len(x)] = torch.ones(len(x), dtype=logits.dtype, device=logits.device)
        slot = len(self.params)
        for index in range(len(self.layers) - 1, -1, -1):
            layer, layer_input = self.layers[index], inputs[index]
            next_delta = None
            if index > 0:  # the input gradient, at the weights before this update
                next_delta = torch.ops.aten.threshold_backward(delta.mm(layer.weight), layer_input, 0)
            delta_t = delta.t()
            if layer.bias is not None:
                slot -= 1
                self._apply(layer.bias, None if buffers is None else buffers[slot], delta_t, ones, lr, lam, decay,
                            bias=True)
            slot -= 1
            self._apply(layer.weight, None if buffers is None else buffers[slot], delta_t, layer_input, lr, lam, decay)
            delta = next_delta
        if buffers is not None:
            torch._foreach_add_(self.params, buffers)  # θ ← θ + m
            for param in self.params:
                self.optimizer.state[param]["last_lr"] = lr
        return loss

    @staticmethod
    def _apply(param: torch.Tensor, buffer: torch.Tensor | None, delta_t: torch.Tensor, inputs: torch.Tensor,
               lr: float, lam: float, decay: float, *, bias: bool = False) -> None:
        """m ← λm − η(δᵀa + wd·θ) (θ's own update follows for all at once), or for λ = 0
        θ ← θ − η(δᵀa + wd·θ) = (1 − η·wd)θ − η·δᵀa; a bias's δᵀa is δᵀ1, the sum over the batch."""
        product = torch.Tensor.addmv_ if bias else torch.Tensor.addmm_
        if buffer is None:
            product(param, delta_t, inputs, beta=1.0 - lr * decay if decay else 1.0, alpha=-lr)
            return
        product(buffer, delta_t, inputs, beta=lam, alpha=-lr)
        if decay:
            buffer.add_(param, alpha=-lr * decay)


def fused_update(model: nn.Module, optimizer: torch.optim.Optimizer, loss: Callable) -> FusedMomentumMLP | None:
    """The fused update of ``model`` and ``optimizer`` when it applies exactly (else None)."""
    if why_not_fused(model, optimizer, loss) is not None:
        return None
    return FusedMomentumMLP(model, optimizer)  # type: ignore[arg-type]
