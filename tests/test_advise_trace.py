"""The advisor's trace trains with the run's objective: a user task's own loss, not cross-entropy."""

import pytest
import torch
from torch.nn import functional as F

from batchlab.config import RunConfig
from batchlab.data.identity import load_splits
from batchlab.experiments.advise.target import Target
from batchlab.experiments.advise.trace import train_to_target
from batchlab.training.objective import Objective, accuracy


def doubled_cross_entropy(outputs, targets):
    return 2.0 * F.cross_entropy(outputs, targets)


@pytest.mark.slow
def test_the_trace_differentiates_the_objectives_loss():
    # m ← λm − η∇(2ℓ) is m ← λm − (2η)∇ℓ: a doubled loss at η walks the path of cross-entropy at 2η.
    config = RunConfig(dataset="mnist-5k", model="mlp", hidden=(16,), batch_size=64, lr=0.02, momentum=0.9,
                       train_subset=256, device="cpu")
    splits = load_splits(config, torch.device("cpu"))
    target, device = Target("train_acc", 1.0), torch.device("cpu")
    doubled = Objective(doubled_cross_entropy, accuracy, "doubled_cross_entropy", "acc")
    with_doubled = train_to_target([config], splits, target, 12, ratio=2.0, device=device, objective=doubled)[0]
    at_twice_the_rate = train_to_target([config.replace(lr=0.04)], splits, target, 12, ratio=2.0, device=device)[0]
    at_the_rate = train_to_target([config], splits, target, 12, ratio=2.0, device=device)[0]
    assert [u for u, _ in with_doubled.trace] == [u for u, _ in at_twice_the_rate.trace]
    assert [v for _, v in with_doubled.trace] == pytest.approx([v for _, v in at_twice_the_rate.trace], abs=1e-9)
    assert [v for _, v in with_doubled.trace] != [v for _, v in at_the_rate.trace]
