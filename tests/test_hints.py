"""Hints before training (an effective step η/(1 − λ) far above what has trained) and after a
divergence (the next η to try), from the store's runs or the rule of thumb."""

from types import SimpleNamespace

import pytest

from batchlab.cli import main
from batchlab.config import RunConfig
from batchlab.commands._hints import (
    RULE_CAP,
    effective_step,
    hint_after_divergence,
    hints_after,
    rule_of_thumb,
    warning_before,
    warning_for_runs,
)
from batchlab.store import RunStore
from conftest import config as stored_config


def config(**changes):
    """A stored config at B = 16, checked by RunConfig."""
    return RunConfig(**stored_config(batch_size=16) | changes).to_dict()


def stored(status, **changes):
    return SimpleNamespace(status=status, config=config(**changes))


def test_effective_step_and_rule_of_thumb():
    assert effective_step(0.1, 0.9) == pytest.approx(1.0)
    assert rule_of_thumb(16) == 0.25 and rule_of_thumb(64) == 1.0 and rule_of_thumb(4096) == RULE_CAP
    assert rule_of_thumb("full") == RULE_CAP


def test_without_history_the_rule_of_thumb_decides():
    line = warning_before(config(momentum=0.9), [])
    assert line.startswith("η/(1 − λ) = 1 (η = 0.1, λ = 0.9) is above 0.25, the rule of thumb η/(1 − λ) ≤ B/64")
    assert line.endswith("consider --lr 0.025")
    assert warning_before(config(momentum=0.9, batch_size=64), []) is None  # 1.0000000000000002 is 1
    assert warning_before(config(batch_size=2), []) is not None
    assert warning_before(config(optimizer="adam", momentum=0.9), []) is None  # η/(1 − λ) means nothing there


def test_the_store_decides_when_it_has_runs_of_that_model_and_batch_size():
    history = [stored("finished", lr=0.2), stored("finished", lr=0.05)]
    assert warning_before(config(momentum=0.9), history).startswith(
        "η/(1 − λ) = 1 (η = 0.1, λ = 0.9) is over 2× the largest that trained mlp on mnist-5k at B = 16 in the store (0.2)")
    assert warning_before(config(lr=0.35), history) is None  # under 2× what trained: no rule of thumb
    # runs of another batch size, model or widths say nothing about this one
    assert warning_before(config(lr=0.35), [stored("finished", lr=0.2, batch_size=64)]) is not None
    assert warning_before(config(lr=0.35), [stored("finished", lr=1.0, hidden=(64,))]) is not None


def test_a_step_at_or_above_one_that_diverged_is_flagged():
    history = [stored("diverged", lr=0.5), stored("finished", lr=0.1)]
    line = warning_before(config(lr=0.5), history)
    assert "is at or above 0.5, where a run of mlp on mnist-5k at B = 16 diverged" in line
    assert "the largest that trained is 0.1" in line and line.endswith("try --lr 0.224")  # √(0.1·0.5)
    assert warning_before(config(lr=0.3), [stored("diverged", lr=0.5)]) is None


def test_after_a_divergence_the_next_lr_is_bisected_or_a_decade_down():
    assert hint_after_divergence(config(momentum=0.9), []).endswith("try --lr 0.01 (a tenth of this step)")
    line = hint_after_divergence(config(lr=0.4), [stored("finished", lr=0.1), stored("finished", lr=0.6, batch_size=64)])
    assert line.endswith("try --lr 0.2 (between the largest step that trained at B = 16 (0.1) and this one)")


def test_several_runs_give_one_line_before_and_one_per_batch_size_after():
    configs = [config(momentum=m, batch_size=b) for m in (0.0, 0.9) for b in (16, 64)]
    assert warning_for_runs(configs, []).startswith("1 of 4 run(s) may take too large a step; e.g. B = 16:")
    results = [SimpleNamespace(status="diverged", config=RunConfig(**{**c, "hidden": None}))
               for c in (config(momentum=0.9), config(momentum=0.5), config(momentum=0.9, batch_size=64))]
    lines = hints_after(results, [])
    assert [line.split(":")[0] for line in lines] == ["B = 16", "B = 64"]
    assert lines[0].endswith("try --lr 0.01 (a tenth of this step)")  # from the smallest step, λ = 0.5


