"""λ_max of the training loss every k updates while runs train: :func:`sharpness_trajectories`.

Training. The configurations of one batch size (any η, λ, seed) are trained as one pack by the
packed trainer's own step (:class:`batchlab.training.packed.PackStep`, the step the epoch driver
gives K runs), update by update, as the advisor's trace does
(:mod:`batchlab.experiments.advise.trace`): initialization by
:func:`batchlab.training.loop.initial_model_and_optimizer`, epoch e's order
:meth:`PackStep.orders` walked in slices of B, the lecture's momentum. So a run here follows the
trajectory ``batchlab train`` gives the same configuration; only the points where it is looked at
differ (every ``every`` updates instead of every epoch).

Measurement. At update 0 and after every ``every`` updates, each run's weights are copied into a
single model and the largest eigenvalue λ_max of the Hessian of the mean cross-entropy on a fixed
probe set (the same examples for every run and every update: a seeded subset of the training
split, :func:`probe_subset`) is found by Lanczos (:func:`batchlab.geometry.lanczos.lanczos_largest`,
stopped when the residual ‖Hv − θv‖ ≤ ``tol``·θ, so θ is within ``tol`` of an eigenvalue) on
:class:`batchlab.geometry.hessian.HessianOperator` (eval mode, one chunk).

Warm start. Between two measurements the weights move a little, and so does the top
eigenvector; Lanczos started near it stops after a few products. The start is the previous
eigenvector plus a seeded Gaussian vector of relative norm :data:`WARM_NOISE`: the residual rule
guarantees θ is near *an* eigenvalue, and a start that is exactly the old eigenvector would stop
on it even after another eigenvalue has overtaken it (the top two cross as the network trains);
the added noise keeps a component along every eigenvector, so the Krylov space still finds the
largest. The first measurement of a run (and any after a failed one) starts cold, from the
Gaussian alone. Cohen et al. (2021) measure λ_max with Lanczos the same way (on 5,000 examples
for their CIFAR-10 subset).

A run leaves the pack when its probe loss is no longer finite (``diverged``); the others go on.
At the end the training loss and accuracy of every run still in the pack over the whole training
split decide, by the one rule (:func:`batchlab.store.status.training_failure`, against the loss of
the initial weights on the same split), whether it ``finished`` or ``failed to train``; a run that
failed is drawn but left out of the findings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from batchlab.config import RunConfig
from batchlab.errors import ConfigError
from batchlab.geometry.functional import FlatLoss
from batchlab.geometry.hessian import HessianOperator
from batchlab.geometry.lanczos import ConvergenceError, lanczos_largest
from batchlab.store.status import DIVERGED, FAILED_TO_TRAIN, FINISHED, training_failure
from batchlab.training.loop import initial_model_and_optimizer
from batchlab.training.objective import CLASSIFICATION
from batchlab.training.packed import PackStep, check_one_pack

# Relative norm of the Gaussian added to the previous eigenvector when warm-starting Lanczos.
WARM_NOISE = 0.1


@dataclass(frozen=True)
class Point:
    """One measurement: after ``update`` updates, λ_max (None when Lanczos did not converge), its
    residual bound, the probe loss and the Hessian-vector products Lanczos used."""

    update: int
    sharpness: float | None
    residual: float | None
    loss: float
    products: int

    def to_list(self) -> list[Any]:
        return [self.update, self.sharpness, self.residual, self.loss, self.products]

    @classmethod
    def from_list(cls, values: Sequence[Any]) -> Point:
        return cls(*values)


@dataclass
class Trajectory:
    """λ_max along one run: its configuration, its status (``finished``, ``diverged`` or ``failed
    to train``, with the ``reason`` for a failure), the points, and the training loss and accuracy
    over the whole training split at the start and at the end (None after a divergence)."""

    config: RunConfig
    status: str = FINISHED
    reason: str = ""
    points: list[Point] = field(default_factory=list)
    initial: tuple[float, float] | None = None
    final: tuple[float, float] | None = None


class SharpnessProbe:
    """λ_max of the loss on fixed examples ``(x, y)``, warm-started from the last eigenvector.

    ``tol``: Lanczos's relative residual bound; ``max_iter``: the most products per measurement;
    ``seed``: the Gaussian of cold starts and of the warm starts' noise; ``warm``: False starts
    every measurement cold (for comparison).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, tol: float = 1e-3, max_iter: int = 100, seed: int = 0,
                 warm: bool = True, noise: float = WARM_NOISE) -> None:
        self.x, self.y, self.tol, self.max_iter, self.warm, self.noise = x, y, tol, max_iter, warm, noise
        self.generator = torch.Generator().manual_seed(seed)
        self.vector: torch.Tensor | None = None

    def measure(self, model: torch.nn.Module, update: int) -> Point:
        """λ_max of ``model`` (its current weights) on the probe examples, as the point ``update``."""
        operator = HessianOperator(FlatLoss(model, self.x, self.y, chunk_size=None), cache_graph=True)
        loss, _ = operator.value_and_grad()
        if not math.isfinite(loss):
            return Point(update, None, None, loss, 0)
        noise = torch.randn(operator.dim, generator=self.generator, dtype=torch.float64)
        noise = noise.to(dtype=operator.point.dtype, device=operator.point.device)
        if self.warm and self.vector is not None:
            start = self.vector + self.noise * noise / noise.norm()
        else:
            start = noise
        try:
            found = lanczos_largest(operator.matvec, start, 1, tol=self.tol, max_steps=self.max_iter)
        except ConvergenceError:
            self.vector = None
            return Point(update, None, None, loss, operator.calls)
        self.vector = found.vectors[:, 0] / found.vectors[:, 0].norm()
        return Point(update, float(found.values[0]), float(found.residuals[0]), loss, operator.calls)


