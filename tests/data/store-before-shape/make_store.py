"""Makes runs.db (and runs-weights/) here: a tiny ``batchlab gap`` and ``batchlab advise`` run.

The store in this folder was made by this script with the code of commit 91cdb67, before the
experiments shared one record envelope; test_experiment_shape.py checks that today's code opens
it, renders its records and reuses them without training or measuring again. Run from this
folder: ``PYTHONPATH=<src of that commit> python make_store.py``. A change that rightly stops
reusing a stored measurement (a new sharpness search rule, say) makes it again at that change.
"""

import tempfile

import torch

from batchlab.cli import main
from batchlab.experiments.gap import experiment
from batchlab.experiments.gap.experiment import NetworkPlan

# The settings test_experiment_shape.py runs again.
TINY_F1 = NetworkPlan("f1", "F1", "mlp", "mnist-5k", (8,), sb=50, lb_fraction=0.2, sb_epochs=1, lb_epochs=1,
                      stop_patience=3, sharpness_examples=50, landscape_examples=50, landscape_test_examples=50,
                      train_subset=1000)
GAP = ["gap", "--networks", "f1", "--seeds", "1", "--device", "cpu"]
ADVISE = ["advise", "--hidden", "8", "--train-subset", "256", "--device", "cpu", "--seeds", "1", "--lr-points", "1",
          "--min-updates", "8", "--budget-epochs", "1", "--batch-size", "32", "128", "--target", "val_acc=0.3"]

if __name__ == "__main__":
    torch.set_num_threads(1)
    experiment._quick_networks = lambda: {"f1": TINY_F1}
    with tempfile.TemporaryDirectory() as out:
        assert main([*GAP, "--store", "runs.db", "--out", out]) == 0
        assert main([*ADVISE, "--store", "runs.db", "--out", out]) == 0
