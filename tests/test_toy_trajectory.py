"""run_trajectory implements exactly the lecture's rule: m ← λm − ηg, θ ← θ + m, m_0 = 0."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchlab.errors import ConfigError
from batchlab.toy.surfaces import SURFACES, get_surface
from batchlab.toy.trajectory import DIVERGED, escape_step, run_trajectory


def _plain_gradient_descent(surface, start, lr, steps):
    theta = np.array(start, dtype=np.float64)
    path = [theta.copy()]
    for _ in range(steps):
        theta = theta - lr * surface.grad(theta)
        path.append(theta.copy())
    return np.array(path)


@pytest.mark.parametrize("name", list(SURFACES))
def test_lambda_zero_is_plain_gradient_descent_bit_for_bit(name):
    surface = get_surface(name)
    trajectory = run_trajectory(surface, momentum=0.0, steps=150, stop_tol=0.0)
    assert trajectory.steps == 150
    expected = _plain_gradient_descent(surface, surface.start, surface.lr, 150)
    np.testing.assert_array_equal(trajectory.points, expected)


@pytest.mark.parametrize("name", list(SURFACES))
def test_the_lecture_rule_step_by_step(name):
    # An independent transcription of the lecture's two lines, run side by side.
    surface = get_surface(name)
    lam, eta = 0.9, surface.lr
    trajectory = run_trajectory(surface, momentum=lam, steps=200, stop_tol=0.0)
    theta, m = np.array(surface.start, dtype=np.float64), np.zeros(surface.dim)
    for t in range(1, 201):
        m = lam * m - eta * surface.grad(theta)
        theta = theta + m
        np.testing.assert_array_equal(trajectory.points[t], theta)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(list(SURFACES)),
    lam=st.floats(0.0, 0.99),
    noise=st.sampled_from([0.0, 0.01]),
    seed=st.integers(0, 2**16),
)
def test_momentum_is_the_decayed_sum_of_all_past_gradients(name, lam, noise, seed):
    # Unrolled: m_t = −η Σ_{k<t} λ^{t−1−k} g_k, with g_k the gradient (noise included) at θ_k.
    surface = get_surface(name)
    trajectory = run_trajectory(surface, momentum=lam, steps=60, noise_std=noise, seed=seed, stop_tol=0.0)
    eta = trajectory.lr
    steps_taken = np.diff(trajectory.points, axis=0)
    g = trajectory.gradients
    for t in range(1, trajectory.steps + 1):
        weights = lam ** np.arange(t - 1, -1, -1)
        unrolled = -eta * (weights[:, None] * g[:t]).sum(axis=0)
        np.testing.assert_allclose(steps_taken[t - 1], unrolled, rtol=1e-9, atol=1e-12)
    if noise == 0:
        for k in range(trajectory.steps):
            np.testing.assert_array_equal(g[k], surface.grad(trajectory.points[k]))


@pytest.mark.slow
def test_matches_the_projects_torch_momentum_optimizer():
    torch = pytest.importorskip("torch")
    optim = pytest.importorskip("batchlab.optim")
    surface = get_surface("two-minima")
    trajectory = run_trajectory(surface, momentum=0.9, steps=100, stop_tol=0.0)
    theta = torch.nn.Parameter(torch.tensor(surface.start, dtype=torch.float64))
    optimizer = optim.Momentum([theta], lr=surface.lr, momentum=0.9)
    for t in range(1, 101):
        theta.grad = torch.from_numpy(surface.grad(theta.detach().numpy()))
        optimizer.step()
        np.testing.assert_allclose(theta.detach().numpy(), trajectory.points[t], rtol=1e-12, atol=1e-12)


def test_stops_at_rest_and_reports_where():
    surface = get_surface("valley")
    trajectory = run_trajectory(surface, momentum=0.5, stop_tol=1e-6)
    assert trajectory.converged and not trajectory.diverged
    assert trajectory.steps < 5000
    assert np.linalg.norm(surface.grad(trajectory.final_point)) < 1e-6
    assert np.linalg.norm(trajectory.points[-1] - trajectory.points[-2]) < 1e-6
    assert trajectory.ended_at == "minimum"
    assert trajectory.final_loss == pytest.approx(surface.loss(trajectory.final_point))
    # one step earlier it was not yet at rest, or it would have stopped there
    before = trajectory.points[-2]
    assert np.linalg.norm(surface.grad(before)) >= 1e-6 or np.linalg.norm(before - trajectory.points[-3]) >= 1e-6


def test_runs_out_of_steps_without_coming_to_rest():
    trajectory = run_trajectory(get_surface("valley"), momentum=0.99, steps=50)
    assert trajectory.steps == 50 and not trajectory.converged and not trajectory.diverged


def test_starting_on_a_critical_point_takes_no_step():
    surface = get_surface("saddle")
    trajectory = run_trajectory(surface, start=(0.0, 0.0), momentum=0.9)
    assert trajectory.steps == 0 and trajectory.converged and trajectory.ended_at == "saddle"


def test_divergence_is_a_result_not_an_exception():
    # η·h_max = 0.05 · 100 = 5 > 2(1 + λ): unstable for GD and for λ = 0.9.
    for lam in (0.0, 0.9):
        trajectory = run_trajectory(get_surface("valley"), lr=0.05, momentum=lam)
        assert trajectory.diverged and not trajectory.converged
        assert trajectory.ended_at == DIVERGED
        assert trajectory.steps < 5000


def test_noise_is_seeded():
    surface = get_surface("saddle")
    a = run_trajectory(surface, momentum=0.5, steps=100, noise_std=1e-3, seed=7)
    b = run_trajectory(surface, momentum=0.5, steps=100, noise_std=1e-3, seed=7)
    c = run_trajectory(surface, momentum=0.5, steps=100, noise_std=1e-3, seed=8)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points, c.points)


def test_escape_step_counts_only_distance_along_the_unstable_direction():
    surface = get_surface("saddle")
    saddle = surface.critical_point("saddle")
    on_manifold = run_trajectory(surface, momentum=0.9)
    assert escape_step(on_manifold, surface, saddle, 0.5) is None  # starts 1.5 away, but along x
    offset = run_trajectory(surface, start=(1.5, 1e-6), momentum=0.0)
    t = escape_step(offset, surface, saddle, 0.5)
    assert t is not None
    assert abs(offset.points[t, 1]) > 0.5 >= abs(offset.points[t - 1, 1])


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"lr": -0.1}, "learning rate"),
        ({"lr": 0.0}, "learning rate"),
        ({"lr": float("nan")}, "learning rate"),
        ({"momentum": 1.0}, "momentum"),
        ({"momentum": -0.1}, "momentum"),
        ({"steps": 0}, "steps"),
        ({"noise_std": -1.0}, "noise"),
    ],
)
def test_bad_settings_are_one_line_config_errors(kwargs, word):
    with pytest.raises(ConfigError, match=word) as error:
        run_trajectory(get_surface("ball"), **kwargs)
    assert "\n" not in str(error.value)


def test_label_names_the_method():
    surface = get_surface("ball")
    assert run_trajectory(surface, steps=1).label == "GD"
    assert run_trajectory(surface, momentum=0.9, steps=1, noise_std=0.1).label == "momentum λ=0.9, noise σ=0.1"
