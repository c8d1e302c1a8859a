"""The accuracy sweep's η search: each batch size's grid extended until its best η is not on an edge.

Every (study, protocol, batch size, λ) — a *cell* — has its own η grid (the study's
:meth:`~batchlab.experiments.lecture.scales.AccuracyStudy.grid` of that protocol). The sweep trains
every cell's grid, then asks the planner of :mod:`batchlab.analysis.grid` which values to add:
where a cell's best η (highest mean validation accuracy over seeds) lies on an edge, one more η
beyond that edge, by the grid's own factor, until the best is interior, the next value failed,
or the study's ``lr_extension_cap`` values were added on that side. The runs of each round go
through the one sweep (stored runs are reused), so an extension costs only the runs it adds.

An η counts as failed at a cell when any of its runs ended "diverged" or "failed to train" (or
none has a validation accuracy): it bounds the grid and is never chosen.

:func:`search_learning_rates` returns one :class:`CellSearch` per cell — the grid, the values
tried, the chosen η and why the search ended there — which the lecture record keeps, so the
report can say which bound stopped each search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from batchlab.analysis.accuracy import budget_of, validation_score
from batchlab.analysis.grid import GridState, next_values, outcome
from batchlab.analysis.summary import PROTOCOL_OF_BUDGET
from batchlab.config import RunConfig
from batchlab.experiments.lecture.scales import AccuracyStudy, cell_configs

# Trains a list of configs (reusing stored runs) and returns their results (objects with
# ``config``, ``status`` and ``summary``), in any order.
Trainer = Callable[[list[RunConfig]], Sequence[Any]]


@dataclass(frozen=True)
class CellSearch:
    """The η search of one batch size and λ under one protocol: the initial ``grid``, every η
    ``tried``, the ``best`` on validation accuracy and the ``reason`` the search ended
    (:func:`batchlab.analysis.grid.outcome`), with the outcome's ``kind``."""

    dataset: str
    model: str
    protocol: str
    batch_size: int | str
    momentum: float
    grid: tuple[float, ...]
    cap: int
    tried: tuple[float, ...]
    best: float | None
    reason: str
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cell_key(config: RunConfig, protocol: str) -> tuple:
    return (config.dataset, config.model, protocol, config.batch_size, float(config.momentum))


def search_learning_rates(studies: Sequence[AccuracyStudy], seeds: int, device: str, data_dir: str | None,
                          train: Trainer, say: Callable[[str], None] = lambda text: None) -> list[CellSearch]:
    """Train every cell's initial grid with ``train``, then extend each grid whose best η lies on
    an edge, round after round, until the planner has nothing left to add (module docstring)."""
    cells: dict[tuple, tuple[AccuracyStudy, str, GridState]] = {}
    todo: list[RunConfig] = []
    for study in studies:
        for protocol in study.protocols():
            grid = study.grid(protocol)
            for batch_size, momentum in study.cells(protocol):
                key = (study.dataset, study.model, protocol, batch_size, float(momentum))
                cells[key] = (study, protocol, GridState.learning_rate(grid, cap=study.lr_extension_cap))
                todo += [c for lr in grid for c in cell_configs(study, protocol, batch_size, momentum, lr, seeds,
                                                                 device, data_dir)]
    results: dict[tuple, dict[float, list[Any]]] = {}
    round_number = 0
    while todo:
        round_number += 1
        for result in train(todo):
            config = result.config
            protocol = _protocol_of(config)
            results.setdefault(_cell_key(config, protocol), {}).setdefault(float(config.lr), []).append(result)
        todo = []
        for key, (study, protocol, state) in cells.items():
            if len(state.grid) < 2:
                continue  # one η: nothing to extend by
            for lr, runs in results.get(key, {}).items():
                score, failed = validation_score(runs)
                state.record(lr, score, diverged=failed)
            for lr in next_values(state):
                if lr not in state.trials:
                    todo += cell_configs(study, protocol, key[3], key[4], lr, seeds, device, data_dir)
        if todo:
            added = sorted({(PROTOCOL_OF_BUDGET[_protocol_of(c)], str(c.batch_size), c.lr) for c in todo})
            say(f"      η grid extended (round {round_number}): "
                + ", ".join(f"B = {b} ({protocol}): η = {lr:g}" for protocol, b, lr in added))
    return [_cell_search(key, state) for key, (_, _, state) in cells.items()]


def _protocol_of(config: RunConfig) -> str:
    return budget_of(config.to_dict())[0]


def _cell_search(key: tuple, state: GridState) -> CellSearch:
    dataset, model, protocol, batch_size, momentum = key
    if len(state.grid) < 2:
        return CellSearch(dataset, model, protocol, batch_size, momentum, state.grid, state.cap, state.grid,
                          state.grid[0], "one η, no grid", "single")
    found = outcome(state)
    return CellSearch(dataset, model, protocol, batch_size, momentum, state.grid, state.cap, tuple(state.tried()),
                      found.best, found.reason, found.kind)
