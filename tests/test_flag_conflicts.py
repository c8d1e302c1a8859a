"""One rule for a user's files beside the registry's options: every command that takes
``--model-file``/``--data-file`` refuses ``--model``, ``--dataset``, ``--hidden``, … given with
them, with the same one line naming only the flags given, before anything is imported or stored."""

from __future__ import annotations

import pytest

from batchlab.cli import main
from batchlab.task.options import REGISTRY_OPTIONS

FILES = ["--model-file", "net.py:make_model", "--data-file", "blobs.py:load_data"]
COMMANDS = {
    "train": ["train", "--device", "cpu", "--no-progress"],
    "sweep": ["sweep", "--batch-size", "8", "--device", "cpu", "--no-progress"],
    "advise": ["advise", "--batch-size", "8", "--device", "cpu", "--no-progress"],
    # the entry torchrun starts: `torchrun … -m batchlab.distributed <train flags>`
    "torchrun": ["-m batchlab.distributed", "--device", "cpu", "--no-progress"],
}


def cli(argv):
    if argv[0] == "-m batchlab.distributed":
        from batchlab.distributed.__main__ import main as entry

        return entry(argv[1:])
    return main(argv)
# Each registry option with a value, and the text the message shows for it.
GIVEN = {
    "--model": (["--model", "cnn"], "--model cnn"),
    "--dataset": (["--dataset", "mnist-5k"], "--dataset mnist-5k"),
    "--hidden": (["--hidden", "16", "16"], "--hidden 16 16"),
    "--val-fraction": (["--val-fraction", "0.2"], "--val-fraction 0.2"),
    "--split-seed": (["--split-seed", "3"], "--split-seed 3"),
    "--data-dir": (["--data-dir", "somewhere"], "--data-dir somewhere"),
}


def error_of(argv, capsys, tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)  # the files named need not exist: the rule comes first
    assert cli([*argv, "--store", str(tmp_path / "r.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("batchlab: error: "), err
    assert not (tmp_path / "r.db").exists()
    return err.strip().removeprefix("batchlab: error: ")


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("flag", sorted(GIVEN))
def test_a_registry_option_with_the_files_is_refused_alike_everywhere(command, flag, capsys, tmp_path, monkeypatch):
    argv, shown = GIVEN[flag]
    error = error_of([*COMMANDS[command], *argv, *FILES], capsys, tmp_path, monkeypatch)
    assert error == (f"{shown} chooses the registry's model or data, which --model-file and --data-file "
                     "replace; allowed: the files without it, or it without the files")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_several_registry_options_are_named_together(command, capsys, tmp_path, monkeypatch):
    error = error_of([*COMMANDS[command], "--model", "cnn", "--hidden", "8", *FILES], capsys, tmp_path, monkeypatch)
    assert error.startswith("--model cnn, --hidden 8 choose the registry's model or data")
    assert error.endswith("allowed: the files without them, or them without the files")


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("given, missing", [("--model-file", "--data-file"), ("--data-file", "--model-file")])
def test_one_file_without_the_other_names_the_one_given_and_the_one_missing(command, given, missing, capsys,
                                                                            tmp_path, monkeypatch):
    error = error_of([*COMMANDS[command], given, "x.py:f"], capsys, tmp_path, monkeypatch)
    assert error.startswith(f"{given} needs {missing}")


def test_every_registry_option_is_in_the_table():
    # train's --train-subset does not exist; the experiment commands take it
    assert set(GIVEN) == set(REGISTRY_OPTIONS) - {"--train-subset"}


def test_registry_options_without_the_files_still_train_the_registry_model(tmp_path, capsys):
    assert main(["train", "--model", "mlp", "--hidden", "8", "--dataset", "mnist-5k", "--epochs", "1",
                 "--batch-size", "500", "--device", "cpu", "--no-progress", "--store", str(tmp_path / "r.db")]) == 0
    assert ", trained;" in capsys.readouterr().out


def test_registry_fields_of_a_sweep_file_are_refused_with_the_files(capsys, tmp_path, monkeypatch):
    (tmp_path / "sweep.toml").write_text('[fixed]\nmodel = "cnn"\nepochs = 1\n\n[grid]\nhidden = [[8], [16]]\n')
    error = error_of([*COMMANDS["sweep"], "--config", "sweep.toml", *FILES], capsys, tmp_path, monkeypatch)
    assert error.startswith("model in sweep.toml, hidden in sweep.toml choose the registry's model or data")


# The experiment commands name their networks by the scale, so they have neither --model nor
# --dataset: --data-dir (and gap's --networks) are their registry options.
EXPERIMENT_GIVEN = [
    ("gap", ["--data-dir", "somewhere"], "--data-dir somewhere"),
    ("gap", ["--networks", "f1", "c1"], "--networks f1 c1"),
    ("largebatch", ["--data-dir", "somewhere"], "--data-dir somewhere"),
]


@pytest.mark.parametrize("command, argv, shown", EXPERIMENT_GIVEN)
def test_the_experiment_commands_refuse_their_registry_options_with_the_files_alike(command, argv, shown, capsys,
                                                                                   tmp_path, monkeypatch):
    error = error_of([command, *argv, *FILES, "--out", str(tmp_path / "out")], capsys, tmp_path, monkeypatch)
    assert error == (f"{shown} chooses the registry's model or data, which --model-file and --data-file "
                     "replace; allowed: the files without it, or it without the files")
    assert not (tmp_path / "out").exists()
