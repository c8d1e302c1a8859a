"""The accuracy sweep's η search: a batch size whose best η lies on an edge gets more η beyond it,
until the best is interior, the next η fails, or the cap of added values is reached."""

from dataclasses import dataclass

from batchlab.experiments import lecture
from batchlab.experiments.lecture.search import search_learning_rates


@dataclass
class FakeRun:
    config: object
    status: str
    summary: dict


def study(**changes):
    fields = dict(dataset="mnist-5k", model="mlp", hidden=(8,), batch_sizes=(8,), momenta=(0.9,), lr=0.01,
                  epochs=1, lr_grid=(0.01, 0.03, 0.1), lr_extension_cap=3)
    return lecture.AccuracyStudy(**(fields | changes))


def trainer(score, trained):
    """A fake sweep: validation accuracy ``score(lr)`` (None: the run diverges); records each config."""
    def train(configs):
        trained.extend(configs)
        return [FakeRun(c, "diverged" if score(c.lr) is None else "finished",
                        {} if score(c.lr) is None else {"val_acc": score(c.lr)}) for c in configs]
    return train


def test_a_best_on_the_high_edge_is_extended_until_it_is_interior():
    trained = []
    (cell,) = search_learning_rates([study()], 2, "cpu", None, trainer(lambda lr: -abs(lr - 0.333), trained))
    assert cell.tried == (0.01, 0.03, 0.1, 0.333, 1.11) and cell.best == 0.333 and cell.kind == "interior"
    assert len(trained) == 2 * 5  # two seeds per η, each η trained once


def test_the_cap_and_divergence_bound_an_extension():
    capped, trained = search_learning_rates([study(lr_extension_cap=2)], 1, "cpu", None,
                                            trainer(lambda lr: lr, [])), []
    (cell,) = capped
    assert cell.tried == (0.01, 0.03, 0.1, 0.333, 1.11) and cell.best == 1.11
    assert cell.reason == "cap of 2 added values reached on the high side"
    (cell,) = search_learning_rates([study()], 1, "cpu", None, trainer(lambda lr: None if lr > 0.5 else lr, trained))
    assert cell.best == 0.333 and cell.reason == "bounded by divergence at η = 1.11"
    assert cell.kind == "bounded by divergence"


def test_one_failed_seed_makes_an_eta_a_bound():
    def train(configs):
        return [FakeRun(c, "failed to train" if c.lr == 0.1 and c.seed == 1 else "finished", {"val_acc": c.lr})
                for c in configs]

    (cell,) = search_learning_rates([study()], 2, "cpu", None, train)
    assert cell.best == 0.03 and cell.reason == "bounded by divergence at η = 0.1"


def test_each_protocol_and_batch_size_has_its_own_search_and_enough_updates_caps_updates():
    both = study(batch_sizes=(8, "full"), patience=2, patience_updates=40, patience_batch_sizes=("full",),
                 patience_lr_grid=(0.1, 0.3), lr_extension_cap=1)
    trained = []
    cells = search_learning_rates([both], 1, "cpu", None, trainer(lambda lr: lr, trained))
    assert {(c.protocol, c.batch_size) for c in cells} == {("epochs", 8), ("epochs", "full"), ("patience", "full")}
    patience = next(c for c in cells if c.protocol == "patience")
    assert patience.grid == (0.1, 0.3) and patience.tried == (0.1, 0.3, 0.9)
    runs = [c for c in trained if c.stop_patience]
    # An update cap, not an epoch cap: the full batch makes one update per epoch, so 40 epochs.
    assert {(c.batch_size, c.max_updates, c.epochs, c.stop_patience) for c in runs} == {("full", 40, 40, 2)}


def test_the_quick_scales_critical_point_is_its_full_batch_run_given_enough_updates():
    scale = lecture.SCALES["quick"]
    (primary,) = scale.studies
    config = lecture.critical_point_config(scale, primary, "cpu", None)
    assert (config.batch_size, config.lr, config.stop_patience, config.max_updates) == ("full", 0.1, 2, 100)
    assert config in lecture.study_configs(primary, scale.seeds, "cpu", None)
