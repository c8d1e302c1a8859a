"""The timing harness: repeats and spread, extrapolated and measured epochs, synthetic data, the
data paths' batch order, serialization and figures. No assertion is about speed."""

import json
import math
import re
import statistics

import pytest
import torch
from matplotlib.figure import Figure

from batchlab.data import epoch_permutation
from batchlab.errors import ConfigError
from batchlab.timing import (
    LECTURE_V100_TIMES,
    TimingTable,
    format_seconds,
    format_timing_table,
    measure_point,
    plot_timing,
    timing_sweep,
)
from batchlab.store.identity import model_digest
from batchlab.timing import harness, timed_task
from batchlab.timing.harness import resolve_batch_sizes, updates_in_budget
from batchlab.timing.paths import DataLoaderPath, ResidentBatches, build_path
from batchlab.timing.table import TimingPoint
from batchlab.timing.workload import make_timing_data, synthetic_data

CPU = torch.device("cpu")
TINY = (8,)  # hidden width: keeps every update well under a millisecond


@pytest.fixture(scope="module")
def data():
    return synthetic_data("mnist-5k", (1, 28, 28), 10, 48, reason="test data")


def point(data, path="resident", batch_size=8, budget_s=1e-6, **kwargs):
    return measure_point(path, "mlp", batch_size, data.n, CPU, repeats=5, warmup=1, budget_s=budget_s,
                         data=data, hidden=TINY, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["dataloader", "resident"])
def test_tiny_budget_extrapolates_the_epoch_from_the_update_time(data, path):
    p = point(data, path)
    assert p.repeats == len(p.per_update_s) >= 5
    assert p.per_update_min_s <= p.per_update_q25_s <= p.per_update_median_s <= p.per_update_q75_s <= p.per_update_max_s
    assert p.extrapolated
    assert p.updates_per_repeat < p.updates_per_epoch == 6
    assert p.per_epoch_s == pytest.approx(p.per_update_median_s * p.updates_per_epoch)
    assert p.synthetic_data and p.n_examples == 48
    assert any("extrapolated" in note for note in p.notes)
    assert p.capture_s is None


def test_an_affordable_epoch_is_measured_whole(data):
    p = point(data, "resident", batch_size=16, budget_s=30.0)
    assert not p.extrapolated
    assert p.updates_per_repeat == p.updates_per_epoch == 3
    # Each repeat is one epoch; its per-update time is the epoch time / updates.
    assert p.per_epoch_s == pytest.approx(statistics.median(p.per_update_s) * 3)


def test_full_batch_is_one_update_per_epoch(data):
    p = point(data, "resident", batch_size="full", budget_s=30.0)
    assert p.batch_size == 48 and p.updates_per_epoch == 1 and not p.extrapolated


def test_batch_larger_than_n_grows_the_timed_set(data):
    p = point(data, "resident", batch_size=64)
    assert p.n_examples == 64 and p.updates_per_epoch == 1


def test_dataset_too_small_gives_synthetic_data_and_says_why():
    timed = make_timing_data("mnist-5k", 4001)
    assert timed.synthetic and timed.n == 4001
    assert "4,000 training examples" in timed.reason
    assert timed.x.shape == (4001, 1, 28, 28) and timed.y.max() < 10


def test_dataset_large_enough_gives_its_real_examples():
    timed = make_timing_data("mnist-5k", 100)
    assert not timed.synthetic and timed.n == 100
    assert 0.0 <= timed.x.min() and timed.x.max() <= 1.0
    assert timed.x.max() == 1.0  # real pixels reach 255


def test_measure_point_flags_synthetic_only_when_n_exceeds_the_dataset():
    real = measure_point("resident", "mlp", 10, 40, CPU, 5, 1, 1e-6, dataset="mnist-5k", hidden=TINY)
    assert not real.synthetic_data
    fake = measure_point("resident", "mlp", 4500, 40, CPU, 5, 1, 1e-6, dataset="mnist-5k", hidden=TINY)
    assert fake.synthetic_data and fake.n_examples == 4500
    assert any("synthetic" in note for note in fake.notes)