@pytest.mark.slow
def test_train_warns_before_and_hints_after_a_divergence(tmp_path, capsys):
    store = tmp_path / "runs.db"
    argv = ["train", "--hidden", "8", "--batch-size", "500", "--epochs", "1", "--device", "cpu",
            "--store", str(store), "--no-progress"]
    assert main([*argv, "--lr", "1e8", "--momentum", "0.9"]) == 0  # the loss overflows to NaN
    err = capsys.readouterr().err
    hints = [line for line in err.splitlines() if line.startswith("batchlab: hint: ")]
    assert len(hints) == 2
    assert "η/(1 − λ) = 1e+09 (η = 1e+08, λ = 0.9) is above 4, the rule of thumb" in hints[0]
    assert hints[1].startswith("batchlab: hint: B = 500: the run diverged at η/(1 − λ) = 1e+09")
    assert hints[1].endswith("try --lr 1e+07 (a tenth of this step)")
    with RunStore(store, create=False) as opened:
        assert [r.status for r in opened.runs()] == ["diverged"]
    assert main([*argv, "--lr", "0.05"]) == 0  # below the step that diverged, nothing trained: quiet
    assert "hint" not in capsys.readouterr().err


def test_hints_read_an_empty_store_file_another_process_is_creating_as_no_runs(tmp_path):
    from batchlab.commands._hints import stored_runs

    empty = tmp_path / "r.db"
    empty.touch()  # what a concurrent first process leaves for an instant before writing the schema
    assert stored_runs(empty) == []
    (tmp_path / "notes.txt").write_text("not a store\n")
    assert stored_runs(tmp_path / "notes.txt") == []  # the training itself reports a bad store


USER_MODEL = """
from torch import nn

def make_model():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
"""

USER_DATA = """
import torch

def load_data(shift=0.0):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=generator) + shift
    y = (x[:, 0] > shift).long() + (x[:, 1] > shift).long()
    return x[:48], y[:48], x[48:], y[48:]
"""


def test_a_user_model_gets_the_rule_of_thumb_then_its_own_history(tmp_path, capsys):
    (tmp_path / "net.py").write_text(USER_MODEL)
    (tmp_path / "points.py").write_text(USER_DATA)
    store = tmp_path / "runs.db"

    def train(lr):
        assert main(["train", "--model-file", f"{tmp_path}/net.py:make_model", "--data-file",
                     f"{tmp_path}/points.py:load_data", "--batch-size", "16", "--epochs", "1", "--lr", lr,
                     "--device", "cpu", "--store", str(store), "--no-progress"]) == 0
        return [line for line in capsys.readouterr().err.splitlines() if line.startswith("batchlab: hint: ")]

    (before,) = train("1e6")  # no history: the rule of thumb
    assert ("η/(1 − λ) = 1e+06 (η = 1e+06, λ = 0) is above 0.25, the rule of thumb η/(1 − λ) ≤ B/64 (at most 4) "
            "for B = 16, and the store has no run of user:net.make_model on user:points.load_data at B = 16") in before
    # That run trained (this small network survives the step). Edited data under the same names
    # has a history of its own: the rule of thumb first, then the runs on that data.
    (tmp_path / "points.py").write_text(USER_DATA.replace("shift=0.0", "shift=0.5"))
    assert train("0.05") == []
    (over,) = train("0.2")
    assert over.endswith("is over 2× the largest that trained user:net.make_model on user:points.load_data at "
                         "B = 16 in the store (0.05); consider --lr 0.05")
    # A divergence gets the next η from the runs of the same model and data (0.2, not 1e6).
    _, after = train("1e30")
    assert after.startswith("batchlab: hint: B = 16: the run diverged at η/(1 − λ) = 1e+30")
    assert after.endswith("(between the largest step that trained at B = 16 (0.2) and this one)")
