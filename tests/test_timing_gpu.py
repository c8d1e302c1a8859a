"""The cuda-graph path on a GPU: the replayed step trains exactly like the eager lecture step."""

import pytest
import torch
from torch.nn import functional as F

from batchlab.models.registry import build_model
from batchlab.optim import Momentum
from batchlab.timing import measure_point
from batchlab.timing.paths import CudaGraphPath, ResidentBatches, build_timed_model
from batchlab.timing.workload import synthetic_data

pytestmark = pytest.mark.gpu


@pytest.fixture
def cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    return torch.device("cuda")


def test_graph_replay_gives_the_eager_parameters(cuda):
    # 50 = 6 × 8 + 2: two captured graphs (B = 8 and the short last batch of 2), and 9 updates
    # cross an epoch boundary, so both graphs and a new permutation are exercised.
    n, batch_size, lr, lam, seed, updates = 50, 8, 0.05, 0.9, 7, 9
    data = synthetic_data("mnist-5k", (1, 28, 28), 10, n, reason="test")

    graphed = CudaGraphPath(build_timed_model("mlp", data, cuda, seed, (32,)), data, batch_size, cuda,
                            lr=lr, momentum=lam, seed=seed)
    assert set(graphed.graphs) == {8, 2}
    assert graphed.capture_s > 0
    for _ in range(updates):
        graphed.step()

    torch.manual_seed(seed)
    eager = build_model("mlp", (1, 28, 28), 10, (32,)).to(cuda)
    optimizer = Momentum(eager.parameters(), lr=lr, momentum=lam)
    batches = ResidentBatches(n, batch_size, seed, cuda)
    x, y = data.on(cuda)
    for _ in range(updates):
        index = batches.next()
        loss = F.cross_entropy(eager(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    torch.cuda.synchronize()
    assert graphed.examples_seen == batches.examples_seen == 6 * 8 + 2 + 2 * 8
    for replayed, reference in zip(graphed.model.parameters(), eager.parameters()):
        torch.testing.assert_close(replayed, reference, rtol=1e-5, atol=1e-6)
    initial = build_timed_model("mlp", data, cuda, seed, (32,))
    assert any(not torch.equal(a, b) for a, b in zip(graphed.model.parameters(), initial.parameters()))


def test_cuda_graph_point_reports_capture_time_apart(cuda):
    data = synthetic_data("mnist-5k", (1, 28, 28), 10, 64, reason="test")
    point = measure_point("cuda-graph", "mlp", 16, 64, cuda, 5, 2, 0.05, data=data, hidden=(32,))
    assert point.capture_s is not None and point.capture_s > 0
    assert point.repeats == 5 and point.device.startswith("cuda")


def test_a_regression_task_is_timed_on_the_cuda_graph_path(cuda):
    from batchlab.task import Task

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=generator)
    y = x.sum(1, keepdim=True)
    task = Task(lambda: torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)),
                (x[:48], y[:48], x[48:], y[48:]), name="line", loss=F.mse_loss)
    point = measure_point("cuda-graph", None, 16, 64, cuda, 5, 2, 0.05, task=task)
    assert point.loss == "mse_loss" and point.model == "user:line" and point.model_fingerprint
    assert point.capture_s is not None and point.capture_s > 0
    assert point.synthetic_data and point.n_examples == 64  # 48 examples repeated up to 64
