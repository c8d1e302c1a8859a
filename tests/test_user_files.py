"""Model and data files that import modules beside them (``from helpers import make_layers``), as
``python net.py`` would let them: in this process, on ``--nproc`` ranks and on Ray workers; a
module that is still missing is one line naming the file and the module; ``sys.path`` is left as
it was."""

from __future__ import annotations

import sys

import pytest

from batchlab.cli import main
from batchlab.store import RunStore
from batchlab.store.status import is_result
from batchlab.task.files import neighbour_modules, task_from_files

HELPERS = """
from torch import nn

def make_layers(width):
    return nn.Sequential(nn.Linear(4, width), nn.Tanh(), nn.Linear(width, 3))
"""

MODEL = """
from torch import nn

from helpers import make_layers  # a module beside this file


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = make_layers(16)

    def forward(self, x):
        return self.layers(x)


def make_model():
    return Net()


def make_lazy_model():
    from blocks.widths import WIDTH  # imported only when the factory runs, from a package beside it

    return make_layers(WIDTH)
"""

DATA = """
import torch

from points import blobs  # a module beside this file, in another folder than the model's

def load_data():
    return blobs()
"""

POINTS = """
import torch

def blobs():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(96, 4, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()  # three classes by quadrant
    return x[:48], y[:48], x[48:72], y[48:72], x[72:], y[72:]
"""


@pytest.fixture
def files(tmp_path, monkeypatch):
    """``--model-file``/``--data-file`` flags of files in two folders, each importing a neighbour,
    run from a third folder (the files' folders are not the working directory)."""
    model_dir, data_dir, elsewhere = tmp_path / "model", tmp_path / "data", tmp_path / "elsewhere"
    for folder in (model_dir / "blocks", data_dir, elsewhere):
        folder.mkdir(parents=True)
    (model_dir / "net.py").write_text(MODEL)
    (model_dir / "helpers.py").write_text(HELPERS)
    (model_dir / "blocks" / "__init__.py").write_text("")
    (model_dir / "blocks" / "widths.py").write_text("WIDTH = 8\n")
    (data_dir / "dataset.py").write_text(DATA)
    (data_dir / "points.py").write_text(POINTS)
    monkeypatch.chdir(elsewhere)
    # Each test imports the neighbours afresh, as a new process would.
    for name in ("helpers", "points", "blocks", "blocks.widths"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return model_dir, data_dir


def flags(model_dir, data_dir, factory="make_model"):
    return ["--model-file", f"{model_dir}/net.py:{factory}", "--data-file", f"{data_dir}/dataset.py:load_data"]


def train(store, *extra):
    return main(["train", *extra, "--batch-size", "16", "--epochs", "2", "--device", "cpu", "--no-progress",
                 "--store", str(store)])


def test_files_import_their_neighbours_and_sys_path_is_left_as_it_was(files, tmp_path, capsys):
    model_dir, data_dir = files
    path_before = list(sys.path)
    assert train(tmp_path / "r.db", *flags(model_dir, data_dir)) == 0
    assert ", trained;" in capsys.readouterr().out
    assert sys.path == path_before
    # A neighbour imported only when the factory runs is found too.
    assert train(tmp_path / "r.db", *flags(model_dir, data_dir, "make_lazy_model")) == 0
    assert ", trained;" in capsys.readouterr().out
    assert sys.path == path_before
    with RunStore(tmp_path / "r.db") as store:
        assert sorted(r.config["model"] for r in store.runs()) == ["user:net.make_lazy_model", "user:net.make_model"]


def test_the_neighbours_are_the_modules_imported_from_the_files_folders(files):
    model_dir, data_dir = files
    task_from_files(f"{model_dir}/net.py:make_lazy_model", f"{data_dir}/dataset.py:load_data")
    found = neighbour_modules([model_dir, data_dir])
    assert sorted(found) == ["blocks/__init__.py", "blocks/widths.py", "helpers.py", "points.py"]
    assert found["helpers.py"] == (model_dir / "helpers.py").resolve()
    # torch lives elsewhere; a folder that holds nothing imported gives nothing
    assert neighbour_modules([data_dir / "nothing"]) == {}


def test_a_missing_neighbour_is_one_line_naming_the_file_and_the_module(files, tmp_path, one_error_line):
    model_dir, data_dir = files
    (model_dir / "helpers.py").unlink()
    assert train(tmp_path / "r.db", *flags(model_dir, data_dir)) == 2
    error = one_error_line()
    assert f"--model-file: importing {model_dir}/net.py failed: no module named 'helpers'" in error
    assert f"beside the file (in {model_dir.resolve()})" in error
    assert not (tmp_path / "r.db").exists()


@pytest.mark.slow
@pytest.mark.distributed
def test_ranks_of_nproc_import_the_neighbours_too(files, tmp_path, capsys):
    model_dir, data_dir = files
    assert train(tmp_path / "r.db", *flags(model_dir, data_dir), "--nproc", "2") == 0
    capsys.readouterr()
    with RunStore(tmp_path / "r.db") as store:
        (run,) = store.runs()
    assert run.status == "finished" and run.environment["data_parallel"]["processes"] == 2


@pytest.mark.slow
@pytest.mark.distributed
def test_ray_workers_get_the_neighbours_shipped_with_the_task(files, tmp_path, capsys):
    pytest.importorskip("ray")
    model_dir, data_dir = files
    common = ["sweep", *flags(model_dir, data_dir, "make_lazy_model"), "--batch-size", "8", "16", "--epochs", "1",
              "--device", "cpu", "--no-progress"]
    assert main([*common, "--executor", "ray", "--ray-cpus", "2", "--store", str(tmp_path / "ray.db")]) == 0
    out = capsys.readouterr().out
    assert "2 run(s): 2 trained" in out and "failed: 0" in out
    assert main([*common, "--packing", "sequential", "--store", str(tmp_path / "local.db")]) == 0
    capsys.readouterr()
    with RunStore(tmp_path / "ray.db") as on_ray, RunStore(tmp_path / "local.db") as local:
        assert {r.run_id for r in on_ray.runs()} == {r.run_id for r in local.runs()}
        # Trained, as locally (one epoch of this tiny model may end "failed to train": a result too).
        statuses = {r.run_id: r.status for r in on_ray.runs()}
        assert statuses == {r.run_id: r.status for r in local.runs()}
        assert all(is_result(status) for status in statuses.values()), statuses