def test_resident_batches_walk_a_new_permutation_every_epoch():
    batches = ResidentBatches(10, 3, seed=4, device=CPU)
    assert batches.updates_per_epoch == 4
    epochs = []
    for _ in range(2):
        epochs.append(torch.cat([batches.next() for _ in range(batches.updates_per_epoch)]))
    for epoch, order in enumerate(epochs):
        assert torch.equal(order, epoch_permutation(10, epoch, 4, "epoch"))  # the trainer's order
        assert sorted(order.tolist()) == list(range(10))
    assert not torch.equal(epochs[0], epochs[1])
    assert batches.examples_seen == 20


@pytest.mark.parametrize("path", ["dataloader", "resident"])
def test_one_epoch_of_steps_sees_every_example_once(data, path):
    runner = build_path(path, "mlp", data, 5, CPU, hidden=TINY)
    assert runner.updates_per_epoch == 10  # 48 = 9 × 5 + 3: the short last batch is kept
    for _ in range(runner.updates_per_epoch):
        runner.step()
    assert runner.examples_seen == data.n
    runner.step()  # wraps into the next epoch
    assert runner.examples_seen == data.n + 5


def test_dataloader_path_is_the_plain_pytorch_loader(data):
    runner = build_path("dataloader", "mlp", data, 8, CPU, hidden=TINY, num_workers=0)
    assert isinstance(runner, DataLoaderPath)
    assert isinstance(runner.loader.sampler, torch.utils.data.RandomSampler)
    assert runner.loader.batch_size == 8


def test_paths_start_from_the_same_seeded_weights(data):
    first = build_path("dataloader", "mlp", data, 8, CPU, hidden=TINY, seed=3)
    second = build_path("resident", "mlp", data, 8, CPU, hidden=TINY, seed=3)
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)


def test_updates_move_the_weights(data):
    runner = build_path("resident", "mlp", data, 8, CPU, hidden=TINY)
    before = [p.detach().clone() for p in runner.model.parameters()]
    runner.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, runner.model.parameters()))


def test_cuda_graph_on_the_cpu_is_refused_with_a_clear_message(data):
    with pytest.raises(ConfigError, match="cuda-graph needs a CUDA device; allowed on cpu: dataloader, resident"):
        point(data, "cuda-graph")


def test_sweep_skips_cuda_graph_on_the_cpu_and_says_so(monkeypatch, data):
    # As on a GPU machine, where cuda-graph is asked for and the CPU series cannot run it.
    monkeypatch.setattr(harness, "check_paths", lambda paths, devices: ("resident", "cuda-graph"))
    monkeypatch.setattr(timed_task, "make_timing_data", lambda *a, **k: data)
    table = timing_sweep(["resident", "cuda-graph"], [16], "cpu", n_examples=48, budget_s=1e-6, warmup=1, hidden=TINY)
    assert [p.path for p in table.points] == ["resident"]
    assert table.skipped == [{"path": "cuda-graph", "device": "cpu", "reason": "cuda-graph needs a CUDA device"}]
    assert "cuda-graph (cpu): skipped, cuda-graph needs a CUDA device." in table.notes


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only machine's message")
def test_asking_for_cuda_graph_without_cuda_is_an_error():
    with pytest.raises(ConfigError, match="cuda-graph needs a CUDA device; allowed on this machine: dataloader, resident"):
        timing_sweep(["cuda-graph"], [1], "auto")


