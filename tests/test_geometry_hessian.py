"""Hessian-vector products, eigenvalues and trace against the dense Hessian of small models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from batchlab.errors import ConfigError, DataError, UserError
from batchlab.geometry import (
    DENSE_LIMIT,
    ConvergenceError,
    FlatLoss,
    HessianOperator,
    choose_eigen_method,
    evaluation_mode,
    extreme_eigenpairs,
    extreme_eigenvalues,
    hessian_trace,
    hvp,
    lanczos_largest,
    power_iteration,
    select_examples,
    top_eigenpairs,
    top_eigenvalues,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def make_problem(seed: int = 0, n: int = 40, inputs: int = 6, hidden: int = 10, classes: int = 3):
    """A float64 tanh MLP with more than DENSE_LIMIT parameters (so Lanczos is used) and its data."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, classes)).double()
    generator = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(n, inputs, generator=generator, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=generator)
    return model, x, y


def dense_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The reference: torch.autograd.functional.hessian of the full-batch loss over the flat params."""
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        params = {n: c.view(s) for n, c, s in zip(names, flat.split(sizes), shapes)}
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    return torch.autograd.functional.hessian(loss, theta)


@pytest.fixture(scope="module")
def problem():
    model, x, y = make_problem()
    return model, x, y, dense_hessian(model, x, y)


def test_problem_is_large_enough_for_lanczos(problem):
    model, *_ = problem
    assert sum(p.numel() for p in model.parameters()) > DENSE_LIMIT


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 40, 1000])
def test_hvp_matches_dense_hessian_for_every_chunking(problem, chunk_size):
    model, x, y, hessian = problem
    v = torch.randn(hessian.shape[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    result = hvp(model, x, y, v, chunk_size=chunk_size)
    torch.testing.assert_close(result, hessian @ v, rtol=1e-10, atol=1e-12)


def test_cached_and_uncached_operators_agree(problem):
    model, x, y, hessian = problem
    loss = FlatLoss(model, x, y, chunk_size=9)
    cached = HessianOperator(loss, cache_graph=True)
    rebuilt = HessianOperator(loss, cache_graph=False)
    too_small = HessianOperator(loss, cache_graph="auto", cache_bytes=1)
    assert cached.graph_cached and not rebuilt.graph_cached and not too_small.graph_cached
    assert HessianOperator(loss, cache_graph="auto").graph_cached
    v = torch.randn(hessian.shape[0], generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for operator in (cached, rebuilt, too_small):
        torch.testing.assert_close(operator.matvec(v), hessian @ v, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(operator.matvec(2 * v), hessian @ (2 * v), rtol=1e-10, atol=1e-12)
    value_c, grad_c = cached.value_and_grad()
    value_r, grad_r = rebuilt.value_and_grad()
    assert value_c == pytest.approx(value_r, rel=1e-12)
    torch.testing.assert_close(grad_c, grad_r, rtol=1e-10, atol=1e-12)
    assert cached.calls == 2


def test_gradient_and_value_match_full_batch(problem):
    model, x, y, _ = problem
    loss = FlatLoss(model, x, y, chunk_size=6)
    value, gradient = loss.value_and_grad()
    model.zero_grad()
    full = F.cross_entropy(model(x), y)
    full.backward()
    expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    model.zero_grad()
    assert value == pytest.approx(float(full.detach()), rel=1e-12)
    torch.testing.assert_close(gradient, expected, rtol=1e-10, atol=1e-12)


def test_top_eigenvalues_match_eigvalsh(problem):
    model, x, y, hessian = problem
    exact = np.linalg.eigvalsh(hessian.numpy())[::-1]
    result = top_eigenvalues(model, x, y, k=3, tol=1e-10, chunk_size=11)
    assert result.method == "lanczos"
    np.testing.assert_allclose(result.values, exact[:3], rtol=1e-8)
    assert result.num_hvps > 0
    for i in range(3):
        vector = result.vectors[:, i]
        assert float(vector.norm()) == pytest.approx(1.0, abs=1e-12)
        torch.testing.assert_close(hessian @ vector, result.values[i] * vector, rtol=0, atol=1e-7)


def test_extreme_eigenvalues_match_eigvalsh(problem):
    model, x, y, hessian = problem
    exact = np.linalg.eigvalsh(hessian.numpy())
    assert exact[0] < 0 < exact[-1]  # a random point is indefinite: both ends are exercised
    result = extreme_eigenvalues(model, x, y, tol=1e-10)
    assert result.largest == pytest.approx(exact[-1], rel=1e-8)
    assert result.smallest == pytest.approx(exact[0], rel=1e-7)
    torch.testing.assert_close(hessian @ result.smallest_vector, result.smallest * result.smallest_vector, rtol=0, atol=1e-7)
    assert result.method == "lanczos"


def test_dense_path_for_small_models():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()  # 26 parameters
    x = torch.randn(20, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (20,))
    exact = np.linalg.eigvalsh(dense_hessian(model, x, y).numpy())
    top = top_eigenvalues(model, x, y, k=2)
    extremes = extreme_eigenvalues(model, x, y)
    assert top.method == extremes.method == "dense"
    np.testing.assert_allclose(top.values, exact[::-1][:2], rtol=1e-10)
    assert extremes.smallest == pytest.approx(exact[0], rel=1e-10)
    assert extremes.largest == pytest.approx(exact[-1], rel=1e-10)


def test_results_are_seeded_and_deterministic(problem):
    model, x, y, _ = problem
    first = top_eigenvalues(model, x, y, k=1, seed=5)
    again = top_eigenvalues(model, x, y, k=1, seed=5)
    assert first.values == again.values
    assert torch.equal(first.vectors, again.vectors)


def test_hutchinson_trace_within_a_few_standard_errors(problem):
    model, x, y, hessian = problem
    estimate = hessian_trace(model, x, y, n_samples=300, seed=0)
    true_trace = float(torch.trace(hessian))
    assert estimate.n_samples == 300
    assert estimate.stderr > 0
    assert abs(estimate.value - true_trace) < 4 * estimate.stderr
    # Rademacher probes of a diagonal-dominated matrix: the error is far below the spread of vᵀHv.
    assert estimate.stderr < abs(true_trace)


def test_float32_model_is_close_to_float64_reference():
    model, x, y = make_problem(seed=4)
    hessian = dense_hessian(model, x, y)
    model32 = model.float()
    result = top_eigenvalues(model32, x.float(), y, k=1, tol=1e-6)
    exact = np.linalg.eigvalsh(hessian.numpy())[-1]
    assert result.values[0] == pytest.approx(exact, rel=1e-4)
    assert result.vectors.dtype == torch.float32


class TinyBatchNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Dropout(0.5), nn.Linear(6, 3))

    def forward(self, x):
        return self.layers(x)


def test_modes_are_restored_and_running_statistics_untouched():
    torch.manual_seed(0)
    model = TinyBatchNormNet().double()
    with torch.no_grad():
        model.layers[1].running_mean.uniform_(-1, 1)
        model.layers[1].running_var.uniform_(0.5, 2)
    x = torch.randn(30, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (30,))
    v = torch.randn(sum(p.numel() for p in model.parameters()), dtype=torch.float64)
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    for start_in_train in (True, False):
        model.train(start_in_train)
        flags = [m.training for m in model.modules()]
        eval_product = hvp(model, x, y, v, chunk_size=7)
        train_product = hvp(model, x, y, v, chunk_size=None, mode="train")
        assert [m.training for m in model.modules()] == flags
        assert model.layers[1].track_running_stats
        for name, buffer in model.named_buffers():
            assert torch.equal(buffer, buffers[name]), name
    # Eval mode uses running statistics (chunking exact), train mode batch statistics: different Hessians.
    model.eval()
    assert not torch.allclose(eval_product, train_product)
    torch.testing.assert_close(eval_product, hvp(model, x, y, v, chunk_size=None), rtol=1e-10, atol=1e-12)
    # Dropout stays off in both modes: the products are deterministic.
    torch.testing.assert_close(train_product, hvp(model, x, y, v, chunk_size=None, mode="train"), rtol=0, atol=0)


def test_evaluation_mode_restores_after_an_exception():
    model = TinyBatchNormNet()
    model.train()
    with pytest.raises(RuntimeError):
        with evaluation_mode(model, "eval"):
            assert not model.training
            raise RuntimeError("boom")
    assert all(m.training for m in model.modules())


def test_bad_input_is_a_user_error(problem):
    model, x, y, _ = problem
    with pytest.raises(ConfigError, match="evaluation mode"):
        hvp(model, x, y, torch.zeros(3, dtype=torch.float64), mode="test")
    with pytest.raises(ConfigError, match="flat vector"):
        hvp(model, x, y, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(DataError, match="examples"):
        top_eigenvalues(model, x, y[:-1])
    with pytest.raises(ConfigError, match="k="):
        top_eigenvalues(model, x, y, k=0)
    with pytest.raises(ConfigError, match="tolerance"):
        top_eigenvalues(model, x, y, tol=0)
    with pytest.raises(ConfigError, match="chunk size"):
        top_eigenvalues(model, x, y, chunk_size=0)
    with pytest.raises(ConfigError, match="trace samples"):
        hessian_trace(model, x, y, n_samples=1)


def test_lanczos_that_cannot_converge_says_so(problem):
    model, x, y, _ = problem
    with pytest.raises(ConvergenceError, match="max_iter") as raised:
        top_eigenvalues(model, x, y, k=5, tol=1e-14, max_iter=1)
    assert isinstance(raised.value, UserError)


def test_known_largest_eigenpair_is_reused_for_the_smallest(problem):
    model, x, y, hessian = problem
    operator = HessianOperator(FlatLoss(model, x, y))
    top = top_eigenpairs(operator, 2, tol=1e-10)
    reused = extreme_eigenpairs(operator, tol=1e-10, top=top)
    fresh = extreme_eigenpairs(operator, tol=1e-10)
    assert reused.largest == top.values[0]
    assert reused.smallest == pytest.approx(fresh.smallest, rel=1e-8)
    assert reused.num_hvps < fresh.num_hvps


def test_select_examples_is_a_seeded_sorted_subset():
    x = torch.arange(50.0).reshape(50, 1)
    y = torch.arange(50)
    sub_x, sub_y = select_examples(x, y, 10, seed=3)
    assert torch.equal(sub_x[:, 0].long(), sub_y)
    assert len(sub_y) == 10 and torch.equal(sub_y, sub_y.sort().values)
    assert torch.equal(sub_y, select_examples(x, y, 10, seed=3)[1])
    assert not torch.equal(sub_y, select_examples(x, y, 10, seed=4)[1])
    assert select_examples(x, y, None, seed=0)[1] is y
    for bad in (0, 51, True):
        with pytest.raises(ConfigError, match="examples"):
            select_examples(x, y, bad, seed=0)


class DiagonalOperator:
    """Stands in for a HessianOperator: H = diag(values), float64, counting its products."""

    def __init__(self, values) -> None:
        self.values = torch.as_tensor(values, dtype=torch.float64)
        self.dim = len(self.values)
        self.point = torch.zeros(self.dim, dtype=torch.float64)
        self.calls = 0

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.values * vector


def spectrum(*leading: float, dim: int = 100) -> list[float]:
    """``leading`` followed by small eigenvalues in (0, 0.5], so dim > DENSE_LIMIT."""
    return list(leading) + list(np.linspace(0.01, 0.5, dim - len(leading)))


def test_power_iteration_matches_the_dense_hessian(problem):
    model, x, y, hessian = problem
    exact = np.linalg.eigvalsh(hessian.numpy())
    assert exact[-1] > abs(exact[0])  # the largest eigenvalue is also the largest in magnitude
    for tol, within in ((1e-3, 2e-3), (1e-6, 1e-5)):
        result = top_eigenvalues(model, x, y, k=1, tol=tol, method="power")
        assert result.method == "power"
        assert result.values[0] == pytest.approx(exact[-1], rel=within)
        vector = result.vectors[:, 0]
        cosine = abs(float(vector @ torch.linalg.eigh(hessian).eigenvectors[:, -1]))
        assert cosine > 0.99



def test_lanczos_bounds_the_error_where_power_iteration_does_not():
    # Top eigenvalues 1 and 0.95 over a bulk in (0, 0.5]: the Rayleigh quotient of power iteration
    # changes slowly, so PyHessian's rule stops it at an error 5x its tolerance (5.2e-4 after 10
    # products); Lanczos stops only when its residual bounds the error by tol, with no more products.
    tol = 1e-4
    power = top_eigenpairs(DiagonalOperator(spectrum(1.0, 0.95, dim=400)), 1, tol=tol, method="power")
    lanczos = top_eigenpairs(DiagonalOperator(spectrum(1.0, 0.95, dim=400)), 1, tol=tol, method="auto")
    assert lanczos.method == "lanczos" and power.method == "power"
    assert abs(lanczos.values[0] - 1.0) <= lanczos.residuals[0] <= tol
    assert abs(power.values[0] - 1.0) > tol  # the change-between-iterations rule: no bound
    assert lanczos.num_hvps <= power.num_hvps


def test_lanczos_residuals_are_the_true_residuals(problem):
    model, x, y, hessian = problem
    result = top_eigenvalues(model, x, y, k=3, tol=1e-4)
    assert len(result.residuals) == 3
    for value, residual, vector in zip(result.values, result.residuals, result.vectors.T):
        true = float((hessian @ vector - value * vector).norm())
        assert true == pytest.approx(residual, rel=1e-3, abs=1e-9)
        assert residual <= 1e-4 * abs(value)
    exact = np.linalg.eigvalsh(hessian.numpy())[::-1][:3]
    assert np.all(np.abs(np.array(result.values) - exact) <= np.array(result.residuals) + 1e-12)


def test_lanczos_checks_after_every_product():
    # diag(10, 1, …): the gap is wide, so one or two products settle it; ARPACK's first check
    # came only after its ~20-vector basis was full.
    operator = DiagonalOperator(spectrum(10.0, dim=200))
    result = top_eigenpairs(operator, 1, tol=1e-3)
    assert result.values[0] == pytest.approx(10.0, rel=1e-3)
    assert result.num_hvps == operator.calls < 10


def test_lanczos_on_an_exact_invariant_subspace_stops():
    # A start vector in a 2-dimensional invariant subspace: β vanishes after 2 steps, exact values.
    values = torch.tensor([3.0, 2.0] + [1.0] * 98, dtype=torch.float64)
    start = torch.zeros(100, dtype=torch.float64)
    start[:2] = 1.0
    result = lanczos_largest(lambda v: values * v, start, 2, tol=1e-14, max_steps=50)
    assert result.steps == 2
    np.testing.assert_allclose(result.values, [3.0, 2.0], rtol=1e-14)


def test_auto_is_lanczos_and_power_only_for_one_eigenvalue():
    assert choose_eigen_method(1, 1e-3) == "lanczos"
    assert choose_eigen_method(1, 1e-1) == "lanczos"
    assert choose_eigen_method(3, 1e-2) == "lanczos"
    assert choose_eigen_method(1, 1e-2, "lanczos") == "lanczos"
    assert choose_eigen_method(1, 1e-10, "power") == "power"
    with pytest.raises(ConfigError, match="one eigenvalue"):
        choose_eigen_method(2, 1e-3, "power")
    with pytest.raises(ConfigError, match="allowed: auto, power, lanczos"):
        choose_eigen_method(1, 1e-3, "arnoldi")


def test_power_iteration_hands_over_to_lanczos_when_a_negative_eigenvalue_dominates():
    operator = DiagonalOperator(spectrum(-10.0, 5.0))
    value, _, _ = power_iteration(operator, tol=1e-3, max_products=100)
    assert value is None
    result = top_eigenpairs(operator, 1, tol=1e-3, method="power")
    assert result.method == "power+lanczos"
    assert result.values[0] == pytest.approx(5.0, rel=1e-6)


def test_the_residual_guard_keeps_equal_magnitudes_of_opposite_sign_from_stopping_early():
    # λ and −λ: the Rayleigh quotient of every iterate is the same, so the relative-change rule
    # alone would stop after two products with a value between them.
    operator = DiagonalOperator(spectrum(3.0, -3.0))
    value, _, _ = power_iteration(operator, tol=1e-3, max_products=50)
    assert value is None and operator.calls == 50
    result = top_eigenpairs(DiagonalOperator(spectrum(3.0, -3.0)), 1, tol=1e-3, method="power")
    assert result.values[0] == pytest.approx(3.0, rel=1e-6)


def test_the_eigensolver_leaves_blas_threads_as_it_found_them(problem):
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_threads()
    model, x, y, _ = problem
    top_eigenvalues(model, x, y, k=2, tol=1e-6)
    assert blas_threads() == before
