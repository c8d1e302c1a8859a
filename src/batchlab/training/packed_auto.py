"""A pack that decides on its first updates whether to train packed or one run at a time.

A pack planned ``auto`` (:func:`batchlab.training.packed_plan.plan_packs`, any device but CUDA)
is trained by :class:`AutoPackStep`, a step of the epoch driver (:mod:`batchlab.training.driver`)
that holds the runs' own models and optimizers and applies the rule of
:mod:`batchlab.training.packed_plan` (:func:`~batchlab.training.packed_plan.verdict`) in the first
epoch with room for ``PROBE_MIN_TURNS`` turns (shorter epochs before it train packed):

1. a copy of one run (:func:`representative_run`) makes a few updates alone (t₁): that run's own
   next updates, on its batches of the epoch in order;
2. if the bound says packing cannot win, every run goes on one at a time at once, and the runs
   are never stacked: they cost what ``batchlab.train`` costs them, and the copied run goes on
   from the copy's state;
3. else the runs are stacked (:class:`~batchlab.training.packed.PackStep`) and the pack makes
   steps (t_K) in turns with updates of the copy, until the test of the turns decides or its
   budget is spent (:func:`~batchlab.training.packed_plan.turns_verdict`,
   :func:`~batchlab.training.packed_plan.probe_over_budget`): real updates of all runs, kept;
   then it either goes on packed or hands each run back, mid-epoch, to its own model and
   optimizer in a one-model step (:class:`~batchlab.training.loop.SingleStep`), which continues at
   the next batch of the same epoch, so no update is made twice or lost.

The copy's updates are thrown away only when the pack goes on packed, or when the probe needed more
updates alone than the epoch has batches (it then walks the epoch again, and its updates are no
longer the run's own). Otherwise the pack's run goes on one at a time from the copy — its weights,
momentum, batch losses and timed updates — and its row of the pack's steps is what is dropped: one
model-update per packed step instead of the six before the turns (which are the first turn's)
and five in each further turn that the copy made (on 16 runs of 784-64-10 at B = 1 on a 2-core CPU,
where the two ways are close and every turn is taken, those were 6–10 ms of a 1.05 s sweep).

A run handed back takes the pack's state in loop.py's checkpoint format (its weights and
``Momentum`` state), the same hand-over a checkpoint written in a pack and resumed alone makes;
its batch losses of the epoch are the packed part's plus its own. Runs that go on one at a time
train epoch by epoch, each run its whole epoch in turn (its weights stay in cache within it).
The choice, the samples and the reason are :attr:`AutoPackStep.choice` (a decided
:class:`~batchlab.training.packed_plan.Pack`) and ``pack_choice``/``pack_choice_reason`` in
each run's summary.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from batchlab.config import RunConfig
from batchlab.runtime.bandwidth import copy_bandwidth
from batchlab.training.driver import EpochWork
from batchlab.training.loop import SingleStep
from batchlab.training.methods import build_run_optimizer, run_shape
from batchlab.training.objective import Objective
from batchlab.training.packed_plan import (
    PACKED,
    PROBE_MIN_TURNS,
    PROBE_SINGLE_FIRST,
    PROBE_SINGLE_WARMUP,
    PROBE_TURN_STEPS,
    PROBE_TURN_TIMED,
    PROBE_TURN_UNTIMED,
    SEQUENTIAL,
    Pack,
    ProbeEvidence,
    packed_bound_s,
    packed_passes,
    packing_ruled_out,
    planned_updates,
    probe_over_budget,
    probe_turn_room,
    turns_verdict,
    verdict,
    working_set_bytes,
)
from batchlab.training.update_timer import update_time_summary


class AutoPackStep:
    """K runs trained packed or one at a time, whichever the rule finds faster (module docstring).

    The runs come as their own models and optimizers (``models``, ``optimizers``, one per config,
    at the point they resume from); ``stack(configs, models, optimizers, start_update)`` makes the
    :class:`~batchlab.training.packed.PackStep` of them, which happens only when the pack is
    needed: a pack that the bound sends one at a time at once is never stacked, so its runs cost
    what ``batchlab.train`` costs them, plus copying one run. ``single_threads`` is the
    intra-op thread count of one run's update, ``label`` the pack's name in the reason.
    """

    def __init__(self, configs: Sequence[RunConfig], models: Sequence[nn.Module],
                 optimizers: Sequence[torch.optim.Optimizer], stack: Callable[..., Any], *, train: Any,
                 objective: Objective, single_threads: int, pack_threads: int, label: str) -> None:
        self.configs, self.models, self.optimizers = list(configs), list(models), list(optimizers)
        self.stack, self.train, self.objective = stack, train, objective
        self.single_threads, self.pack_threads, self.label = single_threads, pack_threads, label
        self.pack_size = len(self.configs)
        self.shapes = [run_shape(config, len(train)) for config in self.configs]
        self.pack: Any = None
        self.singles: list[SingleStep] | None = None
        self.choice: Pack | None = None

    # ------------------------------------------------------------------ the driver's step

    def train_epoch(self, epoch: int, updates: int, limit: int | None) -> EpochWork:
        if self.singles is not None:
            return self._one_at_a_time(epoch, updates, limit)
        if self.choice is None:
            batches = len(self.shapes[0].slices)
            count = batches if limit is None else max(0, min(batches, limit))
            if probe_turn_room(count) >= PROBE_MIN_TURNS:
                return self._deciding_epoch(epoch, updates, limit, count)
        # Decided packed, or an epoch too short to decide in: packed (the next long one decides).
        return self._packed(updates).train_epoch(epoch, updates, limit)

    def evaluate(self, split: Any, rows: Sequence[int] | None = None) -> list[tuple[float, float]]:
        if self.singles is None:
            return self.pack.evaluate(split, rows)
        chosen = range(len(self.singles)) if rows is None else rows
        return [self.singles[k].evaluate(split)[0] for k in chosen]

    def checkpoint(self, row: int, epoch: int, updates: int) -> dict[str, Any]:
        if self.singles is None:
            return self.pack.checkpoint(row, epoch, updates)
        return self.singles[row].checkpoint(0, epoch, updates)

    def weights(self, row: int) -> Mapping[str, torch.Tensor]:
        return self.pack.weights(row) if self.singles is None else self.singles[row].weights(0)

    def keep(self, rows: list[int]) -> None:
        self.configs = [self.configs[k] for k in rows]
        self.shapes = [self.shapes[k] for k in rows]
        if self.models:
            self.models = [self.models[k] for k in rows]
            self.optimizers = [self.optimizers[k] for k in rows]
        if self.singles is not None:
            self.singles = [self.singles[k] for k in rows]
        elif self.pack is not None:
            self.pack.keep(rows)

    def agree(self, ending: list[bool]) -> list[bool]:
        return ending

    def timing(self) -> dict[str, Any]:
        """The pack's timing keys; with runs trained alone, ``time_per_update_s`` and its
        quartiles are over every update timed, packed (amortized) and alone."""
        timing: dict[str, Any] = {"pack_size": self.pack_size, "pack_step_time_s": None, "pack_capture_time_s": 0.0}
        if self.pack is not None:
            timing |= self.pack.timing()
        if self.singles is not None:
            packed = self.pack.timer.per_update_seconds() if self.pack is not None else []
            timing |= update_time_summary(packed + [t for single in self.singles for t in single.timer.seconds])
        choice = self.choice
        return timing | {"pack_choice": None if choice is None else choice.strategy,
                         "pack_choice_reason": None if choice is None else choice.reason}

    # ------------------------------------------------------------------ deciding

    def _deciding_epoch(self, epoch: int, updates: int, limit: int | None, batches: int) -> EpochWork:
        # Everything from here on is the choice's cost, counted against its budget: the copy, its
        # updates, the bandwidth reading, stacking and the first packed step included (they were
        # 50-80 ms of a 4.9 s sweep of 784-512-512-10 at B = 128 that went one at a time).
        started = time.perf_counter()
        copied = representative_run(self.configs)
        alone = SingleProbe(self._copy_of_run(copied), epoch, updates, batches, row=copied)
        parameters = sum(p.numel() for p in self.models[0].parameters())
        bandwidth = copy_bandwidth(working_set_bytes(parameters, self.pack_size), self.pack_threads)
        bound = packed_bound_s(parameters, bandwidth, packed_passes(self.configs))
        evidence = ProbeEvidence((), alone.sample(PROBE_SINGLE_FIRST, untimed=PROBE_SINGLE_WARMUP), bound, bandwidth)
        if packing_ruled_out(evidence):
            self._decide(evidence, alone)
            return self._rest_one_at_a_time(epoch, updates, batches, None, alone)
        alone_s = statistics.median(evidence.sequential_s)
        remaining = max(1, planned_updates(self.configs[0], len(self.train)) - updates)
        pack = self._packed(updates)
        probe = pack.train_epoch(epoch, updates, 1)  # vmap's first call: not packing's speed
        packed_s: list[float] = []
        single_s = list(evidence.sequential_s)  # the first turn's updates alone: those just timed
        for turn in range(probe_turn_room(batches)):
            step = probe.updates
            probe = join(probe, pack.train_epoch(epoch, updates + step, PROBE_TURN_STEPS, first_batch=step))
            packed_s += pack.timer.per_update_seconds()[-PROBE_TURN_STEPS:]
            if turn:
                # Updates alone right after the packed ones, compared with them: the two ways are
                # timed in turns, so a burst of load from elsewhere falls on both.
                single_s += alone.sample(PROBE_TURN_TIMED, untimed=PROBE_TURN_UNTIMED)
            evidence = ProbeEvidence(tuple(packed_s), tuple(single_s), bound, bandwidth,
                                     turn_steps=PROBE_TURN_STEPS, turn_timed=PROBE_TURN_TIMED)
            if turns_verdict(evidence) is not None:
                break
            if probe_over_budget(time.perf_counter() - started, probe.updates, self.pack_size, alone_s, remaining):
                break
        if self._decide(evidence, alone) == PACKED:
            rest = None if limit is None else limit - probe.updates
            return join(probe, pack.train_epoch(epoch, updates + probe.updates, rest, first_batch=probe.updates))
        return self._rest_one_at_a_time(epoch, updates, batches, probe, alone)

    def _decide(self, evidence: ProbeEvidence, alone: "SingleProbe") -> str:
        """Apply the rule to ``evidence``; going one at a time, the run the probe ``alone`` copied
        goes on from the copy when the copy made only that run's own next updates."""
        strategy, words = verdict(evidence)
        reason = f"{self.label}: {words}, measured on its first updates: {evidence.describe()}"
        self.choice = Pack(tuple(self.configs), strategy, reason, evidence)
        if strategy == SEQUENTIAL:
            self._hand_over(alone)
        else:
            self.models = self.optimizers = []  # the pack holds the only copy from here on
        return strategy

    def _packed(self, updates: int) -> Any:
        """The stacked step, made from the runs' models and optimizers the first time it is needed."""
        if self.pack is None:
            self.pack = self.stack(self.configs, self.models, self.optimizers, updates)
        return self.pack

    def _hand_over(self, alone: "SingleProbe") -> None:
        """Each run on its own from here: its model and optimizer, given the pack's state
        (:meth:`PackStep.hand_over`) if it trained packed; the run whose own updates the probe
        ``alone`` made (:attr:`SingleProbe.kept_row`) goes on as the probe's one-model step."""
        copied, copy = alone.kept_row, alone.single
        if copied is not None:
            self.models[copied], self.optimizers[copied] = copy.model, copy.optimizer
        if self.pack is not None:
            for row, (model, optimizer) in enumerate(zip(self.models, self.optimizers)):
                if row != copied:
                    self.pack.hand_over(row, model, optimizer)
            self.pack.release()
        self.singles = [SingleStep(model, optimizer, self.train, self.objective, shape, config, self.single_threads)
                        if row != copied else copy
                        for row, (model, optimizer, shape, config) in enumerate(
                            zip(self.models, self.optimizers, self.shapes, self.configs))]

    def _copy_of_run(self, row: int) -> SingleStep:
        """A one-model step of a copy of run ``row`` as it stands (its weights and optimizer state)."""
        config, shape = self.configs[row], self.shapes[row]
        model = copy.deepcopy(self.models[row])
        optimizer = build_run_optimizer(config, model.parameters(), shape)
        if self.pack is not None:
            self.pack.hand_over(row, model, optimizer)
        else:
            optimizer.load_state_dict(self.optimizers[row].state_dict())
        return SingleStep(model, optimizer, self.train, self.objective, shape, config, self.single_threads)

    def _one_at_a_time(self, epoch: int, updates: int, limit: int | None) -> EpochWork:
        assert self.singles is not None
        return runs_together([single.train_epoch(epoch, updates, limit) for single in self.singles])

    def _rest_one_at_a_time(self, epoch: int, updates: int, batches: int, packed: EpochWork | None,
                            alone: "SingleProbe") -> EpochWork:
        """The deciding epoch of ``batches`` batches (the first being update ``updates``) finished
        one run at a time, each run from where it stands: after the pack's ``packed`` part (None
        before any packed step), and the run the probe ``alone`` kept (:attr:`SingleProbe.kept_row`)
        after the probe's updates."""
        assert self.singles is not None
        works = []
        for row, single in enumerate(self.singles):
            if row == alone.kept_row:
                before = alone.work
            elif packed is not None:
                before = packed.row(row)
            else:
                before = NO_WORK
            start = before.updates
            works.append(join(before, single.train_epoch(epoch, updates + start, batches - start, first_batch=start)))
        assert all(work.updates == batches for work in works), "every run ends the epoch at the same batch"
        return runs_together(works)