def probe_subset(train: Any, examples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe set: ``examples`` training examples, the first of
    ``torch.randperm(n, generator=manual_seed(seed))`` in dataset order (the same for every run)."""
    n = len(train)
    if isinstance(examples, bool) or not isinstance(examples, int) or not 1 <= examples <= n:
        raise ConfigError(f"probe examples {examples!r} is invalid; allowed: an integer 1 … {n} (the training split)")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    keep = torch.sort(order[:examples]).values.to(train.x.device)
    return train.x[keep], train.y[keep]


def sharpness_trajectories(
    configs: Sequence[RunConfig],
    splits: Any,
    *,
    updates: int,
    every: int,
    probe: tuple[torch.Tensor, torch.Tensor],
    device: torch.device,
    tol: float = 1e-3,
    max_iter: int = 100,
    warm: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> list[Trajectory]:
    """Train ``configs`` (one batch size and architecture) as one pack for ``updates`` updates,
    measuring every run's λ_max on ``probe`` at update 0 and after every ``every`` updates
    (module docstring); the trajectories in the order given."""
    if not configs:
        return []
    check_one_pack(configs)
    for name, value in (("updates", updates), ("every", every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} {value!r} is invalid; allowed: an integer ≥ 1")

    models, optimizers = [], []
    for config in configs:
        model, optimizer = initial_model_and_optimizer(config, splits, device)
        models.append(model)
        optimizers.append(optimizer)
    # Each run's own model receives its weights from the pack before every measurement.
    probes = [SharpnessProbe(*probe, tol=tol, max_iter=max_iter, seed=config.seed, warm=warm) for config in configs]
    pack = PackStep(configs, models, optimizers, device, splits.train, CLASSIFICATION)
    trajectories = [Trajectory(config) for config in configs]
    active = list(range(len(configs)))  # the run of each row of the pack

    def look(update: int) -> None:
        nonlocal active
        leaving = []
        for row, index in enumerate(active):
            models[index].load_state_dict(pack.weights(row))
            point = probes[index].measure(models[index], update)
            trajectories[index].points.append(point)
            if not math.isfinite(point.loss):
                trajectories[index].status = DIVERGED
                trajectories[index].reason = f"probe loss {point.loss} after {update} updates"
                leaving.append(row)
        if leaving:
            keep = [row for row in range(len(active)) if row not in leaving]
            active = [active[row] for row in keep]
            if active:
                pack.keep(keep)

    for index, initial in zip(active, pack.evaluate(splits.train)):
        trajectories[index].initial = initial
    look(0)
    update, epoch = 0, 0
    while active and update < updates:
        epoch += 1
        orders = pack.orders(epoch)
        for start, end in pack.slices[:updates - update]:
            pack.update(orders[:, start:end])
            update += 1
            if update % every == 0 or update == updates:
                before = len(active)
                look(update)
                if not active:
                    break
                if len(active) < before:
                    orders = pack.orders(epoch)  # the remaining runs' rows of this epoch's order
    if active:
        for index, final in zip(active, pack.evaluate(splits.train)):
            trajectory = trajectories[index]
            trajectory.final = final
            reason = training_failure(trajectory.initial[0], final[0], final[1], getattr(splits, "num_classes", None))
            if reason is not None:
                trajectory.status, trajectory.reason = FAILED_TO_TRAIN, reason
    log(f"B = {configs[0].batch_size}: {update} updates, {sum(p.products for t in trajectories for p in t.points)} "
        "Hessian-vector products")
    return trajectories
