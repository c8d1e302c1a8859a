"""How many intra-op threads PyTorch uses for a training update on the CPU.

The rule (:func:`threads_for`): on the CPU, an update whose batch has fewer than
``ONE_THREAD_BELOW_BATCH`` examples runs with **one** intra-op thread; larger batches, and every
update on a GPU, keep the process's thread count (``torch.get_num_threads()`` when this module was
first imported: PyTorch's default, one per core, or what ``OMP_NUM_THREADS`` asked for).

Why: a small update is dozens of tiny operations (a 784×512 matrix-vector product at B = 1), each
split over the threads and joined again. With two threads every operation waits for the slower
one, so one core taken by another process stalls them all; one thread does the same arithmetic
without the joins. Measured with ``benchmarks/threads.py`` (the lecture's MLP 784-512-512-10 and
momentum, resident batches, median of interleaved bursts) on a 2-core AMD EPYC VM, torch 2.13:

* under a 1-minute load average of 3.5–6 from other processes (two runs), two threads took 5–19×
  as long as one at B = 1, 4, 16, 7–15× at B = 64, 256 and 2.4–3.5× at B = 1,024;
* on the quiet machine (load average 1.3, nothing else running), two threads were faster at every
  B: 0.95× of one thread's time at B = 1, 0.82× at B = 16, 0.73× at B = 32, 0.63× at B = 64 and
  0.53× at B = 1,024.

So the rule is a trade: on a quiet machine it costs small batches 5–27 % (B = 1 … 32), on a shared
one it saves them a five- to twentyfold stall. Both directions grow with B, which is why the cut
sits where a quiet machine's loss grows past a quarter; the count is recorded with every run and
timing point, and ``batchlab timing --threads N`` times any fixed count.

:func:`intra_op_threads` sets the count for a block and restores it; :func:`apply_thread_rule`
is that block for one training loop at one batch size, and returns the count used so it can be
recorded with the run (``describe_environment(device, update_threads=...)``). A pack of K runs
trained in one stacked step counts as K·B examples per update. ``torch.utils.benchmark``
fixes the thread count of a measurement the same way (``Timer(num_threads=...)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from batchlab.errors import ConfigError

# Below this batch size a CPU update runs on one intra-op thread (see the module docstring).
ONE_THREAD_BELOW_BATCH = 64
# The process's intra-op thread count before batchlab changed anything.
PROCESS_THREADS = torch.get_num_threads()


def threads_for(batch_size: int, device: torch.device | str) -> int:
    """Intra-op threads for an update of ``batch_size`` examples on ``device`` (K·B for a packed
    step of K runs).

    CPU and ``batch_size < ONE_THREAD_BELOW_BATCH``: 1. Otherwise the process's count
    (:data:`PROCESS_THREADS`), never more than it: the rule only ever lowers the count.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size {batch_size!r} is invalid; allowed: an integer ≥ 1")
    if torch.device(device).type == "cpu" and batch_size < ONE_THREAD_BELOW_BATCH:
        return 1
    return PROCESS_THREADS


def check_thread_count(count: int) -> int:
    """``count`` when it is a valid intra-op thread count, else one-line :class:`ConfigError`."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"thread count {count!r} is invalid; allowed: an integer ≥ 1")
    return count


@contextmanager
def intra_op_threads(count: int) -> Iterator[int]:
    """Run the block with ``torch.set_num_threads(count)``; restore the previous count after."""
    check_thread_count(count)
    before = torch.get_num_threads()
    if count != before:
        torch.set_num_threads(count)
    try:
        yield count
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextmanager
def apply_thread_rule(batch_size: int, device: torch.device | str) -> Iterator[int]:
    """The block runs with :func:`threads_for` ``(batch_size, device)`` threads; yields that count."""
    with intra_op_threads(threads_for(batch_size, device)) as count:
        yield count
