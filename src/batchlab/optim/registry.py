"""The optimizer registry and its one factory, ``build_optimizer``; ``batchlab.optim`` re-exports
its names on first use.

Each optimizer is registered once, in :data:`OPTIMIZERS`: its name, what it is, the class that
implements it (imported only when one is built, so this module, and the configuration and
``batchlab --help`` that read the names, stay free of torch), which of a run's settings it
takes (momentum, Nesterov, momentum correction), the names of its extra options, and where it
can be used (packed training, the CUDA-graph timing path, the step-size hints). The
options' defaults are those of the class's ``__init__`` (torch's habit: an argument is
validated, and defaulted, where it is defined); :meth:`OptimizerSpec.option_defaults` reads them
from there.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchlab.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "LAMB",
    "LAMB_OPTIONS",
    "LARS",
    "LARS_OPTIONS",
    "Momentum",
    "OPTIMIZERS",
    "OptimizerSpec",
    "RMSPROP_WARMUP_OPTIONS",
    "RMSpropWarmup",
    "build_optimizer",
    "get_optimizer_spec",
]


@dataclass(frozen=True)
class OptimizerSpec:
    """One registered optimizer.

    ``implementation`` is ``"module:Class"``, imported by :meth:`optimizer_class`. The class is
    called with ``lr`` and ``weight_decay``, plus ``momentum`` when ``uses_momentum``,
    ``nesterov`` when ``has_nesterov``, ``momentum_correction`` when ``has_momentum_correction``,
    and any of ``options`` the caller gives.
    """

    name: str
    description: str
    implementation: str
    uses_momentum: bool = False
    has_nesterov: bool = False
    has_momentum_correction: bool = False
    options: tuple[str, ...] = ()
    # The packed trainer reimplements the update as a vectorized rule over many runs; only the
    # lecture's momentum (and its λ = 0 case) is reimplemented there.
    packable: bool = False
    # The CUDA-graph timing path (timing/paths.py) replays the update as in-place foreach
    # operations on static buffers; only the lecture's rule is written that way.
    graph_replayable: bool = False
    # A heavy-ball update whose step size is η/(1 − λ) (λ = 0 for plain SGD): the hints before and
    # after training (commands/_hints.py) compare runs by that step.
    has_effective_step: bool = False
    # Built only with the run's number of updates per epoch (a schedule in epochs), so it cannot be
    # timed or built on its own.
    needs_epoch_length: bool = False

    def optimizer_class(self) -> type["torch.optim.Optimizer"]:
        module, _, attribute = self.implementation.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def option_defaults(self) -> dict[str, Any]:
        """Each of :attr:`options` with the default the class gives it."""
        parameters = inspect.signature(self.optimizer_class()).parameters
        return {name: parameters[name].default for name in self.options}


OPTIMIZERS: dict[str, OptimizerSpec] = {
    spec.name: spec
    for spec in (
        OptimizerSpec("momentum", "the lecture's rule m ← λm − ηg, θ ← θ + m (batchlab.optim.Momentum)",
                      "batchlab.optim.momentum:Momentum", uses_momentum=True, has_nesterov=True,
                      has_momentum_correction=True, packable=True, graph_replayable=True, has_effective_step=True),
        OptimizerSpec("sgd", "plain gradient descent θ ← θ − ηg (Momentum with λ = 0)",
                      "batchlab.optim.momentum:Momentum", has_momentum_correction=True, packable=True,
                      graph_replayable=True, has_effective_step=True),
        OptimizerSpec("torch-sgd", "torch.optim.SGD (PyTorch's momentum convention, b ← μb + g, θ ← θ − ηb)",
                      "torch.optim:SGD", uses_momentum=True, has_nesterov=True, has_effective_step=True),
        OptimizerSpec("adam", "torch.optim.Adam with its default betas (0.9, 0.999)", "torch.optim:Adam"),
        OptimizerSpec("lars", "LARS (You et al. 2017): momentum SGD with a per-layer rate η‖w‖/(‖g‖ + β‖w‖)",
                      "batchlab.optim.lars:LARS", uses_momentum=True,
                      options=("trust_coefficient", "eps", "layer_adaptation")),
        OptimizerSpec("lamb", "LAMB (You et al. 2019): Adam's direction with a per-layer step η‖x‖/‖r + λx‖",
                      "batchlab.optim.lamb:LAMB", options=("betas", "eps", "bias_correction", "layer_adaptation")),
        OptimizerSpec("rmsprop-warmup", "Akiba et al. 2017's RMSprop warm-up handing over to the lecture's momentum",
                      "batchlab.optim.rmsprop_warmup:RMSpropWarmup", uses_momentum=True, needs_epoch_length=True,
                      options=("updates_per_epoch", "lr_rmsprop", "rmsprop_decay", "eps", "beta_center", "beta_period")),
    )
}

# The classes and option defaults by their former names, read on first use (they import torch).
_LAZY = {
    "Momentum": lambda: OPTIMIZERS["momentum"].optimizer_class(),
    "LARS": lambda: OPTIMIZERS["lars"].optimizer_class(),
    "LAMB": lambda: OPTIMIZERS["lamb"].optimizer_class(),
    "RMSpropWarmup": lambda: OPTIMIZERS["rmsprop-warmup"].optimizer_class(),
    "LARS_OPTIONS": lambda: OPTIMIZERS["lars"].option_defaults(),
    "LAMB_OPTIONS": lambda: OPTIMIZERS["lamb"].option_defaults(),
    "RMSPROP_WARMUP_OPTIONS": lambda: OPTIMIZERS["rmsprop-warmup"].option_defaults(),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _LAZY[name]()


def get_optimizer_spec(name: str) -> OptimizerSpec:
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise ConfigError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}") from None


def registered_with(flag: str, value: bool = True) -> tuple[str, ...]:
    """The registered optimizers whose spec's ``flag`` (a field such as ``packable``) is ``value``."""
    return tuple(name for name, spec in OPTIMIZERS.items() if getattr(spec, flag) == value)


