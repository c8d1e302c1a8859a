"""Per-example losses on the toy surfaces, the shared PRNG, and mini-batch trajectories."""

import numpy as np
import pytest

from batchlab.errors import ConfigError
from batchlab.toy.examples import ExampleSet, examples_for
from batchlab.toy.prng import Mulberry32, check_seed
from batchlab.toy.surfaces import SURFACES, get_surface
from batchlab.toy.trajectory import run_trajectory

# The first five outputs of the JavaScript original (mulberry32 with Math.imul), per seed.
REFERENCE = {
    0: [1144304738, 1416247, 958946056, 627933444, 2007157716],
    1: [2693262067, 11749833, 2265367787, 4213581821, 4159151403],
    42: [2581720956, 1925393290, 3661312704, 2876485805, 750819978],
    2**32 - 1: [3850105811, 813802916, 3073704848, 4054706436, 3630262831],
}


@pytest.mark.parametrize("seed", list(REFERENCE))
def test_mulberry32_matches_the_javascript_original(seed):
    generator = Mulberry32(seed)
    assert [generator.next_uint32() for _ in range(5)] == REFERENCE[seed]


def test_permutations_are_permutations_and_reproducible():
    first = Mulberry32(7).permutation(12)
    assert sorted(first) == list(range(12))
    assert first == Mulberry32(7).permutation(12)
    assert first != Mulberry32(8).permutation(12)
    assert Mulberry32(np.int64(7)).permutation(12) == first


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True, "3", None])
def test_bad_seeds_are_config_errors(seed):
    with pytest.raises(ConfigError, match="seed"):
        check_seed(seed)


@pytest.mark.parametrize("name", list(SURFACES))
def test_examples_average_to_the_surface(name):
    surface = get_surface(name)
    examples = examples_for(surface)
    assert examples.size == 12
    assert np.all(examples.tilts.sum(axis=0) == 0)
    grid = np.stack(np.meshgrid(*[np.linspace(lo, hi, 7) for lo, hi in surface.domain], indexing="ij"))
    everyone = list(range(examples.size))
    np.testing.assert_array_equal(examples.batch_values(grid, everyone), surface.values(grid))
    theta = np.array(surface.start, dtype=np.float64) + 0.1
    np.testing.assert_array_equal(examples.batch_gradient(theta, everyone), surface.grad(theta))


@pytest.mark.parametrize("name", list(SURFACES))
def test_a_batch_gradient_is_the_gradient_of_the_batch_surface(name):
    surface = get_surface(name)
    examples = examples_for(surface)
    batch = [1, 4, 9]
    theta = np.array(surface.start, dtype=np.float64) * 0.7 + 0.05
    h = 1e-6
    numeric = []
    for d in range(surface.dim):
        step = np.zeros(surface.dim)
        step[d] = h
        plus = examples.batch_values((theta + step).reshape(surface.dim, 1), batch)[0]
        minus = examples.batch_values((theta - step).reshape(surface.dim, 1), batch)[0]
        numeric.append((plus - minus) / (2 * h))
    np.testing.assert_allclose(examples.batch_gradient(theta, batch), numeric, rtol=1e-6, atol=1e-6)
    # Batch surfaces differ from L: the noise of mini-batches is real.
    assert np.any(examples.batch_tilt(batch) != 0)


def test_epochs_use_every_example_once_and_skip_the_remainder():
    examples = examples_for(get_surface("saddle"))
    stream = examples.batches(4, seed=3)
    for _ in range(3):  # three epochs of 12 // 4 batches
        epoch = [next(stream) for _ in range(3)]
        assert sorted(i for batch in epoch for i in batch) == list(range(12))
    stream = examples.batches(5, seed=3)
    epoch = [next(stream) for _ in range(2)]  # 12 // 5 = 2 batches, two examples skipped
    used = [i for batch in epoch for i in batch]
    assert len(set(used)) == 10
    assert [next(stream) for _ in range(2)] != epoch


@pytest.mark.parametrize("batch_size", [0, 13, 2.5, True])
def test_bad_batch_sizes_fail_before_any_step(batch_size):
    with pytest.raises(ConfigError, match="batch size"):
        run_trajectory(get_surface("ball"), batch_size=batch_size)


def test_tilts_must_average_to_zero():
    with pytest.raises(ConfigError, match="sum to exactly zero"):
        ExampleSet(get_surface("ball"), np.array([[1.0], [0.5]]))


@pytest.mark.parametrize("name", list(SURFACES))
def test_full_batch_is_gradient_descent_bit_for_bit(name):
    surface = get_surface(name)
    plain = run_trajectory(surface, momentum=0.6, steps=300)
    full = run_trajectory(surface, momentum=0.6, steps=300, batch_size=12, seed=5)
    np.testing.assert_array_equal(full.points, plain.points)
    assert full.batches.shape == (full.steps, 12)


def test_mini_batch_rule_step_by_step():
    # m ← λm − η(∇L(θ) + mean of the batch's tilts), θ ← θ + m, batches from the same seeded stream.
    surface = get_surface("two-minima")
    examples = examples_for(surface)
    run = run_trajectory(surface, momentum=0.8, steps=120, batch_size=3, seed=11, stop_tol=0.0)
    stream = examples.batches(3, 11)
    theta, m = np.array(surface.start, dtype=np.float64), np.zeros(2)
    for t in range(1, 121):
        batch = next(stream)
        np.testing.assert_array_equal(run.batches[t - 1], batch)
        m = 0.8 * m - surface.lr * examples.batch_gradient(theta, batch)
        theta = theta + m
        np.testing.assert_array_equal(run.points[t], theta)
    assert run.label == "momentum λ=0.8, batch B=3"


def test_same_seed_same_run_other_seed_other_run():
    surface = get_surface("ball")
    a = run_trajectory(surface, momentum=0.5, steps=200, batch_size=2, seed=1)
    b = run_trajectory(surface, momentum=0.5, steps=200, batch_size=2, seed=1)
    c = run_trajectory(surface, momentum=0.5, steps=200, batch_size=2, seed=2)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points, c.points)


def test_on_the_saddles_stable_manifold_only_mini_batches_escape():
    surface = get_surface("saddle")
    full = run_trajectory(surface, start=(1.5, 0.0), steps=800, batch_size=12)
    assert np.all(full.points[:, 1] == 0) and full.ended_at == "saddle"
    small = run_trajectory(surface, start=(1.5, 0.0), steps=800, batch_size=1)
    assert abs(small.final_point[1]) > 0.9 and small.ended_at.startswith("minimum")
