"""The experiments behind ``batchlab lecture``, run into a store so the report can be rebuilt from it.

Stages, in the lecture's order:

1. **timing** — :func:`batchlab.timing.timing_sweep` of the network over the lecture's batch sizes
   (time per update and per epoch, CPU and, when present, GPU); rows go to the store's timings.
   Skipped when the store already holds a timing of the same settings (``retime`` measures again).
2. **accuracy sweep** — :func:`batchlab.sweep.run_sweep` over batch size × λ × η × seed under each
   protocol (equal epochs; equal updates and given enough updates when the scale has them);
   stored runs are reused, and a batch size whose best η lies on an edge of its grid gets more η
   beyond it (:mod:`batchlab.experiments.lecture.search`).
3. **noise** — a full-batch gradient-descent run (a stored run like any other) is trained to near
   a critical point; :func:`batchlab.analysis.noise.measure_noise` then measures mini-batch vs
   full-batch gradients there and at the initial weights; results go to records of kind ``noise``.
4. **flat vs sharp** — Keskar et al.'s comparison (:mod:`batchlab.experiments.gap`): a small and a large batch
   trained with the lecture's momentum until both reach the same training accuracy, then their
   test accuracy, the sharpness of each minimum and the loss on the line between them; a record
   of kind ``gap`` (scale ``lecture-<scale>``), its runs and measurements reused when present.
5. **momentum** — :func:`batchlab.toy.lecture_toy_experiments` (deterministic, about a second);
   its arguments and results go to a record of kind ``toy``.

The records use the kinds the report reads (:mod:`batchlab.report.context`); what each scale runs
is in :mod:`batchlab.experiments.lecture.scales`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from batchlab.analysis.accuracy import PATIENCE_BUDGET
from batchlab.config import resolve_batch_size
from batchlab.runtime.device import resolve_device
from batchlab.errors import ConfigError
from batchlab.experiments.shape import Stopwatch
from batchlab.experiments.lecture.scales import (
    AccuracyStudy,
    LectureScale,
    available_studies,
    critical_point_config,
)
from batchlab.experiments.lecture.search import search_learning_rates
from batchlab.report.context import LECTURE_KIND, LECTURE_SETTINGS_KEY, NOISE_KIND, TOY_KEY, TOY_KIND
from batchlab.store import RunStore
from batchlab.store.status import FINISHED

if TYPE_CHECKING:
    from batchlab.experiments.gap.experiment import GapPlan

Progress = Callable[[str], None]


def run_lecture(
    store: RunStore,
    scale: LectureScale,
    *,
    device: str = "auto",
    data_dir: str | None = None,
    retime: bool = False,
    progress: Progress | None = None,
    run_progress: bool | None = None,
) -> dict[str, Any]:
    """Run every stage into ``store`` (reusing what it already holds); returns the lecture record."""
    say = progress or (lambda text: None)
    target = resolve_device(device)
    studies, notes = available_studies(scale, data_dir)
    if not studies:
        raise ConfigError(f"no dataset of the {scale.name} scale is on this machine; allowed: fetch one with "
                          "`batchlab data fetch NAME`, or use --scale quick")
    primary = studies[0]
    stage_seconds: dict[str, float] = {}
    stopwatch = Stopwatch()

    clock = time.perf_counter()
    say("[1/5] timing: time per update and per epoch vs batch size")
    timing = run_timing_stage(store, scale, primary, device, data_dir, retime, say)
    stage_seconds["timing"] = time.perf_counter() - clock

    clock = time.perf_counter()
    say("[2/5] accuracy vs batch size: sweep over B × λ × seeds")
    from batchlab.sweep import run_sweep

    # Explicit configs rather than one grid: update-budget runs need their own epoch caps. Each
    # batch size's η grid is extended where its best η lies on an edge (search_learning_rates).
    counts = {"runs": 0, "reused": 0}

    def sweep(configs):
        results = run_sweep(configs, store, progress=run_progress)
        counts["runs"] += len(results.runs)
        counts["reused"] += results.skipped
        return results.runs

    searches = search_learning_rates(studies, scale.seeds, device, data_dir, sweep, say)
    say(f"      {counts['runs']} runs in the store ({counts['reused']} reused)")
    stage_seconds["accuracy sweep"] = time.perf_counter() - clock

    clock = time.perf_counter()
    say("[3/5] noise: mini-batch vs full-batch gradients near a critical point")
    run_noise_stage(store, scale, primary, device, data_dir, run_progress, say)
    stage_seconds["noise"] = time.perf_counter() - clock

    clock = time.perf_counter()
    say("[4/5] flat vs sharp: a small and a large batch, same optimizer and η, measured at minima (Keskar et al.)")
    notes += run_sharp_minima_stage(store, scale, device, data_dir, run_progress, say)
    stage_seconds["flat vs sharp"] = time.perf_counter() - clock

    clock = time.perf_counter()
    say("[5/5] momentum: the rolling ball on toy surfaces")
    run_toy_stage(store, scale.toy_surfaces)
    stage_seconds["momentum"] = time.perf_counter() - clock

    record = {
        "scale": scale.to_dict(),
        "primary": {"dataset": primary.dataset, "model": primary.model},
        # Pairs, not a mapping: the store sorts JSON keys, and the report shows them in this order.
        "settings": list(lecture_settings(scale, studies, target).items()),
        "stage_seconds": stage_seconds,
        "timing": timing,
        # Each batch size's η search under each protocol: its grid, the values tried, the choice and
        # which bound ended it (interior, divergence, the cap) — the report's tuned panels read it.
        "lr_search": [search.to_dict() for search in searches],
        "notes": notes,
        **stopwatch.envelope(target).to_dict(),
    }
    store.put_record(LECTURE_KIND, LECTURE_SETTINGS_KEY, record)
    return record


def lecture_settings(scale: LectureScale, studies: list[AccuracyStudy], device: torch.device) -> dict[str, Any]:
    """The run settings the report states, in words a reader recognizes."""
    primary = studies[0]
    settings: dict[str, Any] = {
        "scale": scale.name,
        "device": str(device),
        "dataset": primary.dataset,
        "model": primary.model + (f" {'-'.join(map(str, primary.hidden))}" if primary.hidden else " (784-512-512-10)"),
        "optimizer": "the lecture's momentum m ← λm − ηg, θ ← θ + m",
        "batch sizes": list(primary.batch_sizes),
        "λ": list(primary.momenta),
        "η": (f"best of {list(primary.learning_rates)} per batch size and protocol, on validation accuracy; "
              f"a best η on an edge extends the grid by up to {primary.lr_extension_cap} value"
              f"{'s' if primary.lr_extension_cap != 1 else ''} on that side"
              if len(primary.learning_rates) > 1 else primary.lr),
        "epochs": primary.epochs,
        "seeds": scale.seeds,
        "timing batch sizes": list(scale.timing_batch_sizes),
        "timing N": scale.timing_n_examples,
        "critical point": f"{scale.critical_updates} full-batch updates, η = {scale.critical_lr}, "
                          f"λ = {scale.critical_momentum}",
    }
    if len(studies) > 1:
        settings["other datasets"] = [f"{s.dataset} ({s.model})" for s in studies[1:]]
    if primary.update_budget:
        settings["update budget"] = f"{primary.update_budget} updates at B ∈ {list(primary.update_batch_sizes)}"
    if scale.sharp_minima is not None:
        sharp = scale.sharp_minima
        target = ("" if sharp.target_train_acc is None else f"to {sharp.target_train_acc:.0%} training accuracy, ")
        settings["flat vs sharp"] = (f"SB = {sharp.small_batch} vs LB = {sharp.large_fraction:.0%} of the training set, "
                                     f"both {sharp.optimizer} η = {sharp.lr:g}, λ = {sharp.momentum:g}, {target}"
                                     f"then on while not at a minimum, {sharp.seeds} paired seeds, "
                                     f"{sharp.model} on {' or '.join(sharp.datasets)}")
    if primary.patience:
        sizes = list(primary.patience_batch_sizes or primary.batch_sizes)
        settings["given enough updates"] = (
            f"until the training loss stops improving for {primary.patience} epochs, at most "
            f"{primary.patience_updates} updates (an update cap, not an epoch cap), at B ∈ {sizes}, "
            f"η from {list(primary.grid(PATIENCE_BUDGET))}")
    return settings


# ----------------------------------------------------------------------------- stages


def _fingerprint(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_timing_stage(store: RunStore, scale: LectureScale, study: AccuracyStudy, device: str,
                     data_dir: str | None, retime: bool, say: Progress) -> dict[str, Any]:
    """Time the study's network unless the store already holds this exact timing; returns the
    timing's record (settings, number of points, the timing's footnotes)."""
    from batchlab.timing import timing_sweep

    settings = {"model": study.model, "hidden": study.hidden, "dataset": study.dataset,
                "batch_sizes": list(scale.timing_batch_sizes), "n_examples": scale.timing_n_examples,
                "budget_s": scale.timing_budget_s, "paths": scale.timing_paths, "device": device}
    key = f"timing:{_fingerprint(settings)}"
    existing = store.get_record(LECTURE_KIND, key)
    if not retime and existing is not None and store.timings(model=study.model):
        say("      reusing the timing already in the store (--retime measures again)")
        return existing
    table = timing_sweep(
        paths=scale.timing_paths, batch_sizes=scale.timing_batch_sizes, device=device, model=study.model,
        dataset=study.dataset, n_examples=scale.timing_n_examples, budget_s=scale.timing_budget_s,
        data_dir=data_dir, hidden=study.hidden, progress=lambda text: say(f"      {text}"),
    )
    for row in table.store_rows():
        store.add_timing(row)
    # The table's footnotes (extrapolated epochs, synthetic data, a busy machine) are not part of
    # the timing rows; kept here so the report can show them.
    # The load while timing decides whether the summary judges the CPU rows at all.
    load = dict(table.settings.get("load_average") or {}, own_threads=torch.get_num_threads())
    record = {"settings": settings, "points": len(table.points), "created": time.time(), "notes": list(table.notes),
              "load_average": load}
    store.put_record(LECTURE_KIND, key, record)
    return record


def run_noise_stage(store: RunStore, scale: LectureScale, study: AccuracyStudy, device: str,
                    data_dir: str | None, run_progress: bool | None, say: Progress) -> None:
    """Train (or reuse) the full-batch run, then measure the gradient noise at its start and end."""
    from batchlab.analysis.noise import measure_noise
    from batchlab.models.registry import build_model
    from batchlab.training import train
    from batchlab.training.restore import restore_run

    config = critical_point_config(scale, study, device, data_dir)
    result = train(config, store=store, progress=run_progress)
    if result.status != FINISHED:
        say(f"      the full-batch run {result.run_id} {result.status}; no noise measurement")
        return
    restored = restore_run(store, result.run_id, device)
    train_split = restored.splits.train
    sizes = [b for b in (resolve_batch_size(b, len(train_split), larger="keep") for b in study.batch_sizes) if b < len(train_split)]
    settings = {"batch_sizes": sizes, "n_batches": scale.noise_batches, "seed": 0}

    torch.manual_seed(config.seed)  # the initial weights exactly as the training loop draws them
    initial = build_model(config.model, restored.splits.input_shape, restored.splits.num_classes, config.hidden)
    points = {
        "start": (initial.to(resolve_device(device)),
                  f"the initial weights of run {result.run_id} (seed {config.seed})", False),
        "end": (restored.model, f"the end of run {result.run_id}: {result.summary.get('updates', config.epochs)} "
                                f"full-batch updates with "
                                f"η = {config.lr}, λ = {config.momentum}", True),
    }
    for which, (model, description, scan) in points.items():
        key = f"{result.run_id}:{which}:{_fingerprint(settings)}"
        if store.get_record(NOISE_KIND, key) is not None:
            say(f"      reusing the noise measurement at the {which} point")
            continue
        report = measure_noise(model, train_split.x, train_split.y, sizes, n_batches=scale.noise_batches, seed=0,
                               scan_batches=4 if scan else 0,
                               point={"run_id": result.run_id, "which": which, "description": description,
                                      "created": time.time()})
        store.put_record(NOISE_KIND, key, report.to_dict())
        say(f"      {which}: full-batch ‖∇L‖ = {report.full_grad_norm:.3g}, median batch ‖∇L^i‖ at "
            f"B = {sizes[0]}: {report.batch_sizes[0].median_grad_norm:.3g}")


def sharp_minima_plan(scale: LectureScale, device: str, data_dir: str | None) -> tuple["GapPlan | None", list[str]]:
    """The generalization-gap experiment's plan for the scale's flat-vs-sharp study, on the first of
    its datasets found here (a subset only of a dataset larger than it), and notes for the report;
    ``(None, notes)`` when the scale has no such study or none of its datasets is here."""
    from batchlab.config import RunConfig
    from batchlab.data import DATASETS, locate
    from batchlab.experiments.gap.experiment import GapPlan, NetworkPlan
    from batchlab.sweep.spec import training_set_size

    study = scale.sharp_minima
    if study is None:
        return None, []
    dataset = next((d for d in study.datasets if locate(DATASETS[d], data_dir) is not None), None)
    if dataset is None:
        return None, [f"none of {', '.join(study.datasets)} is on this machine (`batchlab data fetch "
                      f"{study.datasets[0]}`); the flat-vs-sharp comparison was left out"]
    notes = [] if dataset == study.datasets[0] else [
        f"{study.datasets[0]} is not on this machine (`batchlab data fetch {study.datasets[0]}`), so the flat-vs-sharp "
        f"comparison trains on {dataset}"]
    n_train = training_set_size(RunConfig(dataset=dataset, val_fraction=0.0))
    subset = study.train_subset if study.train_subset is not None and study.train_subset < n_train else None
    n_used = subset or n_train
    large = round(study.large_fraction * n_used)
    if large <= study.small_batch:
        return None, notes + [f"{dataset} has {n_used} training examples, so LB = {study.large_fraction:.0%} = {large} "
                              f"is not larger than SB = {study.small_batch}; the flat-vs-sharp comparison was left out"]
    network = NetworkPlan(
        key="lecture", paper=study.paper, model=study.model, dataset=dataset, hidden=study.hidden,
        sb=study.small_batch, lb_fraction=study.large_fraction, sb_epochs=study.sb_epochs,
        lb_epochs=study.lb_epochs, stop_patience=study.stop_patience, sharpness_examples=study.sharpness_examples,
        landscape_examples=study.landscape_examples, landscape_test_examples=study.landscape_test_examples,
        note=notes[0] if notes else "", optimizer=study.optimizer, lr=study.lr,
        momentum=study.momentum, train_subset=subset, target_train_acc=study.target_train_acc,
        train_on_epochs=study.train_on_epochs, train_on_rounds=study.train_on_rounds,
        curvature_examples=study.curvature_examples, trace_samples=study.trace_samples,
    )
    plan = GapPlan(scale=f"lecture-{scale.name}", seeds=study.seeds, networks=(network,), epsilons=study.epsilons,
                   subspace=False, device=device, data_dir=data_dir, reasons=study.reasons,
                   minimum_fraction=study.minimum_fraction)
    return plan, notes


def run_sharp_minima_stage(store: RunStore, scale: LectureScale, device: str, data_dir: str | None,
                           run_progress: bool | None, say: Progress) -> list[str]:
    """Run (or read back) the flat-vs-sharp comparison; returns notes for the lecture record."""
    from batchlab.experiments.gap.experiment import run_gap

    plan, notes = sharp_minima_plan(scale, device, data_dir)
    if plan is None:
        for note in notes:
            say(f"      {note}")
        return notes
    result = run_gap(plan, store, progress=run_progress, log=lambda text: say(f"      {text}"))
    for finding in result.findings:
        say(f"      {finding.aspect}: {finding.verdict} — {finding.text}")
    return notes


def run_toy_stage(store: RunStore, surfaces: tuple[str, ...] | None = None) -> None:
    """The lecture's momentum claims on toy surfaces, stored with the arguments that reproduce them."""
    from batchlab.toy import lecture_toy_experiments

    arguments: dict[str, Any] = {} if surfaces is None else {"surfaces": list(surfaces)}
    report = lecture_toy_experiments(**arguments)
    store.put_record(TOY_KIND, TOY_KEY, {"arguments": arguments, "report": report.to_dict()})