def names_with(flag: str, value: bool = True) -> str:
    """:func:`registered_with`, comma-separated (for messages and help texts)."""
    return ", ".join(registered_with(flag, value))


def check_settings(name: str, *, momentum: float = 0.0, nesterov: bool = False,
                   momentum_correction: bool = False, options: Iterable[str] = ()) -> OptimizerSpec:
    """The spec of ``name`` if it takes every setting given, else a one-line :class:`ConfigError`
    naming the setting and the optimizers that take it."""
    spec = get_optimizer_spec(name)
    if momentum and not spec.uses_momentum:
        raise ConfigError(
            f"optimizer {name!r} takes no momentum (got {momentum}); allowed: momentum 0, "
            f"or --optimizer {' / '.join(registered_with('uses_momentum'))}"
        )
    if nesterov and not spec.has_nesterov:
        raise ConfigError(f"optimizer {name!r} has no Nesterov form; allowed with: {names_with('has_nesterov')}")
    if momentum_correction and not spec.has_momentum_correction:
        raise ConfigError(
            f"optimizer {name!r} has no momentum correction; allowed with: {names_with('has_momentum_correction')}"
        )
    unknown = [option for option in options if option not in spec.options]
    if unknown:
        known = ", ".join(spec.options) if spec.options else "none"
        raise ConfigError(f"optimizer {name!r} takes no option {unknown[0]!r}; allowed: {known}")
    return spec


def build_optimizer(
    name: str,
    params: Iterable["torch.Tensor"],
    *,
    lr: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    momentum_correction: bool = False,
    **options: object,
) -> "torch.optim.Optimizer":
    """Create the optimizer called ``name``; a setting it does not take is an error.

    ``options`` are the extra settings of ``lars``, ``lamb`` and ``rmsprop-warmup`` (their spec's
    ``options``, defaults as in their classes); other optimizers take none. ``momentum_correction``
    (Goyal et al.'s, see :class:`~batchlab.optim.momentum.Momentum`) applies to ``momentum`` and
    ``sgd`` only. A value the optimizer refuses is a :class:`ConfigError` naming the optimizer and
    the argument.
    """
    spec = check_settings(name, momentum=momentum, nesterov=nesterov, momentum_correction=momentum_correction,
                          options=options)
    arguments: dict[str, object] = {"lr": lr, "weight_decay": weight_decay, **options}
    if spec.uses_momentum:
        arguments["momentum"] = momentum
    if spec.has_nesterov:
        arguments["nesterov"] = nesterov
    if spec.has_momentum_correction:
        arguments["momentum_correction"] = momentum_correction
    try:
        return spec.optimizer_class()(params, **arguments)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"optimizer {name!r}: {error}") from None
