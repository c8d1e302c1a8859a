"""A user's model factory: building it safely, what identifies it, and whether it can be packed.

Identity (:func:`model_fingerprint`), part of the run id of every run of the model:

* ``architecture``: SHA-256 of the module tree's ``repr`` and of every parameter's and buffer's
  name, shape and dtype;
* ``code``: SHA-256 of the source of the factory and of every module class in the tree that is
  not PyTorch's own (``inspect.getsource``), so a changed ``forward`` or a changed initialization
  written in the factory makes a new run even when the tree's ``repr`` stays the same. Source
  that Python cannot find (a class typed into an interactive prompt) is left out, and the entry
  lists the classes it could not read;
* ``parameters``: the parameter count.

The same holds for the loss and the metric (:func:`callable_fingerprint`): their names, the
``repr`` of a loss that is a module (``nn.MSELoss(reduction=...)``), and their source.

Packing (:func:`packability`): K copies of the model are trained in one step by
``torch.func.functional_call`` under ``vmap`` (packed_step.py). That reproduces a single run only
when the forward depends on nothing but the weights and the batch, so a model with batch-norm
running statistics, or with dropout, trains one at a time; any other model is tried: one vmapped
gradient of the loss on a probe batch, and a model the probe fails on (data-dependent control
flow, in-place updates of buffers, calls that leave the tensor world) trains one at a time too,
with the error as the reason.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from batchlab.errors import ConfigError


def build_module(factory: Callable[[], nn.Module], name: str) -> nn.Module:
    """``factory()``, checked to be an ``nn.Module``; the caller seeds the global RNG first."""
    try:
        model = factory()
    except Exception as error:  # the user's code: any failure is a one-line error
        raise ConfigError(f"model factory {name}() failed: {one_line(error)}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model factory {name}() returned a {type(model).__name__}; allowed: a function "
                          "returning a torch.nn.Module")
    return model


def model_fingerprint(model: nn.Module, factory: Callable[..., Any]) -> dict[str, Any]:
    """What identifies the model (see the module docstring)."""
    architecture = hashlib.sha256(repr(model).encode())
    for kind, tensors in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for tensor_name, tensor in tensors:
            architecture.update(f"{kind} {tensor_name} {list(tensor.shape)} {tensor.dtype}\n".encode())
    code = hashlib.sha256()
    unreadable = []
    pieces = [factory] + sorted({type(m) for m in model.modules() if not _is_torch_class(type(m))},
                                key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
    for piece in pieces:
        source = _source(piece)
        if source is None:
            unreadable.append(_qualname(piece))
        else:
            code.update(source.encode())
    fingerprint = {
        "architecture": architecture.hexdigest(),
        "code": code.hexdigest(),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if unreadable:
        fingerprint["code_unread"] = unreadable
    return fingerprint


def callable_fingerprint(function: Callable[..., Any], name: str) -> dict[str, Any]:
    """A loss's or a metric's identity: its name, its ``repr`` when it is a module, its source."""
    entry: dict[str, Any] = {"name": name}
    if isinstance(function, nn.Module):
        entry["repr"] = repr(function)
        function = type(function)
    source = _source(function)
    if source is not None:
        entry["code"] = hashlib.sha256(source.encode()).hexdigest()
    return entry


def has_batch_norm(model: nn.Module) -> bool:
    """True when ``model`` has a batch-norm layer that keeps running statistics."""
    return any(isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats for m in model.modules())


def has_dropout(model: nn.Module) -> bool:
    """True when ``model`` has a dropout layer with p > 0."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


def packability(model: nn.Module, loss: Callable, x: torch.Tensor, y: torch.Tensor) -> tuple[bool, str]:
    """Whether copies of ``model`` can train in one vmapped step, and why not (see the module
    docstring). ``x``, ``y``: a probe batch of at least one example, on the CPU."""
    for module_name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            return False, f"it has batch-norm running statistics ({module_name or 'the model'})"
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0:
            return False, f"it has dropout ({module_name or 'the model'})"
    dtypes = {p.dtype for p in model.parameters()}
    if len(dtypes) > 1 or any(not dtype.is_floating_point for dtype in dtypes):
        return False, f"its parameters are not all of one floating dtype ({sorted(map(str, dtypes))})"
    if not dtypes:
        return False, "it has no parameters"
    copies = [model, model]
    params, buffers = stack_module_state(copies)
    params = {name: value.detach() for name, value in params.items()}

    def batch_loss(p: dict, b: dict, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return loss(functional_call(model, (p, b), (inputs,)), targets)

    try:
        with torch.random.fork_rng(devices=[]):
            batch = torch.stack([x, x]), torch.stack([y, y])
            vmap(grad(batch_loss))(params, buffers, *batch)
    except Exception as error:  # whatever torch.func cannot run
        return False, f"torch.func cannot run it under vmap ({one_line(error)})"
    return True, ""


def _is_torch_class(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "torch"


def _qualname(piece: Any) -> str:
    return f"{getattr(piece, '__module__', '?')}.{getattr(piece, '__qualname__', type(piece).__name__)}"


def _source(piece: Any) -> str | None:
    try:
        return inspect.getsource(piece)
    except (OSError, TypeError):
        return None


def one_line(error: BaseException) -> str:
    """``Type: first line of the message`` — a user's exception as part of a one-line error."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
