"""One momentum rule, several kernels: per tensor, foreach, (K, P) rows and out of place agree."""

import numpy as np
import pytest
import torch

from batchlab.optim import Momentum
from batchlab.optim.functional import (
    RowHyperparameters,
    correct_momentum_,
    momentum_,
    momentum_rows_,
    momentum_update,
)

RULES = [
    dict(lr=0.1, momentum=0.0, weight_decay=0.0, nesterov=False),
    dict(lr=0.1, momentum=0.9, weight_decay=0.0, nesterov=False),
    dict(lr=0.05, momentum=0.5, weight_decay=0.01, nesterov=False),
    dict(lr=0.05, momentum=0.7, weight_decay=0.0, nesterov=True),
    dict(lr=0.2, momentum=0.3, weight_decay=0.1, nesterov=True),
]


def _tensors(seed: int, shapes=((3,), (2, 4))):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=generator) for shape in shapes]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"lam{r['momentum']}-wd{r['weight_decay']}-nag{r['nesterov']}")
def test_foreach_equals_one_kernel_per_tensor_bit_for_bit(rule):
    single, multi = _tensors(0), _tensors(0)
    single_buffers: list = [None, None]
    multi_buffers: list = [None, None]
    for step in range(4):
        grads = _tensors(100 + step)
        momentum_(single, grads, single_buffers, foreach=False, **rule)
        momentum_(multi, grads, multi_buffers, foreach=True, **rule)
    for a, b in zip(single, multi):
        assert torch.equal(a, b)
    if rule["momentum"] == 0.0:
        assert single_buffers == [None, None] and multi_buffers == [None, None]  # λ = 0 keeps no buffer
    else:
        for a, b in zip(single_buffers, multi_buffers):
            assert torch.equal(a, b)


def test_momentum_optimizer_with_foreach_matches_without():
    results = []
    for foreach in (False, True):
        params = [torch.nn.Parameter(t) for t in _tensors(1)]
        optimizer = Momentum(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01, foreach=foreach)
        for step in range(3):
            for param, grad in zip(params, _tensors(10 + step)):
                param.grad = grad
            optimizer.step()
        results.append([p.detach().clone() for p in params])
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_a_checkpoint_without_the_foreach_option_still_loads():
    params = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = Momentum(params, lr=0.1, momentum=0.9)
    state = optimizer.state_dict()
    del state["param_groups"][0]["foreach"]
    optimizer.load_state_dict(state)
    params[0].grad = torch.ones(2)
    optimizer.step()
    assert optimizer.param_groups[0]["foreach"] is False
    torch.testing.assert_close(params[0].detach(), torch.full((2,), -0.1))


def test_rows_follow_the_per_tensor_rule_of_each_run():
    generator = torch.Generator().manual_seed(3)
    k, n = len(RULES), 6
    params = torch.randn(k, n, generator=generator)
    singles = [params[i].clone() for i in range(k)]
    buffer = torch.zeros(k, n)
    single_buffers: list = [[None] for _ in range(k)]
    rows = RowHyperparameters.of([r["lr"] for r in RULES], [r["momentum"] for r in RULES],
                                 [r["weight_decay"] for r in RULES], [r["nesterov"] for r in RULES], "cpu")
    for _ in range(4):
        grads = torch.randn(k, n, generator=generator)
        momentum_rows_(params, buffer, grads, rows)
        for i, rule in enumerate(RULES):
            momentum_([singles[i]], [grads[i].clone()], single_buffers[i], **rule)
    for i, rule in enumerate(RULES):
        torch.testing.assert_close(params[i], singles[i], rtol=1e-6, atol=1e-7)
        expected = single_buffers[i][0] if rule["momentum"] else torch.zeros(n)
        torch.testing.assert_close(buffer[i], expected, rtol=1e-6, atol=1e-7)


def test_rows_keep_an_overflowing_run_at_inf_not_nan():
    # A 0/1 mask would give 0·inf = NaN in the λ = 0 row; the rule must keep what the run alone gets.
    rows = RowHyperparameters.of([1.0, 1.0], [0.0, 0.9], [0.0, 0.0], [False, True], "cpu")
    params = torch.tensor([[0.0], [0.0]])
    buffer = torch.zeros(2, 1)
    momentum_rows_(params, buffer, torch.tensor([[-float("inf")], [1.0]]), rows)
    assert params[0, 0].item() == float("inf") and buffer[0, 0].item() == 0.0


@pytest.mark.parametrize("nesterov", [False, True])
def test_out_of_place_update_is_the_same_rule_on_numpy_and_torch(nesterov):
    theta_np, m_np = np.array([1.0, -2.0]), np.zeros(2)
    theta_t = [torch.tensor([1.0, -2.0], dtype=torch.float64)]
    buffers: list = [None]
    for g in ([0.5, 1.0], [-1.0, 2.0], [0.25, 0.0]):
        theta_np, m_np = momentum_update(theta_np, m_np, np.array(g), lr=0.1, momentum=0.8, nesterov=nesterov)
        momentum_(theta_t, [torch.tensor(g, dtype=torch.float64)], buffers, lr=0.1, momentum=0.8, nesterov=nesterov)
    np.testing.assert_allclose(theta_np, theta_t[0].numpy(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(m_np, buffers[0].numpy(), rtol=0, atol=1e-15)


def test_momentum_correction_rescales_only_when_the_rate_changed():
    buffer = torch.tensor([2.0])
    correct_momentum_(buffer, 0.1, 0.1)
    assert buffer.item() == 2.0
    correct_momentum_(buffer, 0.1, 0.0)  # no earlier rate to correct from
    assert buffer.item() == 2.0
    correct_momentum_(buffer, 0.01, 0.1)
    torch.testing.assert_close(buffer, torch.tensor([0.2]))
