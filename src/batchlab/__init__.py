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
    advice = batchlab.advise(batchlab.RunConfig(dataset="mnist-5k", model="mlp"), scale="quick",
                             store="batchlab-runs/runs.db")
    print(advice.recommendation)

Implementation modules stay importable for advanced use, but this namespace is the stable surface.
Its names are imported on first use (PEP 562), so ``import batchlab`` — and ``batchlab --help`` —
does not load torch.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from batchlab.exports import lazy_exports

try:
    __version__ = version("batchlab")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

# Public name -> the module that defines it.
_EXPORTS = {
    "RunConfig": "batchlab.config",
    "advise": "batchlab.experiments.advise",
    "run_id": "batchlab.config",
    "ChecksumError": "batchlab.errors",
    "ConfigError": "batchlab.errors",
    "DataError": "batchlab.errors",
    "StoreError": "batchlab.errors",
    "UserError": "batchlab.errors",
    "Momentum": "batchlab.optim",
    "RunStore": "batchlab.store",
    "Results": "batchlab.sweep",
    "SweepSpec": "batchlab.sweep",
    "Task": "batchlab.task",
    "run_sweep": "batchlab.sweep",
    "RunResult": "batchlab.training",
    "evaluate": "batchlab.training",
    "train": "batchlab.training",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
