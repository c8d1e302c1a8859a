"""The small batch's learning rate, chosen on validation before the comparison.

Every row of the comparison starts from the small batch's η: SB trains with it, plain LB keeps it,
the scaling rules multiply it (η·k, η·√k). When the setting has an η grid
(``Setting.lr_grid``), η is searched first: SB is trained at each η of the grid, for each seed,
on the training set less a validation split (``Setting.tuning_val_fraction``), and the η with the
best mean validation accuracy is chosen. When that η lies on an edge of the grid, the grid is
extended beyond it by its own factor (:mod:`batchlab.analysis.grid`) until the best η is interior,
the next η fails (a run diverged or failed to train), or ``Setting.lr_extension_cap`` values were
added on that side; :class:`LrSearch` says which.

The comparison's runs then train on the whole training set at the chosen η, and their *test*
accuracy is what the table reports: the test set never chooses. The tuning runs are stored like
any other and reused on the next pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from batchlab.analysis.accuracy import validation_score
from batchlab.analysis.grid import GridState, next_values, outcome
from batchlab.errors import ConfigError
from batchlab.training import train

if TYPE_CHECKING:
    from batchlab.config import RunConfig
    from batchlab.store import RunStore
    from batchlab.task import Task


class TuningPlan(Protocol):
    """What the search reads of its plan (a :class:`~batchlab.experiments.largebatch.experiment.LargeBatchPlan`,
    stated here so that this module does not import the experiment, which imports it): the setting
    (its ``lr_grid`` and ``lr_extension_cap``), the number of seeds, each tuning run's config and
    the user's task the runs train (None: the registry's model and data)."""

    @property
    def setting(self) -> Any: ...

    @property
    def seeds(self) -> int: ...

    @property
    def task(self) -> "Task | None": ...

    def tuning_config(self, seed: int, lr: float) -> RunConfig: ...


@dataclass(frozen=True)
class LrSearch:
    """The search of SB's η: the initial ``grid``, the extension ``cap``, each η ``tried`` with its
    mean validation accuracy (``scores``; None: failed), the ``best`` and the ``reason`` the search
    ended there (the planner's outcome, of ``kind`` interior, bounded by divergence, cap reached)."""

    grid: tuple[float, ...]
    cap: int
    tried: tuple[float, ...]
    scores: tuple[float | None, ...]
    best: float | None
    reason: str
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """"η = 0.02, the best validation accuracy of SB over 0.01, 0.02, 0.04 (interior)"."""
        tried = ", ".join(f"{v:g}" for v in self.tried)
        return f"η = {self.best:g}, SB's best validation accuracy over η ∈ {{{tried}}} ({self.reason})"


def tune_small_batch_lr(plan: TuningPlan, store: "RunStore", *, progress: bool | None = False,
                        log: Callable[[str], None] = lambda text: None) -> LrSearch | None:
    """Search SB's η over the setting's grid (module docstring); None when the setting has none.
    A ConfigError when every η tried failed."""
    setting = plan.setting
    if len(setting.lr_grid) < 2:
        return None
    state = GridState.learning_rate(setting.lr_grid, cap=setting.lr_extension_cap)
    while todo := next_values(state):
        for lr in todo:
            runs = [train(plan.tuning_config(seed, lr), store=store, progress=progress, task=plan.task)
                    for seed in range(plan.seeds)]
            score, failed = validation_score(runs)
            state.record(lr, score, diverged=failed)
            log(f"SB at η = {lr:g}: " + ("failed" if failed else f"validation accuracy {score:.4f}"))
    found = outcome(state)
    if found.best is None:
        raise ConfigError(f"the small batch's η search found no η that trains ({found.reason}); allowed: a "
                          "grid with smaller learning rates")
    tried = tuple(state.tried())
    scores = tuple(None if not state.trials[v].usable else state.trials[v].score for v in tried)
    return LrSearch(tuple(state.grid), state.cap, tried, scores, found.best, found.reason, found.kind)
