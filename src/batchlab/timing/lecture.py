"""The lecture's timing figures (Tesla V100, MNIST, 60,000 training images), read off its slides.

Hung-yi Lee, "Batch and Momentum" (Machine Learning 2021, NTU), the "parallel computing" slides:
time of one update and of one epoch against the batch size. The values were read off the plots
in the slide deck's source and are good to about ±3 %. They serve as a dashed reference series in
:func:`batchlab.timing.plot_timing`; they were not measured by batchlab.
"""

from __future__ import annotations

LECTURE_DEVICE = "Tesla V100"
LECTURE_N_EXAMPLES = 60000
LECTURE_LABEL = "lecture, V100 (read off the slides)"

# batch size -> (time per update in s, time per epoch in s)
LECTURE_V100_TIMES: dict[int, tuple[float, float]] = {
    1: (6.1e-3, 364.0),
    10: (7.3e-3, 44.0),
    100: (24e-3, 14.5),
    1000: (0.16, 9.3),
    10000: (1.55, 9.2),
    60000: (9.5, 9.4),
}
