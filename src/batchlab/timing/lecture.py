"""The lecture's timing figures (Tesla V100, MNIST, 60,000 training images), read off its slides.

Hung-yi Lee, "Batch and Momentum" (Machine Learning 2021, NTU), the "parallel computing" slides:
time of one update and of one epoch against the batch size. The values were read off the plots
in the slide deck's source and are good to about ±3 %. They serve as a dashed reference series in
:func:`batchlab.timing.plot_timing`; they were not measured by batchlab.
"""

from __future__ import annotations

LECTURE_N_EXAMPLES = 60000
# The lecture does not say which network its slide timed; it is not the one timed here.
LECTURE_LABEL = "lecture: its own network on a Tesla V100 (read off the slides)"

# batch size -> (time per update in s, time per epoch in s)
LECTURE_V100_TIMES: dict[int, tuple[float, float]] = {
    1: (6.1e-3, 364.0),
    10: (7.3e-3, 44.0),
    100: (24e-3, 14.5),
    1000: (0.16, 9.3),
    10000: (1.55, 9.2),
    60000: (9.5, 9.4),
}


def lecture_epoch_times(n_examples: int | None = None) -> dict[int, float]:
    """The lecture's V100 time per epoch for an epoch of ``n_examples`` examples.

    At the lecture's N = 60,000 (or ``None``) these are the slides' values. For another N the
    slides' time per update (which does not depend on N) is multiplied by the ⌈N / B⌉ updates of an
    epoch of N examples, for every B ≤ N, so the lecture's curve is comparable with an epoch timed here.
    """
    if n_examples is None or n_examples == LECTURE_N_EXAMPLES:
        return {b: epoch for b, (_, epoch) in LECTURE_V100_TIMES.items()}
    return {b: update * -(-n_examples // b) for b, (update, _) in LECTURE_V100_TIMES.items() if b <= n_examples}


def lecture_epoch_label(n_examples: int | None = None) -> str:
    """The reference series' label: the N its epochs are for, and whether they were scaled to it."""
    return f"{LECTURE_LABEL}, {lecture_epoch_basis(n_examples)}"


def lecture_epoch_basis(n_examples: int | None = None) -> str:
    """What the lecture's epoch times are: the slides' own (N = 60,000) or scaled to ``n_examples``."""
    if n_examples is None or n_examples == LECTURE_N_EXAMPLES:
        return f"the lecture's N = {LECTURE_N_EXAMPLES:,}"
    return f"update times × ⌈N/B⌉ for N = {n_examples:,}"