def test_sweep_table_has_every_point_and_footnotes(monkeypatch, data):
    monkeypatch.setattr(timed_task, "make_timing_data", lambda *a, **k: data)
    table = timing_sweep(None, [1, 16, "full", 100], "cpu", n_examples=48, budget_s=1e-6, warmup=1, hidden=TINY)
    assert table.settings["batch_sizes"] == [1, 16, 48]
    assert {(p.path, p.batch_size) for p in table.points} == {
        (path, b) for path in ("dataloader", "resident") for b in (1, 16, 48)
    }
    assert "cpu" in table.environments and table.environments["cpu"]["torch"] == torch.__version__
    text = "\n".join(table.notes)
    assert "extrapolated" in text and "synthetic" in text and "capped at 48" in text
    rendered = format_timing_table(table)
    assert "time/update median [q25–q75]" in rendered and "yes†" in rendered


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"repeats": 4}, "repeats 4 is too few"),
        ({"warmup": 0}, "warm-up 0 is invalid"),
        ({"budget_s": 0.0}, "budget 0.0 s is invalid"),
        ({"num_workers": -1}, "num_workers -1 is invalid"),
    ],
)
def test_bad_settings_are_one_line_errors(data, kwargs, message):
    settings = {"repeats": 5, "warmup": 1, "budget_s": 1e-6} | kwargs
    with pytest.raises(ConfigError, match=message):
        measure_point("resident", "mlp", 8, 48, CPU, settings["repeats"], settings["warmup"], settings["budget_s"],
                      data=data, hidden=TINY, num_workers=kwargs.get("num_workers", 0))


@pytest.mark.parametrize("sizes, message", [([0], "too small"), (["1.5"], "not an integer"), ([], "no batch sizes")])
def test_bad_batch_sizes_are_one_line_errors(sizes, message):
    with pytest.raises(ConfigError, match=message):
        resolve_batch_sizes(sizes, 100)


def test_unknown_path_is_an_error(data):
    with pytest.raises(ConfigError, match="unknown timing path 'gpu'; allowed: dataloader, resident, cuda-graph"):
        point(data, "gpu")


def test_updates_in_budget_rule():
    assert updates_in_budget(0.001, 1.0, 5, 1000) == 200
    assert updates_in_budget(10.0, 1.0, 5, 1000) == 1  # always at least one update
    assert updates_in_budget(1e-6, 1.0, 5, 60) == 60  # never more than an epoch


def test_table_round_trips_through_json_and_the_store(tmp_path, monkeypatch, data):
    from batchlab.store import RunStore

    monkeypatch.setattr(timed_task, "make_timing_data", lambda *a, **k: data)
    table = timing_sweep(["resident"], [8, 48], "cpu", n_examples=48, budget_s=1e-6, warmup=1, hidden=TINY)
    again = TimingTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert again.points == table.points and again.notes == table.notes
    with RunStore(tmp_path / "runs.db") as store:
        for row in table.store_rows():
            store.add_timing(row)
        rows = store.timings(data_path="resident")
    assert [r["batch_size"] for r in rows] == [8, 48]
    assert rows[0]["per_update_median_s"] == pytest.approx(table.points[0].per_update_median_s)
    assert rows[0]["extrapolated"] is True and rows[0]["synthetic_data"] is True
    assert rows[0]["repeats"] == 5 and rows[0]["environment"]["torch"] == torch.__version__
    rebuilt = TimingTable.from_store_rows(rows)
    assert rebuilt.points == table.points


def test_plot_has_both_panels_and_the_lecture_reference(data):
    table = TimingTable(points=[point(data, "resident", b) for b in (1, 8)])
    figure = plot_timing(table, lecture_reference=True)
    assert isinstance(figure, Figure)
    update_axis, epoch_axis = figure.axes[:2]
    assert update_axis.get_xscale() == "log" and epoch_axis.get_yscale() == "log"
    labels = [line.get_label() for line in update_axis.get_lines()]
    assert any("V100" in label for label in labels)
    reference = next(line for line in update_axis.get_lines() if "V100" in line.get_label())
    assert list(reference.get_ydata()) == [LECTURE_V100_TIMES[b][0] for b in sorted(LECTURE_V100_TIMES)]
    without = plot_timing(table, lecture_reference=False)
    assert not any("V100" in line.get_label() for line in without.axes[0].get_lines())