def representative_run(configs: Sequence[RunConfig]) -> int:
    """The first run of the pack's most common update rule, whose copy the probe times.

    Runs of one pack differ in cost only by their rule's extra work: a run without momentum
    (λ = 0) keeps no buffer and skips its passes, weight decay and Nesterov add some. The first run
    of a sweep's grid is often the λ = 0 one; timed alone it made one-at-a-time look ~15 % cheaper
    than the pack's average run (784-64-10, B = 16, λ ∈ {0, 0.5, 0.8, 0.9} on a 2-core CPU), and
    the pack went one at a time where packing was 1.3× faster.
    """
    kinds = [(config.momentum != 0.0, config.weight_decay != 0.0, config.nesterov) for config in configs]
    commonest = max(kinds, key=lambda kind: (kinds.count(kind), -kinds.index(kind)))
    return kinds.index(commonest)


class SingleProbe:
    """Timed updates of a copy of one run, made in turns (kept only if the run goes on one at a time).

    Timed by the one-model step's own loop and timer, as its training is (each batch's gather
    included, as the packed step's time includes its gather): timing the update call alone, on
    batches gathered beforehand, made one at a time look cheaper than it trains. Each turn starts
    with untimed updates (``PROBE_TURN_UNTIMED``): after the pack's step has run, the run's state
    is out of the cache, and the first update after that measured 1.3–2× a warm one, the second
    still up to 1.3× (784-64-10 and 784-512-512-10, B = 1 to 128, 2-core CPU), which is not what
    training one run at a time pays; a fresh copy's first few updates
    are slower still (allocations, first touches), hence more untimed ones in the first turn
    (``PROBE_SINGLE_WARMUP``). The copy walks its order in ``epoch`` from the first batch (update
    ``updates``), as the run would: while it stays within the epoch's first ``batches`` batches
    (:attr:`in_order`), its updates are the run's own next ones and :attr:`work` is their
    :class:`EpochWork`. A turn that does not fit in what is left of them starts again at the first
    batch (which examples a timed update sees does not change its time), and the copy's updates
    are from then on only timings.
    """

    def __init__(self, single: SingleStep, epoch: int, updates: int = 0, batches: int | None = None, *,
                 row: int | None = None) -> None:
        self.single, self.epoch, self.updates, self.row = single, epoch, updates, row
        self.batches = len(single.shape.slices) if batches is None else batches
        self.made = self.position = 0
        self.in_order = True
        self.work = NO_WORK

    @property
    def kept_row(self) -> int | None:
        """The pack's row of the run copied (``row``) while the copy's updates are that run's own
        (:attr:`in_order`); None once they are only timings."""
        return self.row if self.in_order else None

    def sample(self, count: int, untimed: int = 1) -> tuple[float, ...]:
        """The seconds of ``count`` updates, after ``untimed`` more, made in one pass of the step's
        loop where the epoch has room (a call per update measured 1.1–1.4× the loop's own time)."""
        wanted = count + untimed
        while wanted:
            first = self.position if self.position + wanted <= self.batches else 0
            if first != self.position:
                self.in_order = False
            work = self.single.train_epoch(self.epoch, self.updates + first, min(wanted, self.batches - first),
                                           first_batch=first)
            if self.in_order:
                self.work = join(self.work, work)
            self.position = first + work.updates
            self.made += work.updates
            wanted -= work.updates
        seconds = self.single.timer.seconds  # every timed update so far; this turn's last
        return tuple(seconds[len(seconds) - count:])


# One run's epoch before any of its updates (the start of a :func:`join`).
NO_WORK = EpochWork(0, 0.0, [0.0], None)


def runs_together(works: Sequence[EpochWork]) -> EpochWork:
    """The epoch of several runs, each trained alone (one :class:`EpochWork` of one run each, the
    same number of updates): their seconds averaged, as a packed step's are shared."""
    firsts = [work.first_losses[0] for work in works] if works and works[0].first_losses is not None else None
    return EpochWork(works[0].updates if works else 0, sum(work.seconds for work in works) / max(len(works), 1),
                     [work.loss_sums[0] for work in works], firsts)


def join(first: EpochWork, rest: EpochWork) -> EpochWork:
    """One epoch's work made in two parts, per run: updates and seconds add, so do batch losses;
    the first losses are the first part's."""
    return EpochWork(first.updates + rest.updates, first.seconds + rest.seconds,
                     [a + b for a, b in zip(first.loss_sums, rest.loss_sums)],
                     first.first_losses if first.first_losses is not None else rest.first_losses)
