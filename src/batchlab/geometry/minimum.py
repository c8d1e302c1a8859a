"""Is the point being measured a minimum? The reasons ``batchlab hessian`` and ``batchlab
sharpness`` give for a one-line warning (never an error: a measurement away from a minimum is
still a valid number, only not the one Keskar et al.'s comparison of minima is about).

Three signs that a point is not a (trained) minimum:

* the second-order test of :func:`batchlab.geometry.critical.classify` says "not critical",
  "saddle point" or "local maximum" (gradient norm above ``grad_tol``, or curvature below
  −``eig_tol``);
* for sharpness, the slope alone explains the rise: the maximum of the first-order model over
  the box, Σ_j |(Aᵀ∇f(x))_j|·ε(|(A⁺x)_j| + 1), is at least :data:`SLOPE_SHARE` of
  max f − f(x). Then φ measures how steep f is at x, not how curved a minimum is;
* the training accuracy of the stored weights (the run's last logged epoch) lies more than
  :data:`ACCURACY_DROP` below the best training accuracy the run logged: training moved away
  from where it fitted best.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from batchlab.geometry.critical import LOCAL_MINIMUM

# Half the rise from the slope: beyond this the linear term, not the curvature, makes φ.
SLOPE_SHARE = 0.5
# Two percentage points: more than the epoch-to-epoch wobble of a converged SGD run.
ACCURACY_DROP = 0.02


def curvature_reason(classification: Mapping[str, Any]) -> str | None:
    """Why a :class:`~batchlab.geometry.critical.CriticalPointReport` (as a dict) is not a
    minimum, or None when it is one."""
    if classification["kind"] == LOCAL_MINIMUM:
        return None
    return f"the second-order test says {classification['kind']} ({classification['note']})"


def slope_reason(row: Mapping[str, Any]) -> str | None:
    """Why a sharpness row is dominated by the slope at x (module docstring), or None."""
    rise = row["max_loss"] - row["loss"]
    gain = row["first_order_gain"]
    if gain <= 0 or gain < SLOPE_SHARE * rise:
        return None
    space = "full space" if row["full_space"] else f"p={row['p']}"
    return (
        f"the slope explains {min(gain / rise, 1.0) if rise > 0 else 1.0:.0%} of the rise at ε={row['epsilon']:g} "
        f"({space}; gradient norm {row['gradient_norm']:.3g})"
    )


def accuracy_reason(metrics: Iterable[Mapping[str, float]]) -> str | None:
    """Why the final weights fit the training set worse than the run's best epoch, or None.

    ``metrics`` is :meth:`batchlab.store.RunStore.metrics`: one dict per logged epoch, sorted;
    epochs without a finite ``train_acc`` are skipped, and None is returned when none has one.
    """
    accuracies = [(row["epoch"], row["train_acc"]) for row in metrics
                  if isinstance(row.get("train_acc"), (int, float)) and math.isfinite(row["train_acc"])]
    if not accuracies:
        return None
    best_epoch, best = max(accuracies, key=lambda item: item[1])
    last_epoch, last = accuracies[-1]
    if best - last <= ACCURACY_DROP:
        return None
    return f"training accuracy {last:.3f} at the last epoch ({last_epoch}) vs {best:.3f} at epoch {best_epoch}"


def not_a_minimum_warning(reasons: Iterable[str | None]) -> str | None:
    """One line joining the reasons that are not None, or None when there are none."""
    found = [reason for reason in reasons if reason]
    if not found:
        return None
    return "warning: this point may not be a minimum: " + "; ".join(found)
