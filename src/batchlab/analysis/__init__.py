"""Analyses of measured runs for the lecture report.

* :mod:`batchlab.analysis.accuracy` — accuracy against batch size (mean ± std over seeds) from a store;
* :mod:`batchlab.analysis.noise` — mini-batch vs full-batch losses and gradients at a point, the
  gradient noise E‖g_B − G‖² and McCandlish et al.'s simple noise scale;
* :mod:`batchlab.analysis.summary` — the lecture's small-vs-large table with a verdict per row.
"""

from batchlab.analysis.accuracy import AccuracyCurve, AccuracyPanel, AccuracyPoint, accuracy_vs_batch_size
from batchlab.analysis.noise import BatchSizeNoise, DirectionScan, NoiseReport, NoiseScale, measure_noise
from batchlab.analysis.summary import SummaryRow, SummaryTable, judge, summary_table

__all__ = [
    "AccuracyCurve",
    "AccuracyPanel",
    "AccuracyPoint",
    "BatchSizeNoise",
    "DirectionScan",
    "NoiseReport",
    "NoiseScale",
    "SummaryRow",
    "SummaryTable",
    "accuracy_vs_batch_size",
    "judge",
    "measure_noise",
    "summary_table",
]
