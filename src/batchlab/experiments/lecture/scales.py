"""What ``batchlab lecture`` runs at each scale: the studies, their runs, the timing and noise settings.

The settings of each scale are in :data:`SCALES`. ``quick`` uses the embedded 5,000-image MNIST
subset and the lecture's MLP (784-512-512-10) with the lecture's momentum λ = 0.9 at B = 8, 128 and
the full batch (3,600), 3 paired seeds, each batch size at its best η of {0.003, 0.01, 0.03, 0.1, 0.3}
(chosen on validation accuracy; a best η on the grid's edge extends the grid by one value on that
side) under three protocols: equal epochs, equal updates, and given enough updates (trained until
the training loss stops improving, with an update cap of 100 at B = 128 and the full batch). Its
flat-vs-sharp study (:class:`SharpMinimaStudy`) trains SB = 32 and LB = 10 % (205) of 2,048
Fashion-MNIST images with the same momentum and η to 100 % training accuracy, 3 paired seeds, trains
on while a point fails the at-a-minimum rule, and measures sharpness, λ_max, the trace and the
adaptive sharpness at each minimum and the line between them. Measured on a quiet 2-core CPU
(nothing else running) from a fresh clone with Fashion-MNIST installed: 222 s in all (timing 11 s,
accuracy sweep with its η extensions 131 s, noise 2 s, flat vs sharp 62 s, momentum 1 s, the
report the rest); ``make demo`` with the virtual environment made first took 272 s. ``full``
uses the full datasets found on the machine and the lecture's batch
sizes 1 … 60,000, and is meant for a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from batchlab.analysis.accuracy import EPOCH_BUDGET, PATIENCE_BUDGET, UPDATE_BUDGET
from batchlab.analysis.grid import EXTENSION_CAP
from batchlab.config import RunConfig
from batchlab.errors import ConfigError
from batchlab.experiments.shape import check_scale


@dataclass(frozen=True)
class AccuracyStudy:
    """One accuracy-vs-batch-size sweep: a dataset and network over batch sizes × λ × seeds."""

    dataset: str
    model: str
    hidden: tuple[int, ...] | None
    batch_sizes: tuple[int | str, ...]
    momenta: tuple[float, ...]
    lr: float
    epochs: int
    # A fixed update budget (runs with max_updates) over these batch sizes and λ, or None.
    update_budget: int | None = None
    update_batch_sizes: tuple[int, ...] = ()
    update_momenta: tuple[float, ...] = ()
    # Learning rates tried at every batch size under every protocol (empty: ``lr`` only); the
    # report keeps, per batch size and protocol, the one with the best validation accuracy.
    lr_grid: tuple[float, ...] = ()
    # "Given enough updates": runs trained until the training loss stops improving for ``patience``
    # epochs (Keskar et al.'s rule), capped at ``patience_updates`` updates — an update cap, not an
    # epoch cap, so the full batch (one update per epoch) gets as many updates as any other batch
    # size — over ``patience_batch_sizes`` (empty: ``batch_sizes``) × ``momenta``, at each η of
    # ``patience_lr_grid`` (empty: ``learning_rates``); None: none.
    patience: int | None = None
    patience_updates: int = 0
    patience_batch_sizes: tuple[int | str, ...] = ()
    patience_lr_grid: tuple[float, ...] = ()
    # Values added beyond each edge of an η grid whose best value lies on the edge
    # (batchlab.analysis.grid; the planner's own cap is 3).
    lr_extension_cap: int = EXTENSION_CAP

    @property
    def learning_rates(self) -> tuple[float, ...]:
        return self.lr_grid or (self.lr,)

    def protocols(self) -> tuple[str, ...]:
        """The budgets this study trains under, of :data:`batchlab.analysis.accuracy`'s kinds."""
        return (EPOCH_BUDGET, *((UPDATE_BUDGET,) if self.update_budget else ()),
                *((PATIENCE_BUDGET,) if self.patience else ()))

    def grid(self, protocol: str) -> tuple[float, ...]:
        """The initial η grid of ``protocol`` (the planner extends it at an edge)."""
        if protocol == PATIENCE_BUDGET and self.patience_lr_grid:
            return self.patience_lr_grid
        return self.learning_rates

    def cells(self, protocol: str) -> list[tuple[int | str, float]]:
        """The (batch size, λ) pairs trained under ``protocol``; each has its own η search."""
        if protocol == UPDATE_BUDGET:
            return [(b, m) for b in self.update_batch_sizes for m in self.update_momenta]
        sizes = self.patience_batch_sizes if protocol == PATIENCE_BUDGET and self.patience_batch_sizes \
            else self.batch_sizes
        return [(b, m) for b in sizes for m in self.momenta]


