"""Toy error surfaces: analytic derivatives, critical points and their classification."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchlab.errors import ConfigError
from batchlab.toy.surfaces import (
    MAXIMUM,
    MINIMUM,
    SADDLE,
    SURFACES,
    BallSurface,
    TwoMinimaSurface,
    classify,
    get_surface,
    surface_names,
)

ALL = list(SURFACES)


def _random_points(surface, count, seed):
    rng = np.random.default_rng(seed)
    low = np.array([r[0] for r in surface.domain])
    high = np.array([r[1] for r in surface.domain])
    return low + (high - low) * rng.random((count, surface.dim))


def _finite_difference_gradient(surface, theta, h=1e-6):
    grad = np.zeros(surface.dim)
    for i in range(surface.dim):
        step = np.zeros(surface.dim)
        step[i] = h
        grad[i] = (surface.loss(theta + step) - surface.loss(theta - step)) / (2 * h)
    return grad


def _finite_difference_hessian(surface, theta, h=1e-5):
    columns = []
    for i in range(surface.dim):
        step = np.zeros(surface.dim)
        step[i] = h
        columns.append((surface.grad(theta + step) - surface.grad(theta - step)) / (2 * h))
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("name", ALL)
def test_gradient_matches_finite_differences(name):
    surface = get_surface(name)
    for theta in _random_points(surface, 25, seed=1):
        analytic = surface.grad(theta)
        numeric = _finite_difference_gradient(surface, theta)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-6 * (1 + np.abs(analytic).max()))


@pytest.mark.parametrize("name", ALL)
def test_hessian_matches_finite_differences_and_is_symmetric(name):
    surface = get_surface(name)
    for theta in _random_points(surface, 25, seed=2):
        analytic = surface.hessian(theta)
        np.testing.assert_array_equal(analytic, analytic.T)
        numeric = _finite_difference_hessian(surface, theta)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-5 * (1 + np.abs(analytic).max()))


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(ALL), fractions=st.lists(st.floats(0, 1), min_size=2, max_size=2))
def test_gradient_matches_finite_differences_anywhere_in_the_domain(name, fractions):
    surface = get_surface(name)
    theta = np.array([lo + f * (hi - lo) for (lo, hi), f in zip(surface.domain, fractions)])
    analytic = surface.grad(theta)
    np.testing.assert_allclose(
        analytic, _finite_difference_gradient(surface, theta), rtol=1e-5, atol=1e-5 * (1 + np.abs(analytic).max())
    )


@pytest.mark.parametrize("name", ALL)
def test_vectorized_values_agree_with_pointwise_loss(name):
    surface = get_surface(name)
    points = _random_points(surface, 40, seed=3)
    np.testing.assert_allclose(surface.values(points.T), [surface.loss(p) for p in points], rtol=1e-13)


@pytest.mark.parametrize("name", ALL)
def test_critical_points_have_zero_gradient_and_match_their_hessian(name):
    surface = get_surface(name)
    assert surface.critical_points
    for point in surface.critical_points:
        assert np.linalg.norm(surface.grad(point.position)) < 1e-9, point
        assert point.loss == pytest.approx(surface.loss(point.position))
        eigenvalues = np.linalg.eigvalsh(surface.hessian(point.position))
        if point.kind == MINIMUM:
            assert np.all(eigenvalues > 0), point  # positive-definite
        elif point.kind == SADDLE:
            assert eigenvalues.min() < 0 < eigenvalues.max(), point
        else:
            assert point.kind == MAXIMUM and np.all(eigenvalues < 0), point


@pytest.mark.parametrize(
    "name, kinds",
    [
        ("ball", {"shallow minimum": MINIMUM, "hilltop": MAXIMUM, "global minimum": MINIMUM}),
        ("saddle", {"saddle": SADDLE, "minimum y>0": MINIMUM, "minimum y<0": MINIMUM}),
        ("valley", {"minimum": MINIMUM}),
        ("two-minima", {"shallow minimum": MINIMUM, "saddle": SADDLE, "deep minimum": MINIMUM}),
    ],
)
def test_each_surface_has_the_critical_points_it_promises(name, kinds):
    surface = get_surface(name)
    assert {c.name: c.kind for c in surface.critical_points} == kinds


def test_ball_critical_points_are_all_the_sign_changes_of_its_derivative():
    # An independent count: every zero of f' on a fine grid well beyond the plotted domain.
    surface = BallSurface()
    xs = np.linspace(-12, 12, 20001)
    derivative = np.array([surface.grad(np.array([x]))[0] for x in xs])
    changes = np.count_nonzero(np.sign(derivative[:-1]) != np.sign(derivative[1:]))
    assert changes == len(surface.critical_points) == 3


@pytest.mark.parametrize("name, shallow, deep", [("ball", "shallow minimum", "global minimum"),
                                                 ("two-minima", "shallow minimum", "deep minimum")])
def test_the_shallow_minimum_is_nearer_the_start_and_the_other_deeper(name, shallow, deep):
    surface = get_surface(name)
    near, far = surface.critical_point(shallow), surface.critical_point(deep)
    start = np.array(surface.start)
    assert np.linalg.norm(near.position - start) < np.linalg.norm(far.position - start)
    assert far.loss < near.loss
    assert surface.global_minimum == far
    # and the start lies above the barrier between them, so a ball that keeps its speed can cross
    barrier = max(c.loss for c in surface.critical_points if c.kind != MINIMUM)
    assert surface.loss(start) > barrier


def test_saddle_surface_closed_form():
    surface = get_surface("saddle")
    saddle = surface.critical_point("saddle")
    assert saddle.point == (0.0, 0.0)
    np.testing.assert_allclose(saddle.hessian_eigenvalues, [-2.0, 2.0])
    for name in ("minimum y>0", "minimum y<0"):
        assert surface.critical_point(name).loss == pytest.approx(-0.5)
    # the x-axis is the stable manifold: no gradient component off it
    assert surface.grad(np.array([1.3, 0.0]))[1] == 0.0


def test_valley_condition_number():
    surface = get_surface("valley")
    eigenvalues = np.linalg.eigvalsh(surface.hessian(np.zeros(2)))
    assert eigenvalues.max() / eigenvalues.min() == pytest.approx(100.0)


def test_two_minima_needs_a_small_enough_tilt():
    with pytest.raises(ConfigError, match="tilt"):
        TwoMinimaSurface(tilt=2.0).critical_points


def test_classify():
    assert classify(np.array([1.0, 2.0])) == MINIMUM
    assert classify(np.array([-1.0, -2.0])) == MAXIMUM
    assert classify(np.array([-1.0, 2.0])) == SADDLE
    with pytest.raises(ValueError):
        classify(np.array([0.0, 1.0]))


def test_unknown_surface_names_the_known_ones():
    with pytest.raises(ConfigError) as error:
        get_surface("bowl")
    message = str(error.value)
    assert "bowl" in message and all(name in message for name in surface_names())
    assert "\n" not in message


def test_describe_is_json_ready():
    import json

    for name in ALL:
        json.dumps(get_surface(name).describe(), allow_nan=False)
