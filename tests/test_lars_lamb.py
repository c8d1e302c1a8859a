"""LARS and LAMB against closed forms and against independent implementations from PyPI.

References and where their conventions differ from batchlab's (each comparison runs under
settings where the rules coincide):

* ``pytorch_optimizer.LARS`` (the ``test`` extra, needs only torch): same rule under a constant
  learning rate (it keeps lr outside the momentum buffer, b ← m·b + λ(g + βw), w ← w − γb; the
  paper and batchlab keep γ inside v, so the two agree only while γ is constant); it always
  excludes tensors with ndim ≤ 1, like batchlab's default; it has no ε.
* ``pytorch_optimizer.Lamb``: it divides the step by 1 − β₁ᵗ but leaves v uncorrected (neither
  Algorithm 2 nor its uncorrected form); ``adam_debias=True`` drops that division, which gives
  the uncorrected form (``bias_correction=False`` here). It uses decoupled
  weight decay by default (``weight_decouple=False`` gives the paper's r + λx), ε also added to
  the trust ratio's denominator and ‖x‖ clamped at 10 (both made inert: ε = 1e-12 in both
  optimizers, weights of norm well below 10), and every tensor adapted
  (``layer_adaptation=True`` here).
* ``timm.optim.Lars`` / ``timm.optim.Lamb`` (compared when timm is installed): lr outside the
  momentum buffer (constant lr), ε in the LARS denominator (ε = 0 given to timm, the paper's
  rule), adaptation only when weight decay ≠ 0 unless ``always_adapt=True`` (set; the excluded
  1-D tensors form a second group with weight decay 0 and ``always_adapt=False``), LAMB's global
  gradient-norm clipping (``max_grad_norm=None`` disables it), bias correction on as in
  Algorithm 2. timm's package ``__init__`` imports torchvision, whose PyPI wheels must match the
  installed torch build; its optimizer files need only torch, so they are loaded on their own.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types

import pytest
import torch

from batchlab.errors import ConfigError
from batchlab.optim import LAMB, LARS, build_optimizer

STEPS = 60


def random_model_tensors(seed: int) -> list[torch.Tensor]:
    """A weight matrix, a bias, a conv-like 4-d kernel and a norm scale, float64."""
    generator = torch.Generator().manual_seed(seed)
    shapes = [(6, 5), (6,), (3, 2, 3, 3), (4,)]
    return [torch.randn(shape, generator=generator, dtype=torch.float64) * 0.5 for shape in shapes]


def gradient_sequence(seed: int, shapes: list[torch.Size]) -> list[list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(shape, generator=generator, dtype=torch.float64) for shape in shapes] for _ in range(STEPS)]


def run(make_optimizer, seed: int = 0, gradient_of=None):
    """Iterates of an optimizer fed the same gradients (or ∇ of a quadratic when given)."""
    params = [torch.nn.Parameter(t.clone()) for t in random_model_tensors(seed)]
    optimizer = make_optimizer(params)
    gradients = gradient_sequence(seed + 1, [p.shape for p in params])
    history = []
    for step in range(STEPS):
        for param, grad in zip(params, gradients[step]):
            param.grad = grad.clone() if gradient_of is None else gradient_of(param).detach().clone()
        optimizer.step()
        history.append([p.detach().clone() for p in params])
    return history


def assert_same_iterates(ours, theirs, rtol=1e-10, atol=1e-12):
    assert len(ours) == len(theirs) == STEPS
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=rtol, atol=atol, msg=lambda m: f"step {step}: {m}")


def split_groups(params, decayed: dict, excluded: dict) -> list[dict]:
    return [
        {"params": [p for p in params if p.ndim > 1], **decayed},
        {"params": [p for p in params if p.ndim <= 1], **excluded},
    ]


# ---------------------------------------------------------------- closed forms


def test_lars_single_step_closed_form():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]], dtype=torch.float64))  # ‖w‖ = 5
    g = torch.tensor([[1.0, 0.0]], dtype=torch.float64)  # ‖g‖ = 1
    optimizer = LARS([w], lr=0.5, momentum=0.9, weight_decay=0.1, trust_coefficient=0.02)
    w.grad = g.clone()
    optimizer.step()
    local = 0.02 * 5 / (1 + 0.1 * 5)
    expected = torch.tensor([[3.0, 4.0]], dtype=torch.float64) - 0.5 * local * (g + 0.1 * torch.tensor([[3.0, 4.0]], dtype=torch.float64))
    torch.testing.assert_close(w.detach(), expected, rtol=0, atol=1e-15)
    # Second step: v ← m·v + γλ(g + βw) with the new w.
    v1 = torch.tensor([[3.0, 4.0]], dtype=torch.float64) - expected
    w1 = expected.clone()
    w.grad = g.clone()
    optimizer.step()
    local2 = 0.02 * w1.norm() / (1 + 0.1 * w1.norm())
    v2 = 0.9 * v1 + 0.5 * local2 * (g + 0.1 * w1)
    torch.testing.assert_close(w.detach(), w1 - v2, rtol=0, atol=1e-15)


def test_lars_keeps_each_past_rate_inside_the_velocity():
    # A changing γ: v_2 = m·γ_1 λ_1 g_1 + γ_2 λ_2 g_2 (the paper's form), not γ_2 (m λ_1 g_1 + λ_2 g_2).
    w = torch.nn.Parameter(torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    optimizer = LARS([w], lr=1.0, momentum=0.5, trust_coefficient=0.1)
    w.grad = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    optimizer.step()  # λ_1 = 0.1·1/2 = 0.05, v_1 = (0, 0.1)
    optimizer.param_groups[0]["lr"] = 0.1
    w_norm = math.sqrt(1.0 + 0.1**2)
    w.grad = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    optimizer.step()  # λ_2 = 0.1·‖w_1‖/2, v_2 = 0.5·v_1 + 0.1·λ_2·g
    v2 = 0.5 * 0.1 + 0.1 * (0.1 * w_norm / 2) * 2.0
    torch.testing.assert_close(w.detach(), torch.tensor([[1.0, -0.1 - v2]], dtype=torch.float64), rtol=0, atol=1e-15)


def test_lars_excludes_biases_from_decay_and_adaptation_by_default():
    bias = torch.nn.Parameter(torch.tensor([2.0, -1.0], dtype=torch.float64))
    optimizer = LARS([bias], lr=0.1, momentum=0.0, weight_decay=0.5, trust_coefficient=0.001)
    bias.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
    optimizer.step()
    torch.testing.assert_close(bias.detach(), torch.tensor([1.9, -1.1], dtype=torch.float64))
    adapted = torch.nn.Parameter(torch.tensor([2.0, -1.0], dtype=torch.float64))
    optimizer = LARS([adapted], lr=0.1, momentum=0.0, weight_decay=0.5, trust_coefficient=0.001, layer_adaptation=True)
    adapted.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
    optimizer.step()
    assert (adapted.detach() - torch.tensor([2.0, -1.0], dtype=torch.float64)).abs().max() < 1e-3


def test_lars_zero_weights_take_a_unit_ratio():
    w = torch.nn.Parameter(torch.zeros(2, 2, dtype=torch.float64))
    optimizer = LARS([w], lr=0.1, momentum=0.0)
    w.grad = torch.ones(2, 2, dtype=torch.float64)
    optimizer.step()
    torch.testing.assert_close(w.detach(), torch.full((2, 2), -0.1, dtype=torch.float64))


def test_lamb_single_step_closed_form():
    x0 = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64)  # ‖x‖ = 5
    g = torch.tensor([[1.0, -2.0], [0.5, 4.0]], dtype=torch.float64)
    x = torch.nn.Parameter(x0.clone())
    optimizer = LAMB([x], lr=0.01, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.1)
    x.grad = g.clone()
    optimizer.step()
    # Step 1 with bias correction: m̂ = g, v̂ = g², r = g/(|g| + ε).
    r = g / (g.abs() + 1e-6)
    u = r + 0.1 * x0
    expected = x0 - 0.01 * 5 / u.norm() * u
    torch.testing.assert_close(x.detach(), expected, rtol=0, atol=1e-15)


def test_lamb_second_step_without_bias_correction():
    x0 = torch.tensor([[1.0, 2.0, 2.0]], dtype=torch.float64)  # ‖x‖ = 3
    g1 = torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.float64)
    g2 = torch.tensor([[2.0, 1.0, 1.0]], dtype=torch.float64)
    x = torch.nn.Parameter(x0.clone())
    optimizer = LAMB([x], lr=0.1, betas=(0.5, 0.75), eps=1e-8, bias_correction=False)
    expected = x0.clone()
    m = torch.zeros_like(x0)
    v = torch.zeros_like(x0)
    for g in (g1, g2):
        m = 0.5 * m + 0.5 * g
        v = 0.75 * v + 0.25 * g * g
        r = m / (v.sqrt() + 1e-8)
        expected = expected - 0.1 * expected.norm() / r.norm() * r
        x.grad = g.clone()
        optimizer.step()
    torch.testing.assert_close(x.detach(), expected, rtol=0, atol=1e-14)


def test_lamb_excluded_tensors_take_the_adam_step():
    bias = torch.nn.Parameter(torch.tensor([5.0, -5.0], dtype=torch.float64))
    optimizer = LAMB([bias], lr=0.1, weight_decay=1.0)
    bias.grad = torch.tensor([0.3, -2.0], dtype=torch.float64)
    optimizer.step()  # r = g/(|g| + ε) ≈ sign(g); no decay, no ratio
    torch.testing.assert_close(bias.detach(), torch.tensor([4.9, -4.9], dtype=torch.float64), rtol=0, atol=1e-6)


# ---------------------------------------------------------------- pytorch_optimizer


def test_lars_matches_pytorch_optimizer_over_many_steps():
    reference = pytest.importorskip("pytorch_optimizer")
    settings = dict(lr=0.3, momentum=0.9, weight_decay=5e-3)
    ours = run(lambda p: LARS(p, trust_coefficient=0.02, **settings))
    theirs = run(lambda p: reference.LARS(p, trust_coefficient=0.02, dampening=0.0, nesterov=False, **settings))
    assert_same_iterates(ours, theirs)


def test_lamb_matches_pytorch_optimizer_over_many_steps():
    reference = pytest.importorskip("pytorch_optimizer")
    settings = dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.02, eps=1e-12)
    ours = run(lambda p: LAMB(p, bias_correction=False, layer_adaptation=True, **settings))
    theirs = run(lambda p: reference.Lamb(p, weight_decouple=False, adam_debias=True, **settings))
    assert max(t.norm().item() for t in theirs[-1]) < 5  # its ‖x‖ clamp at 10 never acts
    assert_same_iterates(ours, theirs)


# ---------------------------------------------------------------- timm


def timm_optim_module(name: str) -> types.ModuleType:
    """timm.optim.<name>, imported normally or, without torchvision, from its file alone."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("timm is not installed")
    try:
        return importlib.import_module(f"timm.optim.{name}")
    except (ImportError, RuntimeError):
        pass
    package = "_timm_optim_files"
    if package not in sys.modules:
        stub = types.ModuleType(package)
        stub.__path__ = [f"{spec.submodule_search_locations[0]}/optim"]
        sys.modules[package] = stub
    return importlib.import_module(f"{package}.{name}")


