"""Is a trained run's end a minimum? Its initial weights rebuilt, the rule applied, training on.

Sharpness, Hessian measures and line plots are about minima, so the generalization-gap
experiment measures a run's final weights θ only when they pass the at-a-minimum rule of
:mod:`batchlab.geometry.minimum`: the full-batch gradient norm ‖∇f(θ)‖ is at most 1 % of
‖∇f(θ₀)‖, θ₀ the run's initial weights and f the run's mean training loss (the cross-entropy, or
a user task's own loss) over the whole training split (batch norm in eval mode).

θ₀ is not stored; it is rebuilt from the run's configuration exactly as training built it
(:func:`batchlab.training.loop.initial_model_and_optimizer`: ``torch.manual_seed(seed)``, the
model built on the CPU — the registry's, or a user task's factory). :func:`initial_weights`
checks the rebuild against what the run recorded: the loss of its first mini-batch (the run's
``initial_loss``, under the run's own loss), recomputed from the
rebuilt θ₀ on the same examples (:func:`batchlab.data.batches.epoch_permutation` of epoch 0, the
first B of them), must agree to :data:`INITIAL_LOSS_RTOL`. A rebuild that does not agree is
never used: the run is then reported without the rule's verdict.

A point that fails the rule is trained on, with the same optimizer and settings, in rounds of
``train_on_epochs`` epochs, at most ``train_on_rounds`` rounds (:func:`settle_at_minimum`). Each
round is a stored run of its own that continues the previous one (``continue_from``,
:mod:`batchlab.training.continuation`): it starts from that run's final training state — weights,
optimizer state (the momentum buffer, Adam's moments), update count, data order — so the rounds
together are the run trained on without a stop, and a second pass reuses them. Every run of the
chain keeps its final state (``keep_state``) for the next round. A round ends only at its epoch
cap (its ``epochs`` counts the chain's epochs in all): no accuracy target and no patience, which
the run had already met. A run stored without its final state is continued by training it again
from θ₀, the same chain at the cost of its epochs. A point still failing the rule after the last
round is reported as "not at a minimum (‖∇f‖ = …)".
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from batchlab.config import RunConfig
from batchlab.data.batches import epoch_permutation
from batchlab.geometry.minimum import MINIMUM_GRADIENT_FRACTION, MinimumCheck, check_minimum, not_at_minimum_note
from batchlab.store.status import FINISHED
from batchlab.training import train
from batchlab.training.loop import initial_model_and_optimizer
from batchlab.training.methods import run_shape
from batchlab.training.restore import restore_run

if TYPE_CHECKING:
    from torch import nn

    from batchlab.data import Splits
    from batchlab.geometry.functional import LossFunction
    from batchlab.store import RunStore
    from batchlab.task import Task

# Relative agreement of the recomputed first-batch loss with the stored one that counts as the
# same θ₀: float32 losses of the same weights on the same examples, summed in another thread
# layout at most, differ in the last few bits.
INITIAL_LOSS_RTOL = 1e-5


@dataclass(frozen=True)
class InitialCheck:
    """The run's recorded first-batch loss and the one the rebuilt θ₀ gives (None: not recorded)."""

    stored_loss: float | None
    rebuilt_loss: float

    @property
    def reproduced(self) -> bool:
        return self.stored_loss is not None and math.isclose(self.rebuilt_loss, self.stored_loss,
                                                             rel_tol=INITIAL_LOSS_RTOL, abs_tol=1e-7)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reproduced": self.reproduced}


def initial_config(config: RunConfig) -> RunConfig:
    """The configuration whose initial weights are θ₀: the run itself, or for a round of training
    on (``continue_from`` set) the chain's first run — the same seed and initial weights."""
    return config.replace(continue_from=None) if config.continue_from is not None else config


def train_on_config(config: RunConfig, run_id: str, epochs_done: int, train_on_epochs: int) -> RunConfig:
    """The next round of training on: ``config`` continued from run ``run_id`` (which completed
    ``epochs_done`` epochs in all) for ``train_on_epochs`` more, ending only at that cap."""
    return config.replace(continue_from=run_id, epochs=epochs_done + train_on_epochs, target_train_acc=None,
                          stop_patience=0, max_updates=None)


def initial_weights(config: RunConfig, splits: "Splits", device: Any,
                    stored_initial_loss: float | None, task: "Task | None" = None) -> tuple["nn.Module", InitialCheck]:
    """θ₀ of the run ``config`` (without ``init_from``) rebuilt as training builds it (``task``:
    a user's model, built by its factory), and the check of the rebuild against the run's
    ``stored_initial_loss``, the first mini-batch's loss under the run's own loss (module docstring)."""
    model, _ = initial_model_and_optimizer(config, splits, device, task)
    loss = _loss(task)
    shape = run_shape(config, len(splits.train))
    start, end = shape.slices[0]
    order = epoch_permutation(len(splits.train), 0, config.seed, config.shuffle)[start:end]
    probe = copy.deepcopy(model)  # the train-mode pass must not move θ₀'s batch-norm statistics
    probe.train()
    x, y = splits.train.x, splits.train.y
    with torch.no_grad():
        index = order.to(x.device)
        rebuilt = float(loss(probe(x.index_select(0, index)), y.index_select(0, index)))
    model.eval()
    return model, InitialCheck(stored_initial_loss, rebuilt)


