"""batchlab: a lab for batch size and momentum in neural-network training.

The Python API in one place::

    import batchlab
    result = batchlab.train(batchlab.RunConfig(batch_size=64, momentum=0.9, epochs=3))
    print(result.summary["test_acc"])

    spec = batchlab.SweepSpec(grid={"batch_size": [16, 256], "momentum": [0.0, 0.9]}, fixed={"epochs": 3})
    results = batchlab.run_sweep(spec, "batchlab-runs/runs.db")
    frame = results.to_pandas()

    # your own model and data (tensors or Datasets), stored and resumed like any run
    task = batchlab.Task(make_model, (x_train, y_train, x_val, y_val), name="my-net")
    result = batchlab.train(batchlab.RunConfig(batch_size=32, epochs=5), task=task, store="runs.db")

Implementation modules stay importable for advanced use, but this namespace is the stable surface.
"""

from batchlab.config import RunConfig, run_id
from batchlab.errors import ChecksumError, ConfigError, DataError, StoreError, UserError
from batchlab.optim import Momentum
from batchlab.store import RunStore
from batchlab.sweep import Results, SweepSpec, run_sweep
from batchlab.task import Task
from batchlab.train import RunResult, evaluate, train

__all__ = [
    "ChecksumError",
    "ConfigError",
    "DataError",
    "Momentum",
    "RunConfig",
    "RunResult",
    "RunStore",
    "Results",
    "SweepSpec",
    "StoreError",
    "Task",
    "UserError",
    "evaluate",
    "run_id",
    "run_sweep",
    "train",
]
