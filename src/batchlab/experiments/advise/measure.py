"""Measurements beside the steps to a target: the simple noise scale along a training run, the
time of one update per batch size, and (on a GPU) the largest batch that fits in memory.

* :func:`noise_over_training`: McCandlish et al. 2018's simple noise scale
  B_simple = tr(Σ)/|G|² at the start (the initial weights), the middle (S/2) and the end (S) of
  one run, measured by :func:`batchlab.analysis.noise.measure_noise` (|G|² from the full training
  gradient, tr Σ from per-example gradients on a seeded subset; the two-batch estimate beside it);
* :func:`time_updates`: the timing harness's median time per update of batchlab's single-run
  trainer step (data resident on the device) at each B;
* :func:`largest_fitting_batch`: PyTorch Lightning's ``Tuner.scale_batch_size`` in its
  ``power`` mode — start at B = 1 and double until a training step (forward, backward, optimizer
  step on a batch of the data's shape) runs out of device memory; the last B that ran is the
  answer. CUDA only: elsewhere memory is the host's and the search is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from batchlab.experiments.advise.target import Target
from batchlab.experiments.advise.trace import train_to_target
from batchlab.analysis.noise import measure_noise
from batchlab.config import RunConfig
from batchlab.models.registry import build_model

# Lightning's default max_trials: at most 25 doublings (B up to 2^25).
MAX_DOUBLINGS = 25


def noise_over_training(config: RunConfig, splits: Any, target: Target, steps: int, *, device: torch.device,
                        ratio: float, small_batch: int, large_batch: int, n_batches: int,
                        trace_examples: int) -> list[dict[str, Any]]:
    """B_simple at updates 0, S/2 and S of ``config``'s run (which reached the target in S steps)."""
    points = sorted({0, steps // 2, steps})
    outcome = train_to_target([config], splits, target, max(steps, 1), ratio=ratio, device=device,
                              snapshot_at=points, stop_at_target=False)[0]
    rows = []
    for label, update in zip(("start", "middle", "end") if len(points) == 3 else ("start", "end"), points):
        state = outcome.snapshots.get(update)
        if state is None:
            continue
        model = build_model(config.model, splits.input_shape, splits.num_classes, config.hidden).to(device)
        model.load_state_dict(state)
        report = measure_noise(model, splits.train.x, splits.train.y, [small_batch, large_batch],
                               n_batches=n_batches, seed=config.seed, scan_batches=0, trace_examples=trace_examples)
        scale = report.scale
        rows.append({
            "when": label,
            "update": update,
            "b_simple": None if scale is None else scale.exact_b_simple,
            "two_batch_b_simple": None if scale is None else scale.two_batch_b_simple,
            "grad_sq": None if scale is None else scale.exact_grad_sq,
            "trace": None if scale is None else scale.exact_trace,
            "train_loss": report.full_loss,
        })
    return rows


def time_updates(template: RunConfig, batch_sizes: Sequence[int], momenta: dict[int, float], n_train: int, *,
                 device: torch.device, budget_s: float) -> dict[int, dict[str, Any]]:
    """Median seconds per update (and quartiles) of batchlab's resident trainer step at each B."""
    from batchlab.timing.harness import measure_point
    from batchlab.timing.paths import RESIDENT
    from batchlab.timing.workload import make_timing_data

    data = make_timing_data(template.dataset, n_train, template.data_dir)
    timed = {}
    for size in batch_sizes:
        point = measure_point(RESIDENT, template.model, size, n_train, device, budget_s=budget_s,
                              data=data, optimizer=template.optimizer, momentum=momenta.get(size, 0.0),
                              hidden=template.hidden)
        timed[size] = {"per_update_s": point.per_update_median_s, "q25_s": point.per_update_q25_s,
                       "q75_s": point.per_update_q75_s, "repeats": point.repeats,
                       "synthetic_data": point.synthetic_data}
    data.release(device)
    return timed


def largest_fitting_batch(template: RunConfig, input_shape: tuple[int, ...], num_classes: int,
                          device: torch.device) -> dict[str, Any] | None:
    """The doubling search (module docstring); None on a device that is not CUDA."""
    if device.type != "cuda":
        return None
    from torch.nn import functional as F

    from batchlab.optim import build_optimizer

    torch.manual_seed(template.seed)
    model = build_model(template.model, input_shape, num_classes, template.hidden).to(device)
    optimizer = build_optimizer(template.optimizer, model.parameters(), lr=1e-3, momentum=0.9)
    fits, failed = None, None
    size = 1
    for _ in range(MAX_DOUBLINGS + 1):
        try:
            x = torch.randn((size, *input_shape), device=device)
            y = torch.randint(0, num_classes, (size,), device=device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            torch.cuda.synchronize(device)
            fits = size
        except torch.cuda.OutOfMemoryError:
            failed = size
        finally:
            x = y = loss = None
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
        if failed is not None:
            break
        size *= 2
    return {"largest_batch": fits, "first_out_of_memory": failed, "max_doublings": MAX_DOUBLINGS,
            "device_name": torch.cuda.get_device_name(device)}
