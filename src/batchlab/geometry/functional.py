"""The training loss of a model as a function of one flat parameter vector.

Every geometric quantity in :mod:`batchlab.geometry` (Hessian-vector products, eigenvalues,
sharpness) looks at the same function: the mean loss over a data set, cross-entropy unless a
user's task trained with another (``loss=``, a batch mean such as the mean squared error),

    L(θ) = (1/N) Σ_n CE(f(x_n; θ), y_n),

seen as a function of the flat vector θ ∈ R^p that concatenates every trainable parameter in
``model.named_parameters()`` order. The data are processed in chunks and the chunk results are
weighted by chunk size / N, so the sum is exactly the full-batch quantity (up to rounding).

Evaluation mode. Batch normalization and dropout make the loss depend on more than θ and the
data. ``mode="eval"`` (the default) uses running statistics and no dropout: the loss is then a
fixed, deterministic function of θ that is a plain mean over examples, so chunking is exact and
the Hessian is the Hessian of the function the trained model computes at test time.
``mode="train"`` normalizes each chunk with its own batch statistics (running statistics are
neither used nor updated) and still keeps dropout off, because a random function has no
Hessian; the chunk is then the normalization batch, so results depend on ``chunk_size``.
The caller's modules are switched only for the duration of each evaluation and then restored,
flag by flag.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

from batchlab.errors import ConfigError, DataError

# A loss over a batch: loss(outputs, targets) → the batch mean, a scalar tensor.
LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MODES = ("eval", "train")
DEFAULT_CHUNK_SIZE = 1000


@contextlib.contextmanager
def evaluation_mode(model: nn.Module, mode: str) -> Iterator[None]:
    """Put ``model`` in ``mode`` ("eval" or "train", see the module docstring) and restore it after.

    Every module's ``training`` flag and every batch-norm layer's ``track_running_stats`` are
    saved first and written back in a ``finally``, so the caller's model leaves exactly as it came.
    """
    _check_mode(mode)
    saved = [(module, module.training, getattr(module, "track_running_stats", None)) for module in model.modules()]
    try:
        if mode == "eval":
            model.eval()
        else:
            model.train()
            for module in model.modules():
                if isinstance(module, _DropoutNd):
                    module.eval()
                if isinstance(module, _BatchNorm):
                    # Batch statistics without touching the running buffers.
                    module.track_running_stats = False
        yield
    finally:
        for module, training, track in saved:
            module.training = training
            if track is not None:
                module.track_running_stats = track


class FlatLoss:
    """L(θ) of ``model`` on ``(x, y)`` over a flat parameter vector θ (see the module docstring);
    ``loss(outputs, targets)`` is the batch mean (default cross-entropy, whose targets are int64).

    ``x`` and ``y`` may live on any device; each chunk is moved to the model's device when used.
    Parameters with ``requires_grad=False`` are constants, not coordinates of θ.
    """

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        chunk_size: int | None = DEFAULT_CHUNK_SIZE,
        mode: str = "eval",
        loss: LossFunction | None = None,
    ) -> None:
        _check_mode(mode)
        if len(x) != len(y):
            raise DataError(f"x has {len(x)} examples but y has {len(y)}; allowed: the same number in both")
        if len(x) == 0:
            raise DataError("no examples given; allowed: at least one example")
        self.loss = F.cross_entropy if loss is None else loss
        if self.loss is F.cross_entropy and y.dtype != torch.long:
            raise DataError(f"labels have dtype {y.dtype}; allowed: torch.int64 class indices")
        if chunk_size is None:
            chunk_size = len(x)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ConfigError(f"chunk size {chunk_size!r} is invalid; allowed: an integer ≥ 1")
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ConfigError("the model has no trainable parameters; allowed: a model with requires_grad parameters")
        dtypes = {p.dtype for _, p in named}
        if len(dtypes) != 1:
            raise ConfigError(f"parameters mix dtypes {sorted(map(str, dtypes))}; allowed: one floating dtype")
        self.model = model
        self.x = x
        self.y = y
        self.mode = mode
        self.chunk_size = chunk_size
        self.names = [name for name, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.dim = sum(self.sizes)
        self.dtype = named[0][1].dtype
        self.device = named[0][1].device

    @property
    def num_examples(self) -> int:
        return len(self.x)

    def point(self) -> torch.Tensor:
        """θ of the model as it is now: a detached copy of its trainable parameters, flattened."""
        return torch.cat([p.detach().reshape(-1) for p in self.model.parameters() if p.requires_grad]).clone()

    def chunks(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
        """``(x_chunk, y_chunk, weight)`` on the model's device; the weights are |chunk|/N and sum to 1."""
        n = self.num_examples
        for start in range(0, n, self.chunk_size):
            xb = self.x[start : start + self.chunk_size].to(self.device, non_blocking=True)
            yb = self.y[start : start + self.chunk_size].to(self.device, non_blocking=True)
            yield xb, yb, len(yb) / n

    def chunk_loss(self, theta: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """Mean loss of one chunk at θ; differentiable in θ. Call inside :meth:`mode_context`."""
        views = dict(zip(self.names, (c.view(s) for c, s in zip(theta.split(self.sizes), self.shapes))))
        outputs = functional_call(self.model, views, (xb,))
        return self.loss(outputs, yb)

    def mode_context(self) -> contextlib.AbstractContextManager[None]:
        return evaluation_mode(self.model, self.mode)

    def check_vector(self, vector: torch.Tensor, what: str = "vector") -> torch.Tensor:
        """``vector`` as a flat tensor of θ's dtype and device, or a ConfigError if its length is wrong."""
        vector = torch.as_tensor(vector)
        if vector.dim() != 1 or vector.numel() != self.dim:
            raise ConfigError(
                f"{what} has shape {tuple(vector.shape)}; allowed: a flat vector of {self.dim} entries (one per parameter)"
            )
        return vector.to(device=self.device, dtype=self.dtype)

    def value(self, theta: torch.Tensor | None = None) -> float:
        """L(θ) (θ defaults to the model's current parameters)."""
        theta = self.point() if theta is None else self.check_vector(theta, "θ")
        total = 0.0
        with torch.no_grad(), self.mode_context():
            for xb, yb, weight in self.chunks():
                total += weight * float(self.chunk_loss(theta, xb, yb))
        return total

    def value_and_grad(self, theta: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
        """L(θ) and ∇L(θ) as a flat tensor (θ defaults to the model's current parameters)."""
        theta = self.point() if theta is None else self.check_vector(theta, "θ")
        theta = theta.detach().requires_grad_(True)
        total = 0.0
        gradient = torch.zeros_like(theta, requires_grad=False)
        with self.mode_context():
            for xb, yb, weight in self.chunks():
                loss = self.chunk_loss(theta, xb, yb)
                (g,) = torch.autograd.grad(loss, theta)
                gradient.add_(g, alpha=weight)
                total += weight * float(loss.detach())
        return total, gradient


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"unknown evaluation mode {mode!r}; allowed: {', '.join(MODES)}")