def _loss(task: "Task | None") -> "LossFunction":
    """The loss a run trained with: the task's, or the registry's cross-entropy."""
    return torch.nn.functional.cross_entropy if task is None else task.objective.loss


@dataclass
class MinimumState:
    """Where one run's measured point stands: the run whose final weights are measured (the
    run itself or its last round of training on), the extra epochs, the rule's verdict."""

    run_id: str
    measured_run_id: str
    extra_epochs: int
    rounds: int
    initial: InitialCheck | None
    check: MinimumCheck | None
    status: str = FINISHED
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def at_minimum(self) -> bool:
        return (self.check is not None and self.check.at_minimum and self.initial is not None
                and self.initial.reproduced and self.status == FINISHED)

    @property
    def note(self) -> str | None:
        """What a table prints instead of a measurement, or None at a minimum."""
        return minimum_note(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "measured_run_id": self.measured_run_id,
            "extra_epochs": self.extra_epochs,
            "rounds": self.rounds,
            "status": self.status,
            "initial": None if self.initial is None else self.initial.to_dict(),
            "check": None if self.check is None else self.check.to_dict(),
            "at_minimum": self.at_minimum,
            "history": self.history,
        }


def minimum_note(state: dict[str, Any] | None) -> str | None:
    """The note for a stored :meth:`MinimumState.to_dict` (None: at a minimum)."""
    if state is None:
        return "not checked"
    initial = state.get("initial")
    if initial is None or not initial["reproduced"]:
        return "θ₀ not reproduced, so the at-a-minimum rule was not applied"
    check = state["check"]
    verdict = MinimumCheck(check["at_minimum"], check["gradient_norm"], check["initial_gradient_norm"],
                           check["fraction"])
    note = not_at_minimum_note(verdict)
    if state.get("status", FINISHED) != FINISHED:  # the last round ended badly: the point before it is reported
        note = f"{note}; training on from it ended {state['status']}"
    return note


def gradient_check(store: "RunStore", run_id: str, theta0: "nn.Module", device: Any,
                   fraction: float, task: "Task | None" = None) -> MinimumCheck:
    """The at-a-minimum rule at run ``run_id``'s final weights against ``theta0``, full batch
    (:func:`batchlab.geometry.minimum.check_minimum`) on the run's own loss (``task``: a user's
    model, rebuilt from it): each gradient at its own network, so ‖∇f(θ₀)‖ is taken with θ₀'s
    batch-norm statistics (those of a fresh network), not with the trained model's."""
    restored = restore_run(store, run_id, device=device, tasks=() if task is None else (task,))
    split = restored.splits.train
    return check_minimum(restored.model, theta0, split.x, split.y, fraction=fraction, loss=restored.objective.loss)


def settle_at_minimum(store: "RunStore", config: RunConfig, run_id: str, initial_loss: float | None,
                      splits: "Splits", device: Any, *, train_on_epochs: int, train_on_rounds: int,
                      fraction: float = MINIMUM_GRADIENT_FRACTION, progress: bool | None = False,
                      log=lambda text: None, task: "Task | None" = None) -> MinimumState:
    """Apply the rule to the finished run ``run_id`` (configuration ``config``; ``task``: a user's
    model and data, whose splits ``splits`` are) and train on in rounds while it fails (module
    docstring); the state of the last point checked."""
    theta0, initial = initial_weights(initial_config(config), splits, device, initial_loss, task)
    state = MinimumState(run_id, run_id, 0, 0, initial, None)
    if not initial.reproduced:
        log(f"θ₀ of run {run_id} not reproduced (first-batch loss {initial.rebuilt_loss:.6g} rebuilt vs "
            f"{initial.stored_loss} stored); the at-a-minimum rule is not applied")
        return state
    state.check = gradient_check(store, run_id, theta0, device, fraction, task)
    state.history.append({"run_id": run_id, "extra_epochs": 0, **state.check.to_dict()})
    base_epochs = epochs_done = int(store.get(run_id).summary["epochs_completed"])
    while not state.check.at_minimum and state.rounds < train_on_rounds:
        continued = train_on_config(config, state.measured_run_id, epochs_done, train_on_epochs)
        outcome = train(continued, store=store, splits=None if task is not None else splits, progress=progress,
                        keep_state=True, task=task)
        state.rounds += 1
        if outcome.status != FINISHED:
            state.status = outcome.status
            log(f"training on from {state.measured_run_id}: {outcome.status}")
            return state
        state.measured_run_id = outcome.run_id
        epochs_done = int(outcome.summary["epochs_completed"])
        state.extra_epochs = epochs_done - base_epochs
        state.check = gradient_check(store, outcome.run_id, theta0, device, fraction, task)
        state.history.append({"run_id": outcome.run_id, "extra_epochs": state.extra_epochs, **state.check.to_dict()})
        log(f"trained on {state.extra_epochs} epochs: ‖∇f‖ = {state.check.gradient_norm:.3g} "
            f"(threshold {state.check.threshold:.3g})")
    return state
