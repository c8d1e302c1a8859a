"""``batchlab data list`` and ``batchlab data fetch`` through batchlab.cli.main.

(Downloads through the CLI against a local server are tested in test_data_fetch.py.)
"""

from __future__ import annotations

import json

from batchlab.cli import main
from batchlab.data import DATASETS


def test_list_shows_every_dataset_with_sizes_and_presence(tmp_path, capsys):
    assert main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "train", "test", "shape", "classes", "present"]
    by_name = {line.split()[0]: line for line in lines[1:]}
    assert set(by_name) == set(DATASETS)
    assert by_name["mnist-5k"].split()[1:6] == ["4,000", "1,000", "1×28×28", "10", "yes"]
    assert by_name["cifar10"].split()[1:6] == ["50,000", "10,000", "3×32×32", "10", "no"]
    assert "batchlab data fetch mnist" in by_name["mnist"] and str(tmp_path / "mnist") in by_name["mnist"]


def test_list_sees_a_dataset_in_the_data_dir(tmp_path, capsys):
    directory = tmp_path / "mnist"
    directory.mkdir()
    for remote in DATASETS["mnist"].files:
        (directory / remote.name).write_bytes(b"")  # presence only; reading is tested elsewhere
    main(["data", "list", "--data-dir", str(tmp_path), "--format", "json"])
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["mnist"]["present"] is True and rows["mnist"]["path"] == str(directory)
    assert rows["cifar10"]["present"] is False
    assert rows["mnist"]["input_shape"] == [1, 28, 28]


def test_list_uses_the_environment_data_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BATCHLAB_DATA", str(tmp_path))
    main(["data", "list", "--format", "json"])
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["cifar10"]["path"] == str(tmp_path / "cifar10")


def test_fetch_mnist_5k_says_nothing_is_needed(tmp_path, capsys):
    assert main(["data", "fetch", "mnist-5k", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ships inside batchlab" in out and "SHA-256 verified" in out and "nothing to fetch" in out


def test_fetch_unknown_name_lists_known(capsys):
    assert main(["data", "fetch", "imagenet"]) == 2
    err = capsys.readouterr().err
    assert err == "batchlab: error: unknown dataset 'imagenet'; known: mnist-5k, mnist, fashion-mnist, cifar10\n"


def test_data_without_action_shows_usage(capsys):
    assert main(["data"]) == 2
    assert "list" in capsys.readouterr().err


def test_help_has_an_example(capsys):
    for argv in (["data", "--help"], ["data", "list", "--help"], ["data", "fetch", "--help"]):
        try:
            main(argv)
        except SystemExit as done:
            assert done.code == 0
        assert "Example: batchlab data" in capsys.readouterr().out
