"""batchlab: a lab for batch size and momentum in neural-network training.

The Python API in one place::

    import batchlab
    result = batchlab.train(batchlab.RunConfig(batch_size=64, momentum=0.9, epochs=3))
    print(result.summary["test_acc"])

    spec = batchlab.SweepSpec(grid={"batch_size": [16, 256], "momentum": [0.0, 0.9]}, fixed={"epochs": 3})
    results = batchlab.run_sweep(spec, "batchlab-runs/runs.db")
    frame = results.to_pandas()

    advice = batchlab.advise(batchlab.RunConfig(dataset="mnist-5k", model="mlp"), scale="quick",
                             store="batchlab-runs/runs.db")
    print(advice.recommendation)

Implementation modules stay importable for advanced use, but this namespace is the stable surface.
"""

from batchlab.advise import advise
from batchlab.config import RunConfig, run_id
from batchlab.errors import ChecksumError, ConfigError, DataError, StoreError, UserError
from batchlab.optim import Momentum
from batchlab.store import RunStore
from batchlab.sweep import Results, SweepSpec, run_sweep
from batchlab.train import RunResult, evaluate, train

__all__ = [
    "advise",
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
    "UserError",
    "evaluate",
    "run_id",
    "run_sweep",
    "train",
]
