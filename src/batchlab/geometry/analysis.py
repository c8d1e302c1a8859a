"""Whole analyses of one point, as JSON-ready dictionaries: what ``batchlab hessian`` and
``batchlab sharpness`` compute, print and store, usable from Python on any model and data.
Each takes ``loss=``, the batch-mean loss the model trained with (default cross-entropy).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from batchlab.errors import ConfigError
from batchlab.geometry.adaptive import DEFAULT_ETA, DEFAULT_RHO, adaptive_sharpness
from batchlab.geometry.critical import classify_at
from batchlab.geometry.functional import DEFAULT_CHUNK_SIZE, FlatLoss, LossFunction
from batchlab.geometry.hessian import HessianOperator, top_eigenpairs, trace_estimate
from batchlab.geometry.sharpness import check_sharpness_options, keskar_sharpness


def select_examples(
    x: torch.Tensor, y: torch.Tensor, examples: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """All of ``(x, y)`` when ``examples`` is None, else a random subset of that size.

    The subset is the first ``examples`` entries of ``torch.randperm(N)`` drawn with
    ``torch.Generator().manual_seed(seed)``, kept in ascending index order.
    """
    n = len(x)
    if examples is None:
        return x, y
    if isinstance(examples, bool) or not isinstance(examples, int) or not 1 <= examples <= n:
        raise ConfigError(f"examples {examples!r} is invalid; allowed: 1 … {n} (the training examples of this run)")
    if examples == n:
        return x, y
    chosen = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:examples].sort().values
    chosen = chosen.to(x.device)
    return x[chosen], y[chosen]


def hessian_summary(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    k: int = 1,
    tol: float = 1e-3,
    max_iter: int = 100,
    seed: int = 0,
    trace_samples: int | None = None,
    grad_tol: float = 1e-3,
    eig_tol: float | None = None,
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
    mode: str = "eval",
    loss: LossFunction | None = None,
) -> dict[str, Any]:
    """Loss, gradient norm, top-k eigenvalues, λ_min, critical-point kind and (optionally) the trace.

    One :class:`HessianOperator` serves every part, so its cached graph is built once and λ_max
    from the top-k run is reused for λ_min.
    """
    started = time.perf_counter()
    operator = HessianOperator(FlatLoss(model, x, y, chunk_size=chunk_size, mode=mode, loss=loss))
    top = top_eigenpairs(operator, k, tol=tol, max_iter=max_iter, seed=seed)
    report = classify_at(operator, grad_tol=grad_tol, eig_tol=eig_tol, tol=tol, max_iter=max_iter, seed=seed, top=top)
    summary: dict[str, Any] = {
        "parameters": operator.dim,
        "examples": len(x),
        "mode": mode,
        "dtype": str(operator.point.dtype).removeprefix("torch."),
        "loss": report.loss,
        "gradient_norm": report.gradient_norm,
        "top_eigenvalues": list(top.values),
        "smallest_eigenvalue": report.smallest_eigenvalue,
        "eigen_method": top.method,
        # ‖Hv − λv‖ of each top pair: a bound on that eigenvalue's error (geometry/lanczos.py)
        "top_residuals": list(top.residuals),
        "tol": tol,
        "classification": report.to_dict(),
        **trace_fields(operator, trace_samples, seed),
    }
    summary["hessian_vector_products"] = operator.calls
    summary["graph_cached"] = operator.graph_cached
    summary["seconds"] = time.perf_counter() - started
    return summary


def sharpness_table(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilons: list[float],
    subspace_dim: int | None = 100,
    iterations: int = 10,
    seed: int = 0,
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
    mode: str = "eval",
    loss: LossFunction | None = None,
    corner_start: bool = False,
) -> list[dict[str, Any]]:
    """Keskar's φ for every ε in the full space, and in a random ``subspace_dim``-dimensional one
    unless it is None: the layout of their Tables 3 and 4 (``corner_start`` adds the non-paper
    corner run's fields). Every option is checked before any work."""
    if not epsilons:
        raise ConfigError("no epsilon given; allowed: one or more numbers > 0, e.g. 1e-3 5e-4")
    n = FlatLoss(model, x, y, chunk_size=chunk_size, mode=mode, loss=loss).dim
    for epsilon in epsilons:
        check_sharpness_options(n, epsilon, subspace_dim, iterations)
    rows = []
    for space in [None] if subspace_dim is None else [None, subspace_dim]:
        for epsilon in epsilons:
            started = time.perf_counter()
            result = keskar_sharpness(
                model, x, y, epsilon=epsilon, subspace_dim=space, iterations=iterations, seed=seed,
                chunk_size=chunk_size, mode=mode, corner_start=corner_start, loss=loss,
            )
            rows.append({**result.to_dict(), "examples": len(x), "mode": mode, "seconds": time.perf_counter() - started})
    return rows


def curvature_measures(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    tol: float = 1e-3,
    max_iter: int = 100,
    trace_samples: int | None = 100,
    rho: float = DEFAULT_RHO,
    eta: float = DEFAULT_ETA,
    iterations: int = 10,
    seed: int = 0,
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
    mode: str = "eval",
    loss: LossFunction | None = None,
) -> dict[str, Any]:
    """The measures set beside Keskar's φ at one point, as flat JSON-ready fields: λ_max (Lanczos,
    with its residual bound ‖Hv − λv‖), the Hessian trace by Hutchinson's estimator with its
    standard error (skipped when ``trace_samples`` is None), and the adaptive sharpness S_ρ of
    :mod:`batchlab.geometry.adaptive`."""
    started = time.perf_counter()
    operator = HessianOperator(FlatLoss(model, x, y, chunk_size=chunk_size, mode=mode, loss=loss))
    top = top_eigenpairs(operator, 1, tol=tol, max_iter=max_iter, seed=seed)
    measures: dict[str, Any] = {
        "lambda_max": top.values[0],
        "lambda_max_residual": top.residuals[0],
        "lambda_max_tol": tol,
        **trace_fields(operator, trace_samples, seed),
    }
    measures["hessian_vector_products"] = operator.calls
    del operator  # its cached graph, before the adaptive search evaluates f again
    adaptive = adaptive_sharpness(model, x, y, rho=rho, eta=eta, iterations=iterations, chunk_size=chunk_size, mode=mode,
                                  loss=loss)
    measures.update(
        adaptive_sharpness=adaptive.value,
        adaptive_max_loss=adaptive.max_loss,
        adaptive_rho=adaptive.rho,
        adaptive_eta=adaptive.eta,
        adaptive_definition=adaptive.definition,
        curvature_seconds=time.perf_counter() - started,
    )
    return measures


def trace_fields(operator: HessianOperator, samples: int | None, seed: int) -> dict[str, Any]:
    """``trace``, ``trace_stderr`` and ``trace_samples`` of Hutchinson's estimate (all None when
    ``samples`` is None)."""
    if samples is None:
        return {"trace": None, "trace_stderr": None, "trace_samples": None}
    trace = trace_estimate(operator, n_samples=samples, seed=seed)
    return {"trace": trace.value, "trace_stderr": trace.stderr, "trace_samples": trace.n_samples}