@dataclass(frozen=True)
class SharpMinimaStudy:
    """Keskar et al.'s small- vs large-batch comparison as the paper ran it, inside the lecture: SB
    and LB trained with the same optimizer and hyperparameters (one η), LB a fixed fraction of the
    training set, both until the same training accuracy (or until the loss stops improving),
    SB and LB of a seed from the same initial weights; points that fail the at-a-minimum rule are
    trained on in rounds; then the test accuracy, Keskar's sharpness, λ_max, the Hessian trace, the
    stability bound and the adaptive sharpness at each minimum, the loss on the line between them,
    and every comparison paired by seed (:func:`sharp_minima_plan` turns it into the
    generalization-gap experiment's plan).

    ``datasets`` are tried in order; the first on this machine is used (``train_subset`` applies to
    a dataset larger than it). The paper's ``paper`` network is the one whose published numbers the
    tables show beside ours.
    """

    datasets: tuple[str, ...]
    train_subset: int | None
    model: str
    hidden: tuple[int, ...] | None
    small_batch: int
    large_fraction: float
    lr: float
    momentum: float
    target_train_acc: float | None
    sb_epochs: int
    lb_epochs: int
    seeds: int
    sharpness_examples: int | None
    landscape_examples: int | None
    landscape_test_examples: int | None
    epsilons: tuple[float, ...] = (1e-3,)
    paper: str = "F1"
    reasons: tuple[str, ...] = ()
    optimizer: str = "momentum"
    stop_patience: int = 0
    train_on_epochs: int = 5
    train_on_rounds: int = 4
    curvature_examples: int | None = 512
    trace_samples: int | None = 10
    # The at-a-minimum rule's fraction: ‖∇f‖ ≤ minimum_fraction · ‖∇f(θ₀)‖ (batchlab.geometry.minimum).
    minimum_fraction: float = 0.01


@dataclass(frozen=True)
class LectureScale:
    """Everything ``batchlab lecture`` runs at one scale."""

    name: str
    studies: tuple[AccuracyStudy, ...]
    seeds: int
    timing_batch_sizes: tuple[int | str, ...]
    timing_n_examples: int
    timing_budget_s: float
    timing_paths: tuple[str, ...] | None
    # The full-batch run trained towards a critical point for the noise measurements.
    critical_lr: float
    critical_momentum: float
    critical_updates: int
    noise_batches: int
    optional_datasets: tuple[str, ...] = field(default=())
    # Toy surfaces of the momentum stage (None: every registered surface).
    toy_surfaces: tuple[str, ...] | None = None
    # Keskar's small vs large batch at equal training accuracy (None: not run).
    sharp_minima: SharpMinimaStudy | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The quick study: B = 8, 128 and the full batch (3,600), λ = 0.9, each batch size at its best η of
