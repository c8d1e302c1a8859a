"""Fixtures and helpers shared by several test modules.

Helpers that tests call directly (not through a fixture) are imported by name:
``from conftest import config``.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from batchlab.store import RunStore

# A run's config as the store keeps it: the lecture's MLP on mnist-5k, two epochs, on the CPU.
STORED_CONFIG: dict[str, Any] = {
    "dataset": "mnist-5k", "model": "mlp", "optimizer": "momentum", "batch_size": 64, "lr": 0.1,
    "momentum": 0.0, "seed": 0, "epochs": 2, "hidden": None, "device": "cpu",
}


def config(**changes: Any) -> dict[str, Any]:
    """A stored run's config dict (:data:`STORED_CONFIG`) with ``changes`` applied."""
    return STORED_CONFIG | changes


@pytest.fixture
def store(tmp_path) -> Iterator[RunStore]:
    """An empty run store at ``tmp_path/runs.db``, open for the test."""
    with RunStore(tmp_path / "runs.db") as opened:
        yield opened


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module of tiny tensors: extra threads only add synchronization
    (and stall on a busy machine). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def one_error_line(capsys: pytest.CaptureFixture[str]) -> Callable[[], str]:
    """``one_error_line()``: what the CLI wrote to stderr so far, checked to be one
    ``batchlab: error: …`` line."""

    def read() -> str:
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert err.startswith("batchlab: error: ")
        return err

    return read


USER_MODEL_FILE = """
from torch import nn

class Net(nn.Module):  # a class defined in the file: processes and workers must get it too
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x):
        return self.layers(x)

def make_model():
    return Net()
"""

USER_DATA_FILE = """
import torch

def load_data():
    generator = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(3, 4, generator=generator)
    y = torch.randint(0, 3, (96,), generator=generator)
    x = centres[y] + torch.randn(96, 4, generator=generator)
    return x[:48], y[:48], x[48:72], y[48:72], x[72:], y[72:]
"""


# A regression model file: one linear output trained with the mean squared error.
REGRESSION_MODEL_FILE = """
from torch import nn

loss = "mse"

def make_model():
    return nn.Linear(4, 1)
"""


def write_user_files(folder: Path, model: str = USER_MODEL_FILE, data: str = USER_DATA_FILE) -> list[str]:
    """Write a model file ``net.py`` and a data file ``blobs.py`` into ``folder``; their
    ``--model-file``/``--data-file`` flags."""
    (folder / "net.py").write_text(model)
    (folder / "blobs.py").write_text(data)
    return ["--model-file", f"{folder}/net.py:make_model", "--data-file", f"{folder}/blobs.py:load_data"]


def strict_json(text: str) -> Any:
    """``text`` parsed as JSON that has no NaN or Infinity (an AssertionError if it has)."""
    def reject(constant: str):
        raise AssertionError(f"{constant} in JSON output")

    return json.loads(text, parse_constant=reject)


def checked_task_identity(identity: dict[str, Any], flags: list[str]):
    """The task of ``flags`` (``--model-file``/``--data-file``), after checking that an
    experiment's record entry ``identity`` names it: names, short fingerprints, the model file."""
    from batchlab.store.identity import data_digest, model_digest
    from batchlab.task.files import task_from_files

    task = task_from_files(flags[1], flags[3])
    assert identity["model"] == task.model_id and identity["data"] == task.dataset_id
    assert identity["model_fingerprint"] == model_digest(task.model_fingerprint)
    assert identity["data_fingerprint"] == data_digest(task.data_fingerprint)
    assert identity["origin"]["model_file"].endswith("net.py:make_model")
    return task


@pytest.fixture
def user_model_flags(tmp_path):
    """``--model-file``/``--data-file`` flags of a small user model (a class defined in its file)
    and 48/24/24 examples of three Gaussian blobs, written to ``tmp_path``."""
    return write_user_files(tmp_path)


README = Path(__file__).resolve().parents[1] / "README.md"
README_FILE_BLOCK = re.compile(r"^```python file=(\S+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
README_SHELL_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def write_readme_files(folder: Path) -> list[str]:
    """Write the README's model and data files (its ```python file=NAME blocks) into ``folder``
    and return their names; the modules they import beside them are dropped from
    ``sys.modules``, so they are found again in ``folder``, as a new process would."""
    text = README.read_text(encoding="utf-8")
    names = []
    for name, code in README_FILE_BLOCK.findall(text):
        (folder / name).write_text(code, encoding="utf-8")
        sys.modules.pop(Path(name).stem, None)
        names.append(name)
    return names


def readme_file_commands() -> list[list[str]]:
    """The README's ``batchlab …`` command lines (in ```sh blocks) that use ``--model-file``, each
    as the arguments after ``batchlab``."""
    text = README.read_text(encoding="utf-8")
    lines = [line for block in README_SHELL_BLOCK.findall(text) for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("batchlab ") and "--model-file" in line]


def tiny_largebatch_setting(**changes):
    """largebatch's quick scale shrunk so that every row trains in a few seconds: keskar-f1 with one
    hidden layer of 8 on 1,000 mnist-5k digits, SB = 50 vs LB = 250; ``changes`` replace fields (a
    user's small data needs smaller batches)."""
    from dataclasses import replace

    from batchlab.experiments.largebatch.experiment import Setting

    setting = Setting(dataset="mnist-5k", train_subset=1000, model="keskar-f1", hidden=(8,), small_batch=50,
                      large_batch=250, epochs=3, lr=0.05, momentum=0.9, warmup_epochs=1.0, lars_trust=0.01,
                      lamb_lr=0.005, swap_target=0.5, swap_workers=2, swap_epochs=1, sharpness_examples=100,
                      lr_grid=(0.025, 0.05, 0.1), lr_extension_cap=1)
    return replace(setting, **changes)
