"""Honest timing of training updates against batch size, on three data paths.

``timing_sweep(...) -> TimingTable`` measures the lecture's table (time per update and per epoch
for B = 1 … 60,000) for the plain-PyTorch ``DataLoader`` loop, batchlab's device-resident batches
and, on a GPU, a CUDA-graph replay of the whole step; ``measure_point`` measures one entry;
``plot_timing`` draws the lecture's two panels from a table. Both time a registry model on a
registry dataset or, with ``task=``, a user's :class:`batchlab.Task` (:class:`TimedTask`).
"""

from batchlab.timing.format import format_seconds, format_timing_table
from batchlab.timing.harness import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_N_EXAMPLES,
    measure_point,
    timing_sweep,
)
from batchlab.timing.lecture import LECTURE_V100_TIMES
from batchlab.timing.paths import CUDA_GRAPH, DATALOADER, PATHS, RESIDENT
from batchlab.timing.plot import plot_timing
from batchlab.timing.table import TimingPoint, TimingTable
from batchlab.timing.timed_task import TimedTask

__all__ = [
    "CUDA_GRAPH",
    "DATALOADER",
    "DEFAULT_BATCH_SIZES",
    "DEFAULT_N_EXAMPLES",
    "LECTURE_V100_TIMES",
    "PATHS",
    "RESIDENT",
    "TimedTask",
    "TimingPoint",
    "TimingTable",
    "format_seconds",
    "format_timing_table",
    "measure_point",
    "plot_timing",
    "timing_sweep",
]
