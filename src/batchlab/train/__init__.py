"""Training: one run (:func:`train`), its result, and the honest per-update timer."""

from batchlab.train.loop import evaluate, train
from batchlab.train.result import DIVERGED, FINISHED, RunResult

__all__ = ["DIVERGED", "FINISHED", "RunResult", "evaluate", "train"]