# {0.003, …, 0.3} (chosen on validation accuracy; with {0.01, 0.03, 0.1} B = 8 chose the lowest and
# the full batch the highest η, both edges) under three protocols: 3 epochs (the lecture's
# figure), 225 updates (half an epoch at B = 8, 8 epochs at B = 128; the full batch would need 225
# epochs and is left out), and given enough updates: until the training loss stops improving for
# 2 epochs, at most 100 updates, at B = 128 and the full batch with η ∈ {0.1, 0.3}. 100 full-batch
# updates are 100 passes over the training set (a full-batch run trained 100 updates reached 99.97 %
# training accuracy), so this protocol leaves out B = 8 (100 updates are a fifth of an epoch there,
# far from its plateau) and tries two η: its full-batch runs are the sweep's largest cost. Counted
# in examples through the network (both seeds), the sweep's initial runs are at most 2.12 million
# (with the earlier 10-epoch cap and the separate 100-update critical run: 2.08 million); each η the
# extension adds costs at most 58,000 at B ≤ 128 and 720,000 for the full batch given enough
# updates. Its run at η = 0.1 is the noise stage's critical point.
# A grid whose best η lies on an edge is extended by one value on that side (the planner's cap is
# three; one keeps `make demo` within its 10 minutes on 2 cores).
# The update and patience budgets are where the time goes: they are what makes a verdict possible.
_LECTURE_MLP = AccuracyStudy(
    dataset="mnist-5k", model="mlp", hidden=None, batch_sizes=(8, 128, "full"), momenta=(0.9,),
    lr=0.01, epochs=3, update_budget=225, update_batch_sizes=(8, 128), update_momenta=(0.9,),
    lr_grid=(0.003, 0.01, 0.03, 0.1, 0.3), patience=2, patience_updates=100, patience_batch_sizes=(128, "full"),
    patience_lr_grid=(0.1, 0.3), lr_extension_cap=1,
)

# Keskar's comparison inside the quick lecture: the lecture's MLP on 2,048 Fashion-MNIST training
# images (mnist-5k's 4,000 when Fashion-MNIST is not on disk), SB = 32 vs LB = 10 % of the training
# set (205), the lecture's momentum λ = 0.9 at one η = 0.02 for both, both to 100 % training
# accuracy (or until the training loss stops improving for 5 epochs), then on in rounds of 5 epochs
# (at most 4) while the at-a-minimum rule fails, 3 seeds. Counted on the subset (not timed): SB at
# η = 0.02 reached the rule after about 47 epochs; η = 0.03 left SB oscillating (no minimum in 40
# epochs); LB needs about 75 epochs at η = 0.02–0.03, and about three times as many at 0.01.
_QUICK_SHARP_MINIMA = SharpMinimaStudy(
    datasets=("fashion-mnist", "mnist-5k"), train_subset=2048, model="mlp", hidden=None, small_batch=32,
    large_fraction=0.1, lr=0.02, momentum=0.9, target_train_acc=1.0, stop_patience=5, sb_epochs=60, lb_epochs=120,
    seeds=3, sharpness_examples=512, landscape_examples=None, landscape_test_examples=None,
    curvature_examples=512, trace_samples=10, train_on_epochs=5, train_on_rounds=4,
    reasons=(
        "the lecture's MLP (784-512-512-10) and momentum (λ = 0.9, η = 0.02 for both regimes) instead of the "
        "paper's networks and Adam, on a 2,048-image training subset (all test images): the paper's datasets "
        "take hours per run on a 2-core CPU, and the subset keeps the stage inside the demo's 10 minutes",
        "SB = 32 and LB = 10 % of the training set (205) instead of 256 and 10 %: on 2,048 images SB = 256 would "
        "be larger than LB",
        "both regimes stop at the first epoch with 100 % training accuracy (or when the loss stops improving for 5 "
        "epochs), so they are compared at the same training accuracy; a point that then fails the at-a-minimum "
        "rule is trained on for at most 4 rounds of 5 epochs",
        "sharpness (ε = 1e-3), λ_max, the trace (10 Hutchinson vectors) and the adaptive sharpness use 512 seeded "
        "training examples",
        "the paper's numbers shown beside ours are those of its F1, the fully connected network nearest to this one",
    ),
)

