"""Training: one run (:func:`train`), its result, and the honest per-update timer."""

from batchlab.training.loop import evaluate, train
from batchlab.training.result import DIVERGED, FINISHED, RunResult

__all__ = ["DIVERGED", "FINISHED", "RunResult", "evaluate", "train"]
