"""The lecture's momentum: closed form, agreement with torch.optim.SGD, and where they differ."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from batchlab.errors import ConfigError
from batchlab.optim import OPTIMIZERS, Momentum, build_optimizer


def _run_on_gradients(optimizer_factory, gradients, lrs=None):
    """Feed a known gradient sequence to an optimizer; return θ after each step."""
    theta = torch.nn.Parameter(torch.zeros(len(gradients[0]), dtype=torch.float64))
    optimizer = optimizer_factory([theta])
    iterates = []
    for step, grad in enumerate(gradients):
        if lrs is not None:
            for group in optimizer.param_groups:
                group["lr"] = lrs[step]
        theta.grad = torch.tensor(grad, dtype=torch.float64)
        optimizer.step()
        iterates.append(theta.detach().clone())
    return iterates


def test_momentum_matches_closed_form_decayed_sum():
    # m_t = −η Σ_k λ^{t−k} g_k and θ_t = Σ_{s≤t} m_s, on an arbitrary known sequence.
    gradients = [[1.0, -2.0], [0.5, 3.0], [-1.5, 0.25], [2.0, 2.0], [0.0, -1.0]]
    lr, lam = 0.05, 0.8
    iterates = _run_on_gradients(lambda p: Momentum(p, lr=lr, momentum=lam), gradients)
    theta = torch.zeros(2, dtype=torch.float64)
    for t in range(len(gradients)):
        m_t = -lr * sum(lam ** (t - k) * torch.tensor(gradients[k], dtype=torch.float64) for k in range(t + 1))
        theta = theta + m_t
        torch.testing.assert_close(iterates[t], theta, rtol=0, atol=1e-12)


def test_zero_momentum_is_gradient_descent():
    gradients = [[1.0], [2.0], [-3.0]]
    iterates = _run_on_gradients(lambda p: Momentum(p, lr=0.1, momentum=0.0), gradients)
    assert [round(x.item(), 10) for x in iterates] == [-0.1, -0.3, 0.0]


@settings(max_examples=30, deadline=None)
@given(
    lam=st.floats(0.0, 0.99),
    lr=st.floats(1e-4, 1.0),
    nesterov=st.booleans(),
    weight_decay=st.sampled_from([0.0, 1e-3]),
    seed=st.integers(0, 1000),
)
def test_identical_to_torch_sgd_under_constant_rate(lam, lr, nesterov, weight_decay, seed):
    if nesterov and lam == 0.0:
        nesterov = False
    generator = torch.Generator().manual_seed(seed)
    gradients = torch.randn(8, 3, generator=generator, dtype=torch.float64).tolist()

    def ours(p):
        return Momentum(p, lr=lr, momentum=lam, nesterov=nesterov, weight_decay=weight_decay)

    def theirs(p):
        return torch.optim.SGD(p, lr=lr, momentum=lam, nesterov=nesterov, weight_decay=weight_decay)

    # Both add weight_decay·θ to the fed gradient themselves, so the same list drives both.
    for a, b in zip(_run_on_gradients(ours, gradients), _run_on_gradients(theirs, gradients)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_worked_example_changing_rate_differs_from_torch():
    # docs/science.md §2: g ≡ 1, λ = 0.9, lr 0.1 then 0.01 → lecture θ_2 = −0.200, PyTorch θ_2 = −0.119.
    gradients = [[1.0], [1.0]]
    lrs = [0.1, 0.01]
    ours = _run_on_gradients(lambda p: Momentum(p, lr=0.1, momentum=0.9), gradients, lrs)
    theirs = _run_on_gradients(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), gradients, lrs)
    assert ours[-1].item() == pytest.approx(-0.200, abs=1e-12)
    assert theirs[-1].item() == pytest.approx(-0.119, abs=1e-12)
    constant = _run_on_gradients(lambda p: Momentum(p, lr=0.1, momentum=0.9), gradients)
    assert constant[-1].item() == pytest.approx(-0.29, abs=1e-12)


def test_momentum_correction_follows_torch_under_changing_rate():
    gradients = [[1.0], [-0.5], [2.0], [0.3]]
    lrs = [0.1, 0.01, 0.05, 0.2]
    ours = _run_on_gradients(lambda p: Momentum(p, lr=0.1, momentum=0.9, momentum_correction=True), gradients, lrs)
    theirs = _run_on_gradients(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), gradients, lrs)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": -0.1}, "learning rate"),
        ({"lr": 0.1, "momentum": 1.0}, "momentum"),
        ({"lr": 0.1, "momentum": -0.1}, "momentum"),
        ({"lr": 0.1, "momentum": 0.0, "nesterov": True}, "Nesterov"),
        ({"lr": 0.1, "weight_decay": -1.0}, "weight_decay"),
    ],
)
def test_invalid_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Momentum([torch.nn.Parameter(torch.zeros(1))], **kwargs)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_registered_optimizer_descends_a_parabola(name):
    w = torch.nn.Parameter(torch.tensor([3.0, -2.0]))
    momentum = 0.5 if OPTIMIZERS[name].uses_momentum else 0.0
    lr = 0.1
    required = {"updates_per_epoch": 1} if name == "rmsprop-warmup" else {}  # its epoch length has no default
    optimizer = build_optimizer(name, [w], lr=lr, momentum=momentum, **required)
    for _ in range(200):
        optimizer.zero_grad()
        (w**2).sum().backward()
        optimizer.step()
    assert (w**2).sum().item() < 1e-3


def test_unknown_optimizer_lists_known_ones():
    with pytest.raises(ConfigError, match="known: momentum, sgd, torch-sgd, adam"):
        build_optimizer("rmsprop", [torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def test_momentum_free_optimizer_rejects_momentum():
    with pytest.raises(ConfigError, match="takes no momentum"):
        build_optimizer("sgd", [torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)


# ----------------------------------------------------------------------------- momentum correction in a run


@pytest.mark.slow
def test_momentum_correction_is_a_run_field_that_reaches_the_optimizer_and_changes_the_run():
    from batchlab.config import RunConfig, run_id
    from batchlab.errors import ConfigError
    from batchlab.training import train

    base = RunConfig(dataset="mnist-5k", model="mlp", hidden=(8,), batch_size=500, lr=0.1, momentum=0.9, epochs=2,
                     warmup_epochs=1.0, lr_scaling="linear", base_batch=100, device="cpu")
    corrected = base.replace(momentum_correction=True)
    assert run_id(base, "cpu") != run_id(corrected, "cpu")
    assert "momentum_correction" not in base.to_dict() or base.to_dict()["momentum_correction"] is False
    # During the warm-up the rate rises every update, so the rescaled buffer takes other steps.
    assert train(base, progress=False).summary["train_loss"] != train(corrected, progress=False).summary["train_loss"]
    for bad in (dict(optimizer="adam", momentum=0.0), dict(momentum=0.0), dict(optimizer="torch-sgd")):
        with pytest.raises(ConfigError, match="momentum correction"):
            base.replace(momentum_correction=True, **bad)


def test_where_an_optimizer_can_be_used_is_read_from_its_registration():
    from batchlab.commands._hints import HINTED_OPTIMIZERS
    from batchlab.optim.registry import registered_with
    from batchlab.timing.paths import GRAPH_OPTIMIZERS

    assert registered_with("packable") == GRAPH_OPTIMIZERS == ("momentum", "sgd")
    assert HINTED_OPTIMIZERS == ("momentum", "sgd", "torch-sgd")  # heavy-ball: the step is η/(1 − λ)
    assert registered_with("needs_epoch_length") == ("rmsprop-warmup",)
