"""Optimizers by name: the lecture's ``momentum``, ``sgd`` (its λ = 0 case), ``torch-sgd``, ``adam``,
the large-batch ``lars`` (You et al. 2017) and ``lamb`` (You et al. 2019), and Akiba et al. 2017's
``rmsprop-warmup``.

``build_optimizer`` is the one factory the training loop, the sweep and the CLI use, so a name
means the same thing everywhere; ``OPTIMIZERS`` registers each name once. LARS, LAMB and the
RMSprop warm-up take extra options by keyword (``LARS_OPTIONS``, ``LAMB_OPTIONS``,
``RMSPROP_WARMUP_OPTIONS``: each with the default its class uses when it is not given; the RMSprop
warm-up needs ``updates_per_epoch``).
"""

from __future__ import annotations

from batchlab.exports import lazy_exports

# The optimizer classes import torch; importing them on first use keeps ``batchlab.optim.recipes``
# and the registry's names (which the configuration reads) and ``batchlab --help`` free of torch.
_EXPORTS = {name: "batchlab.optim.registry" for name in (
    "LAMB", "LAMB_OPTIONS", "LARS", "LARS_OPTIONS", "Momentum", "OPTIMIZERS", "OptimizerSpec",
    "RMSPROP_WARMUP_OPTIONS", "RMSpropWarmup", "build_optimizer", "get_optimizer_spec")}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