SCALES: dict[str, LectureScale] = {
    "quick": LectureScale(
        name="quick",
        studies=(_LECTURE_MLP,),
        # Three seeds, each paired across batch sizes (same initial weights): with two, the paired t
        # interval's quantile is 12.7 and even a 19-point difference stays "within noise".
        seeds=3,
        timing_batch_sizes=(1, 10, 100, 1000, 10000),
        timing_n_examples=60000,
        timing_budget_s=0.5,
        timing_paths=("dataloader", "resident"),
        critical_lr=0.1,
        critical_momentum=0.9,
        critical_updates=100,
        noise_batches=32,
        sharp_minima=_QUICK_SHARP_MINIMA,
    ),
    "full": LectureScale(
        name="full",
        studies=(
            AccuracyStudy(dataset="mnist", model="mlp", hidden=None, batch_sizes=(1, 10, 100, 1000, 10000, "full"),
                          momenta=(0.0, 0.9), lr=0.005, epochs=10, update_budget=2000,
                          update_batch_sizes=(10, 100, 1000, 10000), update_momenta=(0.9,),
                          lr_grid=(0.001, 0.003, 0.01, 0.03, 0.1), patience=3, patience_updates=20000,
                          patience_batch_sizes=(100, 10000, "full")),
            AccuracyStudy(dataset="fashion-mnist", model="mlp", hidden=None,
                          batch_sizes=(10, 100, 1000, 10000, "full"), momenta=(0.0, 0.9), lr=0.005, epochs=10),
            AccuracyStudy(dataset="cifar10", model="cnn", hidden=None, batch_sizes=(10, 100, 1000, 10000, "full"),
                          momenta=(0.0, 0.9), lr=0.005, epochs=10),
        ),
        seeds=3,
        timing_batch_sizes=(1, 10, 100, 1000, 10000, 60000),
        timing_n_examples=60000,
        timing_budget_s=2.0,
        timing_paths=None,
        critical_lr=0.1,
        critical_momentum=0.9,
        critical_updates=300,
        noise_batches=64,
        optional_datasets=("mnist", "fashion-mnist", "cifar10"),
        # The paper's batch sizes on a full dataset (Fashion-MNIST, else MNIST; left out when neither is
        # here): SB = 256, LB = 10 % (6,000), 5 seeds, the small conv net, the lecture's momentum at one
        # η for both (0.03, the rate the small batch trained at before; not tuned at this size).
        sharp_minima=SharpMinimaStudy(
            datasets=("fashion-mnist", "mnist"), train_subset=None, model="cnn", hidden=None,
            small_batch=256, large_fraction=0.1, lr=0.03, momentum=0.9, target_train_acc=1.0, stop_patience=5,
            sb_epochs=200, lb_epochs=1000, seeds=5, sharpness_examples=10000, landscape_examples=10000,
            landscape_test_examples=None, epsilons=(1e-3, 5e-4), paper="C1", curvature_examples=10000,
            trace_samples=50, train_on_epochs=10, train_on_rounds=5,
            reasons=("the small conv net and the lecture's momentum instead of the paper's networks and Adam; both "
                     "regimes stop at 100 % training accuracy so they are compared at equal training accuracy",
                     "sharpness, the curvature measures and the line use 10,000 seeded training examples"),
        ),
    ),
}


def get_scale(name: str) -> LectureScale:
    return SCALES[check_scale(name, tuple(SCALES))]


def with_seeds(scale: LectureScale, seeds: int | None) -> LectureScale:
    """``scale`` with ``seeds`` seeds for every study, the flat-vs-sharp one included."""
    if seeds is None:
        return scale
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"number of seeds {seeds!r} is invalid; allowed: an integer ≥ 1")
    sharp = None if scale.sharp_minima is None else replace(scale.sharp_minima, seeds=seeds)
    return replace(scale, seeds=seeds, sharp_minima=sharp)


def available_studies(scale: LectureScale, data_dir: str | None) -> tuple[list[AccuracyStudy], list[str]]:
    """The scale's studies whose data are on this machine, and a note for each one left out.

    Datasets listed in ``optional_datasets`` are used only when present; any other missing
    dataset is an error (raised by the sweep's upfront validation). The first study left is the
    primary one: its network is timed and its full-batch run gives the critical point.
    """
    from batchlab.data import DATASETS, locate

    chosen, notes = [], []
    for study in scale.studies:
        if study.dataset in scale.optional_datasets and locate(DATASETS[study.dataset], data_dir) is None:
            notes.append(f"{study.dataset} is not on this machine (`batchlab data fetch {study.dataset}`); its "
                         "accuracy sweep was left out")
            continue
        chosen.append(study)
    return chosen, notes