def test_lars_matches_timm_over_many_steps():
    timm_lars = timm_optim_module("lars")
    ours = run(lambda p: LARS(p, lr=0.2, momentum=0.8, weight_decay=1e-2, trust_coefficient=0.01))
    theirs = run(
        lambda p: timm_lars.Lars(
            split_groups(p, {"weight_decay": 1e-2, "always_adapt": True}, {"weight_decay": 0.0, "always_adapt": False}),
            lr=0.2, momentum=0.8, trust_coeff=0.01, eps=0.0, foreach=False,
        )
    )
    assert_same_iterates(ours, theirs)


def test_lamb_matches_timm_over_many_steps():
    timm_lamb = timm_optim_module("lamb")
    ours = run(lambda p: LAMB(p, lr=0.01, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01))
    theirs = run(
        lambda p: timm_lamb.Lamb(
            split_groups(p, {"weight_decay": 0.01, "always_adapt": True}, {"weight_decay": 0.0, "always_adapt": False}),
            lr=0.01, betas=(0.9, 0.999), eps=1e-6, max_grad_norm=None, bias_correction=True, foreach=False,
        )
    )
    assert_same_iterates(ours, theirs)


# ---------------------------------------------------------------- state_dict and registry


@pytest.mark.parametrize("make", [lambda p: LARS(p, lr=0.1, weight_decay=1e-3), lambda p: LAMB(p, lr=0.01, weight_decay=1e-2)])
def test_state_dict_round_trip_continues_identically(make):
    def quadratic_grad(param):
        return 2 * param + 0.1

    straight = run(make, gradient_of=quadratic_grad)
    params = [torch.nn.Parameter(t.clone()) for t in random_model_tensors(0)]
    optimizer = make(params)
    for step in range(STEPS // 2):
        for p in params:
            p.grad = quadratic_grad(p).detach().clone()
        optimizer.step()
    saved = optimizer.state_dict()
    resumed_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
    resumed = make(resumed_params)
    resumed.load_state_dict(saved)
    for step in range(STEPS // 2, STEPS):
        for p in resumed_params:
            p.grad = quadratic_grad(p).detach().clone()
        resumed.step()
    for x, y in zip(resumed_params, straight[-1]):
        torch.testing.assert_close(x.detach(), y, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (LARS, dict(lr=-1.0), r"Invalid learning rate: -1.0"),
        (LARS, dict(lr=0.1, momentum=1.0), r"Invalid momentum value: 1.0"),
        (LARS, dict(lr=0.1, weight_decay=-1e-4), r"Invalid weight_decay value: -0.0001"),
        (LARS, dict(lr=0.1, trust_coefficient=0.0), r"Invalid trust_coefficient value: 0.0"),
        (LARS, dict(lr=0.1, eps=-1.0), r"Invalid eps value: -1.0"),
        (LARS, dict(lr=0.1, layer_adaptation="yes"), r"Invalid layer_adaptation value: 'yes'"),
        (LAMB, dict(lr=0.1, eps=0.0), r"Invalid eps value: 0.0 \(must be > 0\)"),
        (LAMB, dict(lr=0.1, betas=(0.9, 1.0)), r"Invalid beta parameter at index 1: 1.0"),
        (LAMB, dict(lr=0.1, betas=(0.9,)), r"Invalid betas value"),
        (LAMB, dict(lr=-0.1), r"Invalid learning rate: -0.1"),
    ],
)
def test_invalid_arguments_are_named(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        factory([torch.nn.Parameter(torch.zeros(2, 2))], **kwargs)


def test_registry_builds_lars_and_lamb_with_defaults_and_options():
    w = [torch.nn.Parameter(torch.zeros(2, 2))]
    lars = build_optimizer("lars", w, lr=0.1, momentum=0.9, weight_decay=1e-4)
    assert isinstance(lars, LARS)
    assert lars.defaults["trust_coefficient"] == 0.001 and lars.defaults["momentum"] == 0.9
    lamb = build_optimizer("lamb", w, lr=0.01, eps=1e-8, betas=(0.8, 0.9))
    assert isinstance(lamb, LAMB) and lamb.defaults["betas"] == (0.8, 0.9) and lamb.defaults["eps"] == 1e-8


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("lars", dict(trust_coefficient=-1.0), r"optimizer 'lars': Invalid trust_coefficient value: -1.0 \(must be > 0\)"),
        ("lamb", dict(betas=(1.5, 0.9)), r"optimizer 'lamb': Invalid beta parameter at index 0: 1.5"),
        ("lamb", dict(momentum=0.9), r"optimizer 'lamb' takes no momentum"),
        ("lars", dict(nesterov=True, momentum=0.9), r"optimizer 'lars' has no Nesterov form"),
        ("lars", dict(betas=(0.9, 0.99)), r"optimizer 'lars' takes no option 'betas'; allowed: trust_coefficient, eps, layer_adaptation"),
        ("adam", dict(trust_coefficient=0.1), r"optimizer 'adam' takes no option 'trust_coefficient'; allowed: none"),
    ],
)
def test_registry_turns_bad_options_into_one_line_config_errors(name, kwargs, message):
    with pytest.raises(ConfigError, match=message) as caught:
        build_optimizer(name, [torch.nn.Parameter(torch.zeros(2, 2))], lr=0.1, **kwargs)
    assert "\n" not in str(caught.value)