def test_point_from_store_row_written_by_other_code():
    row = {"device": "cuda", "device_name": "GPU", "data_path": "resident", "model": "mlp", "batch_size": 100,
           "n_examples": 60000, "per_update_median_s": 0.001, "per_update_q25_s": 0.001, "per_update_q75_s": 0.001,
           "per_epoch_s": 0.6, "extrapolated": True, "synthetic_data": False, "extra": {}}
    p = TimingPoint.from_store_row(row)
    assert p.updates_per_epoch == 600 and p.per_update_median_s == 0.001


@pytest.mark.parametrize(
    "seconds, text",
    [(3.2e-6, "3.20 µs"), (4.1e-4, "410 µs"), (0.0125, "12.5 ms"), (3.4, "3.40 s"), (364.0, "6.07 min"), (None, "—")],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_per_update_values_are_finite_and_positive(data):
    p = point(data, "dataloader")
    assert all(math.isfinite(v) and v > 0 for v in p.per_update_s)


@pytest.mark.parametrize("lam", [0.9, 0.0])
def test_capturable_step_trains_exactly_like_the_lecture_momentum_optimizer(data, lam):
    """The step the cuda-graph path captures, run eagerly, against batchlab.optim.Momentum."""
    from batchlab.optim import Momentum
    from batchlab.timing.paths import CapturableStep, build_timed_model
    from torch.nn import functional as F

    captured = CapturableStep(build_timed_model("mlp", data, CPU, 5, TINY), data.x, data.y, lr=0.05, momentum=lam)
    eager = build_timed_model("mlp", data, CPU, 5, TINY)
    optimizer = Momentum(eager.parameters(), lr=0.05, momentum=lam)
    batches = ResidentBatches(data.n, 8, seed=5, device=CPU)
    for _ in range(8):
        index = batches.next()
        captured.model.zero_grad(set_to_none=True)  # as before a capture: backward assigns grads
        captured(index)
        loss = F.cross_entropy(eager(data.x[index]), data.y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    for a, b in zip(captured.model.parameters(), eager.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    if lam:
        for buffer, param in zip(captured.buffers, eager.parameters()):
            torch.testing.assert_close(buffer, optimizer.state[param]["momentum_buffer"], rtol=1e-6, atol=1e-7)


def test_capturable_step_of_a_regression_task_trains_like_momentum_on_its_loss():
    """What the cuda-graph path captures for a user's task, run eagerly: the task's MSE, not cross-entropy."""
    from torch.nn import functional as F

    from batchlab.optim import Momentum
    from batchlab.task import Task
    from batchlab.timing.paths import CapturableStep, build_timed_model
    from batchlab.timing.timed_task import TimedTask
    from batchlab.timing.workload import task_timing_data

    x, _, x_val, _ = _blobs()
    task = Task(lambda: torch.nn.Linear(4, 1), (x, x.sum(1, keepdim=True), x_val, x_val.sum(1, keepdim=True)),
                name="line", loss=F.mse_loss)
    timed = TimedTask.from_task(task)
    data = task_timing_data(task, task.n_train)
    captured = CapturableStep(build_timed_model(timed, data, CPU, 5), data.x, data.y, lr=0.05, momentum=0.9,
                              loss=timed.loss)
    eager = build_timed_model(timed, data, CPU, 5)
    optimizer = Momentum(eager.parameters(), lr=0.05, momentum=0.9)
    batches = ResidentBatches(data.n, 8, seed=5, device=CPU)
    for _ in range(8):
        index = batches.next()
        captured.model.zero_grad(set_to_none=True)
        captured(index)
        loss = F.mse_loss(eager(data.x[index]), data.y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    for a, b in zip(captured.model.parameters(), eager.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_optimizer_without_momentum_is_timed_with_lambda_zero(data):
    p = point(data, "resident", optimizer="adam")
    assert p.optimizer == "adam" and p.repeats == 5


def test_an_optimizer_that_needs_a_runs_epoch_length_is_refused_before_anything_is_timed():
    with pytest.raises(ConfigError, match=r"'rmsprop-warmup' needs a run's epoch length.*allowed: momentum, sgd"):
        timing_sweep(["resident"], [8], "cpu", n_examples=48, optimizer="rmsprop-warmup", hidden=TINY)



def test_busy_machine_note_only_when_other_processes_compete():
    from batchlab.timing.harness import busy_machine_note

    assert busy_machine_note(0.4, 2.3, 2, own_threads=2) is None  # the timing's own threads
    assert busy_machine_note(None, None, 2, own_threads=2) is None
    assert busy_machine_note(6.0, 9.0, 16, own_threads=2) is None  # < half of 16 cores
    note = busy_machine_note(0.5, 5.25, 2, own_threads=2)
    assert note is not None and "load of about 3.2 on 2 cores" in note
    assert busy_machine_note(1.5, 1.0, 2, own_threads=2) is not None


def test_batch_norm_models_skip_batches_of_one_example(monkeypatch, data):
    monkeypatch.setattr(timed_task, "make_timing_data", lambda *a, **k: data)
    table = timing_sweep(["resident"], [1, 16], "cpu", model="keskar-f1", n_examples=48, budget_s=1e-6,
                         warmup=1, hidden=TINY)
    assert [p.batch_size for p in table.points] == [16]
    assert table.skipped[0]["batch_size"] == 1 and "batch normalization" in table.skipped[0]["reason"]
    with pytest.raises(ConfigError, match="B = 47 over N = 48 gives a batch of 1"):
        measure_point("resident", "keskar-f1", 47, 48, CPU, 5, 1, 1e-6, data=data, hidden=TINY)


def test_any_registered_model_and_image_shape_can_be_timed():
    cifar_shaped = synthetic_data("cifar10", (3, 32, 32), 10, 12, reason="test")
    p = measure_point("resident", "cnn", 4, 12, CPU, 5, 1, 1e-6, data=cifar_shaped, hidden=TINY)
    assert p.model == "cnn" and p.dataset == "cifar10" and p.updates_per_epoch == 3


def test_lecture_epoch_times_are_scaled_to_the_n_timed_or_labelled_as_the_lectures():
    from batchlab.timing.lecture import LECTURE_N_EXAMPLES, lecture_epoch_label, lecture_epoch_times

    assert lecture_epoch_times(None) == {b: e for b, (_, e) in LECTURE_V100_TIMES.items()}
    assert "the lecture's N = 60,000" in lecture_epoch_label(LECTURE_N_EXAMPLES)
    scaled = lecture_epoch_times(6000)
    assert 10000 not in scaled and scaled[10] == pytest.approx(LECTURE_V100_TIMES[10][0] * 600)
    assert "N = 6,000" in lecture_epoch_label(6000)


def test_sweep_interleaves_the_repeats_of_every_path_and_batch_size(monkeypatch):
    from batchlab.timing import harness

    order = []
    original = harness._PreparedPoint.repeat

    def recording(self, rewarm):
        order.append((self.path, self.batch_size))
        original(self, rewarm)

    monkeypatch.setattr(harness._PreparedPoint, "repeat", recording)
    table = timing_sweep(["resident", "dataloader"], [8, 16], "cpu", n_examples=48, budget_s=1e-6, warmup=1,
                         hidden=TINY, repeats=5)
    points = {(p.path, p.batch_size) for p in table.points}
    assert len(points) == 4 and all(p.repeats == 5 for p in table.points)
    rounds = [order[i:i + 4] for i in range(0, len(order), 4)]
    assert len(rounds) == 5 and all(set(r) == points for r in rounds)  # every point once per round
    assert len({r[0] for r in rounds}) == 4  # each round starts one point further on


# ----------------------------------------------------------------------------- a user's task


def _blobs(n=48, features=4, classes=3):
    generator = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(classes, features, generator=generator)
    y = torch.randint(0, classes, (2 * n,), generator=generator)
    x = centres[y] + torch.randn(2 * n, features, generator=generator)
    return x[:n], y[:n], x[n:], y[n:]


def _classifier(width=16):
    def make_model():
        return torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.Tanh(), torch.nn.Linear(width, 3))

    return make_model


@pytest.fixture(scope="module")
def user_task():
    from batchlab.task import Task

    return Task(_classifier(), _blobs(), name="blob-net", data_name="blobs")


def _sweep(**kwargs):
    settings = {"budget_s": 1e-6, "warmup": 1} | kwargs
    return timing_sweep(settings.pop("paths", ["resident", "dataloader"]), settings.pop("sizes", [4, "full"]),
                        "cpu", **settings)


def test_a_user_task_is_timed_on_its_own_examples_and_named_with_its_fingerprints(user_task):
    table = _sweep(task=user_task)
    assert {(p.path, p.batch_size) for p in table.points} == {
        (path, b) for path in ("resident", "dataloader") for b in (4, 48)}  # N = the task's 48 examples
    model_short = model_digest(user_task.model_fingerprint)
    data_short = user_task.data_fingerprint["sha256"][:8]
    for p in table.points:
        assert (p.model, p.dataset, p.network, p.loss) == ("user:blob-net", "user:blobs", "user:blob-net",
                                                           "cross_entropy")
        assert (p.model_fingerprint, p.data_fingerprint) == (model_short, data_short)
        assert p.n_examples == 48 and not p.synthetic_data and p.updates_per_epoch == (12 if p.batch_size == 4 else 1)
    assert table.settings["model_fingerprint"] == model_short and table.settings["data_fingerprint"] == data_short
    rendered = format_timing_table(table)
    assert f"timed: user:blob-net·{model_short} on user:blobs·{data_short}, loss cross_entropy" in rendered


def test_a_regression_task_times_updates_of_its_own_loss():
    from torch.nn import functional as F

    from batchlab.task import Task

    calls = []

    def squared_error(outputs, targets):
        calls.append(outputs.shape[0])
        return F.mse_loss(outputs, targets)

    def mean_abs(outputs, targets):
        return (outputs - targets).abs().mean()

    x, _, x_val, _ = _blobs()
    task = Task(lambda: torch.nn.Linear(4, 1), (x, x.sum(1, keepdim=True), x_val, x_val.sum(1, keepdim=True)),
                name="line", data_name="sums", loss=squared_error, metric=mean_abs)
    calls.clear()  # the task's own checks ran the loss on a first batch
    table = _sweep(task=task, paths=["resident"], sizes=[16])
    (p,) = table.points
    assert p.loss == "squared_error" and p.n_examples == 48
    # Every warm-up, estimate and timed update differentiated the task's loss on a batch of 16.
    assert calls and set(calls) == {16} and len(calls) >= p.warmup_updates + p.repeats * p.updates_per_repeat


def test_a_task_with_fewer_examples_than_n_is_repeated_up_to_n_and_says_so(user_task):
    from batchlab.timing.workload import task_timing_data

    data = task_timing_data(user_task, 100)
    x = user_task.data.splits["train"].x
    assert data.n == 100 and data.synthetic and "repeated in order up to 100" in data.reason
    assert torch.equal(data.x[48:96], x) and torch.equal(data.x[96:], x[:4])
    table = _sweep(task=user_task, paths=["resident"], sizes=[50], n_examples=100)
    assert table.points[0].synthetic_data
    assert any("user's training examples repeated in order up to N = 100" in note for note in table.notes)
    assert not any("random data" in note for note in table.notes)


@pytest.mark.parametrize("registry", [{"model": "cnn"}, {"dataset": "mnist-5k"}, {"hidden": (8,)},
                                      {"data_dir": "x"}])
def test_registry_arguments_beside_a_task_are_refused(user_task, registry):
    (name, value), = registry.items()
    with pytest.raises(ConfigError, match=re.escape(f"{name}={value!r} chooses the registry's model or data, which "
                                                    "task= replaces; allowed: task= without it")):
        _sweep(task=user_task, **registry)


def test_measure_point_takes_a_task_under_its_own_model_name(user_task):
    p = measure_point("resident", user_task.model_id, 8, 48, CPU, 5, 1, 1e-6, task=user_task)
    assert p.model == "user:blob-net" and p.data_fingerprint
    with pytest.raises(ConfigError, match="model='mlp' chooses"):
        measure_point("resident", "mlp", 8, 48, CPU, 5, 1, 1e-6, task=user_task)


def test_a_user_model_with_batch_norm_skips_batches_of_one():
    from batchlab.task import Task

    task = Task(lambda: torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3)),
                _blobs(), name="bn-net")
    table = _sweep(task=task, paths=["resident"], sizes=[1, 8])
    assert [p.batch_size for p in table.points] == [8]
    assert "user:bn-net has batch normalization" in table.skipped[0]["reason"]


def test_two_versions_of_a_user_model_never_make_one_curve(tmp_path, user_task):
    from batchlab.store import RunStore
    from batchlab.task import Task

    wider = Task(_classifier(width=32), _blobs(), name="blob-net", data_name="blobs")  # same names, new network
    points = [*_sweep(task=user_task, paths=["resident"]).points, *_sweep(task=wider, paths=["resident"]).points]
    with RunStore(tmp_path / "runs.db") as store:
        for p in points:
            store.add_timing(p.to_store_row())
        rows = store.timings(model="user:blob-net")
    table = TimingTable.from_store_rows(rows)
    assert table.points == points
    assert len(table.series()) == 2 and len(table.workloads()) == 2
    handles, labels = plot_timing(table).axes[0].get_legend_handles_labels()
    assert len(labels) == 3 and len(set(labels)) == 3  # two networks and the lecture's
    lines = [handle for handle, label in zip(handles, labels) if "blob-net" in label]
    labels = [label for label in labels if "blob-net" in label]
    assert lines[0][0].get_marker() != lines[1][0].get_marker()  # markers tell the networks apart
    assert all(label.startswith("user:blob-net·") and label.endswith(", resident path, " + points[0].device_name)
               for label in labels)
    assert format_timing_table(table).splitlines()[0].startswith("network")


def test_every_curve_names_its_network_and_the_lecture_line_says_it_is_another(data):
    from batchlab.timing.plot import curve_label

    table = TimingTable(points=[point(data, "resident", b) for b in (1, 8)])
    labels = plot_timing(table).axes[0].get_legend_handles_labels()[1]
    measured = curve_label(table.points[0])
    assert measured == f"784-8-10 mlp, resident path, {table.points[0].device_name}"
    assert measured in labels
    lecture = [label for label in labels if "V100" in label]
    assert lecture == ["lecture: its own network on a Tesla V100 (read off the slides)"]
    epoch_labels = plot_timing(table).axes[1].get_legend_handles_labels()[1]
    assert measured in epoch_labels and any(label.startswith("lecture: its own network") for label in epoch_labels)


def test_a_user_cnn_on_images_of_its_own_shape_is_timed():
    from batchlab.task import Task

    def make_cnn():
        return torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                   torch.nn.Linear(4 * 6 * 6, 5))

    generator = torch.Generator().manual_seed(1)
    x, y = torch.rand(40, 2, 6, 6, generator=generator), torch.randint(0, 5, (40,), generator=generator)
    table = _sweep(task=Task(make_cnn, (x[:30], y[:30], x[30:], y[30:]), name="tiny-cnn"), sizes=[8])
    assert {p.path for p in table.points} == {"resident", "dataloader"}
    assert all(p.model == "user:tiny-cnn" and p.n_examples == 30 and p.updates_per_epoch == 4 for p in table.points)
