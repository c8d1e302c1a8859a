"""Analyses of measured runs for the lecture report.

* :mod:`batchlab.analysis.accuracy` — accuracy against batch size (mean ± std over seeds) from a store;
* :mod:`batchlab.analysis.noise` — mini-batch vs full-batch losses and gradients at a point, the
  gradient noise E‖g_B − G‖² and McCandlish et al.'s simple noise scale;
* :mod:`batchlab.analysis.stats` — paired and Welch t intervals of a difference, a seeded
  bootstrap, and the seeds a difference needs (power 0.8);
* :mod:`batchlab.analysis.grid` — the grid planner that extends η and λ grids beyond an edge;
* :mod:`batchlab.analysis.verdicts` — the verdict of a comparison under its protocol;
* :mod:`batchlab.analysis.summary` — the lecture's small-vs-large table with a verdict per row.
"""

from batchlab.analysis.accuracy import AccuracyCurve, AccuracyPanel, AccuracyPoint, accuracy_vs_batch_size
from batchlab.analysis.grid import GridState
from batchlab.analysis.noise import BatchSizeNoise, DirectionScan, NoiseReport, NoiseScale, measure_noise
from batchlab.analysis.stats import Interval, compare, paired_interval, seeds_needed, welch_interval
from batchlab.analysis.summary import SummaryRow, SummaryTable, judge, summary_table
from batchlab.analysis.verdicts import Outcome, Side, seed_outcome, verdict

__all__ = [
    "AccuracyCurve",
    "AccuracyPanel",
    "AccuracyPoint",
    "BatchSizeNoise",
    "DirectionScan",
    "GridState",
    "Interval",
    "NoiseReport",
    "NoiseScale",
    "Outcome",
    "Side",
    "SummaryRow",
    "SummaryTable",
    "accuracy_vs_batch_size",
    "compare",
    "judge",
    "measure_noise",
    "paired_interval",
    "seed_outcome",
    "seeds_needed",
    "summary_table",
    "verdict",
    "welch_interval",
]