def study_configs(study: AccuracyStudy, seeds: int, device: str, data_dir: str | None) -> list[RunConfig]:
    """Every run of one study's initial η grids: for each η, the equal-epochs runs, the equal-updates
    runs (if any), then the runs given enough updates (if any). The lecture's sweep extends a grid
    whose best η lies on an edge (:func:`cell_configs` for the added values)."""
    configs: list[RunConfig] = []
    for lr in sorted({lr for protocol in study.protocols() for lr in study.grid(protocol)}):
        for protocol in study.protocols():
            if lr in study.grid(protocol):
                for batch_size, momentum in study.cells(protocol):
                    configs += cell_configs(study, protocol, batch_size, momentum, lr, seeds, device, data_dir)
    return configs


def cell_configs(study: AccuracyStudy, protocol: str, batch_size: int | str, momentum: float, lr: float, seeds: int,
                 device: str, data_dir: str | None) -> list[RunConfig]:
    """The runs (one per seed) of one η at one batch size and λ under ``protocol``: equal epochs
    (``epochs``), equal updates (``max_updates`` = the update budget, with the epochs that reach it),
    or given enough updates (``stop_patience``, ``max_updates`` = the update cap, with the epochs
    that reach it, so the cap, not the epochs, binds)."""
    base = RunConfig(dataset=study.dataset, model=study.model, hidden=study.hidden, optimizer="momentum", lr=lr,
                     device=device, data_dir=data_dir, batch_size=batch_size, momentum=momentum, epochs=study.epochs)
    if protocol == EPOCH_BUDGET:
        extra: dict = {}
    elif protocol == UPDATE_BUDGET:
        extra = dict(max_updates=study.update_budget, epochs=_epochs_for(base, study.update_budget))
    elif protocol == PATIENCE_BUDGET:
        extra = dict(max_updates=study.patience_updates, stop_patience=study.patience,
                     epochs=_epochs_for(base, study.patience_updates))
    else:
        raise ValueError(f"unknown protocol {protocol!r}")
    return [base.replace(seed=seed, **extra) for seed in range(seeds)]


def _epochs_for(config: RunConfig, updates: int) -> int:
    """The epochs in which ``config``'s batch size makes ``updates`` updates (at least 1)."""
    n_train = _training_set_size(config)
    per_epoch = 1 if config.batch_size == "full" else -(-n_train // int(config.batch_size))
    return max(-(-updates // per_epoch), 1)


def _training_set_size(config: RunConfig) -> int:
    from batchlab.sweep.spec import training_set_size

    return training_set_size(config)


def critical_point_config(scale: LectureScale, study: AccuracyStudy, device: str, data_dir: str | None) -> RunConfig:
    """The full-batch run whose end is the (near-)critical point: gradient descent with the
    lecture's momentum on all training examples, one update per epoch. When the study gives the
    full batch enough updates at λ = ``critical_momentum`` with ``critical_lr`` in that protocol's
    grid, it is that
    protocol's seed-0 run (trained until the loss stops improving, at most the update cap), so the
    sweep's run is reused; else ``critical_updates`` full-batch updates."""
    if (study.patience and ("full", scale.critical_momentum) in study.cells(PATIENCE_BUDGET)
            and scale.critical_lr in study.grid(PATIENCE_BUDGET)):
        return cell_configs(study, PATIENCE_BUDGET, "full", scale.critical_momentum, scale.critical_lr, 1, device,
                            data_dir)[0]
    return RunConfig(dataset=study.dataset, model=study.model, hidden=study.hidden, optimizer="momentum",
                     batch_size="full", lr=scale.critical_lr, momentum=scale.critical_momentum,
                     epochs=scale.critical_updates, seed=0, device=device, data_dir=data_dir)
