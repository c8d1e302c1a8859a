"""Ghost batch normalization: ordinary batch norm at G = B, per-ghost statistics below it."""

import copy

import pytest
import torch
from torch import nn

from batchlab.errors import ConfigError
from batchlab.models.ghost_bn import GhostBatchNorm1d, GhostBatchNorm2d, use_ghost_batch_norm


def small_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 5),
        nn.BatchNorm1d(5, momentum=0.3),
        nn.Linear(5, 2),
    ).double()


def batch(size: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(size, 2, 4, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 + 0.5


def buffers_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.clone() for name, b in model.named_buffers()}


@pytest.mark.slow
def test_ghost_batch_of_the_whole_batch_is_ordinary_batch_norm_to_the_bit():
    plain = small_model()
    ghost = copy.deepcopy(plain)
    assert use_ghost_batch_norm(ghost, 8) == 2
    assert isinstance(ghost[1], GhostBatchNorm2d) and isinstance(ghost[5], GhostBatchNorm1d)
    for step in range(3):
        x = batch(8, seed=step)
        out_plain, out_ghost = plain(x), ghost(x)
        assert torch.equal(out_plain, out_ghost)
        out_plain.square().sum().backward()
        out_ghost.square().sum().backward()
    plain_buffers, ghost_buffers = buffers_of(plain), buffers_of(ghost)
    assert plain_buffers.keys() == ghost_buffers.keys()
    for name in plain_buffers:
        assert torch.equal(plain_buffers[name], ghost_buffers[name]), name
    for (name, p), q in zip(plain.named_parameters(), ghost.parameters()):
        assert torch.equal(p.grad, q.grad), name
    plain.eval(), ghost.eval()
    assert torch.equal(plain(batch(5, seed=9)), ghost(batch(5, seed=9)))


def test_smaller_ghost_batches_normalize_each_part_with_its_own_statistics():
    layer = GhostBatchNorm1d(3, ghost_batch_size=4, momentum=0.1).double()
    x = torch.randn(12, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3 + 1
    y = layer(x)
    for part in range(3):
        chunk = x[4 * part : 4 * part + 4]
        expected = (chunk - chunk.mean(0)) / torch.sqrt(chunk.var(0, unbiased=False) + 1e-5)
        torch.testing.assert_close(y[4 * part : 4 * part + 4], expected, rtol=1e-12, atol=1e-12)
    # Differs from whole-batch normalization.
    plain = nn.BatchNorm1d(3).double()
    whole = plain(x)
    assert (y - whole).abs().max() > 1e-2
    assert (layer.running_mean - plain.running_mean).abs().max() > 1e-3
    assert (layer.running_var - plain.running_var).abs().max() > 1e-3


def test_running_statistics_are_updated_once_per_ghost_batch_in_order():
    momentum = 0.2
    layer = GhostBatchNorm2d(2, ghost_batch_size=3, momentum=momentum).double()
    x = torch.randn(9, 2, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    layer(x)
    mean = torch.zeros(2, dtype=torch.float64)
    var = torch.ones(2, dtype=torch.float64)
    for part in range(3):
        chunk = x[3 * part : 3 * part + 3].transpose(0, 1).reshape(2, -1)  # n = 3·2·2 values per channel
        mean = (1 - momentum) * mean + momentum * chunk.mean(1)
        var = (1 - momentum) * var + momentum * chunk.var(1, unbiased=True)
    torch.testing.assert_close(layer.running_mean, mean, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(layer.running_var, var, rtol=1e-12, atol=1e-14)
    assert int(layer.num_batches_tracked) == 3


def test_cumulative_average_counts_ghost_batches():
    layer = GhostBatchNorm1d(1, ghost_batch_size=2, momentum=None).double()
    x = torch.tensor([[0.0], [2.0], [4.0], [8.0]], dtype=torch.float64)
    layer(x)
    torch.testing.assert_close(layer.running_mean, torch.tensor([(1.0 + 6.0) / 2], dtype=torch.float64))
    assert int(layer.num_batches_tracked) == 2


def test_eval_uses_running_statistics_or_the_batchs_own():
    layer = GhostBatchNorm1d(2, ghost_batch_size=2).double()
    layer.running_mean.fill_(1.0)
    layer.running_var.fill_(4.0)
    layer.eval()
    x = torch.tensor([[3.0, 5.0], [1.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(layer(x), (x - 1.0) / torch.sqrt(torch.tensor(4.0 + 1e-5, dtype=torch.float64)))
    layer.eval_statistics = "batch"
    expected = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)
    torch.testing.assert_close(layer(x), expected)
    before = layer.running_mean.clone()
    layer(x)
    assert torch.equal(layer.running_mean, before)  # evaluation never moves the running statistics


def test_batch_norm_without_moving_averages_for_a_whole_model():
    model = small_model()
    use_ghost_batch_norm(model, None, eval_statistics="batch")
    model.train()
    model(batch(8))
    model.eval()
    x = batch(6, seed=4)
    # Each evaluated example depends on the others in its batch: statistics come from the batch.
    assert not torch.allclose(model(x)[:3], model(x[:3]))
    assert model[1].eval_statistics == "batch" and model[1].ghost_batch_size is None


@pytest.mark.slow
def test_swap_keeps_parameters_so_an_existing_optimizer_still_works():
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    weight = model[1].weight
    state = copy.deepcopy(model.state_dict())
    use_ghost_batch_norm(model, 4)
    assert model[1].weight is weight
    assert model.state_dict().keys() == state.keys()
    model(batch(8)).square().sum().backward()  # a plain sum is constant after batch norm
    before = weight.detach().clone()
    optimizer.step()
    assert not torch.equal(weight.detach(), before)
    # Swapping again only changes the settings.
    assert use_ghost_batch_norm(model, 2, eval_statistics="batch") == 2
    assert model[1].ghost_batch_size == 2 and model[5].eval_statistics == "batch"


def test_a_ghost_batch_that_does_not_divide_the_batch_is_one_line():
    model = small_model()
    use_ghost_batch_norm(model, 3)
    with pytest.raises(ConfigError, match=r"^ghost batch size 3 does not divide the batch of 8 examples; allowed: a divisor of 8$"):
        model(batch(8))


@pytest.mark.parametrize("size", [0, -2, 2.5, True])
def test_bad_ghost_batch_sizes_are_refused(size):
    with pytest.raises(ConfigError, match=r"ghost batch size .*; allowed: a whole number ≥ 1"):
        use_ghost_batch_norm(small_model(), size)


def test_unknown_eval_statistics_is_refused():
    with pytest.raises(ConfigError, match=r"unknown evaluation statistics 'moving'; allowed: running, batch"):
        use_ghost_batch_norm(small_model(), 4, eval_statistics="moving")


def test_recomputed_statistics_with_update_bn():
    # The other reading of "without moving averages": recompute the population statistics.
    layer = GhostBatchNorm1d(2, ghost_batch_size=2).double()
    data = [torch.randn(4, 2, generator=torch.Generator().manual_seed(s), dtype=torch.float64) for s in range(3)]
    torch.optim.swa_utils.update_bn(data, nn.Sequential(layer))
    ghosts = [chunk for x in data for chunk in x.split(2)]
    torch.testing.assert_close(layer.running_mean, torch.stack([g.mean(0) for g in ghosts]).mean(0))
    assert layer.momentum == 0.1  # restored
