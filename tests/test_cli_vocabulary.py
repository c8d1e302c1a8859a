"""One command-line vocabulary: the same flag for the same idea in every command.

Walks every parser the CLI builds and checks, from a table of (command, flag) pairs, that each
shared flag exists there under the same name with the same meaning (type, number of values,
default); that prefix abbreviations are refused with a suggestion; that ``--help`` builds the
whole CLI without importing torch; and that the commands come in the order a user meets them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import batchlab
from batchlab.cli import ORDER, build_parser, command_modules, main
from batchlab.commands import _options
from batchlab.commands.sweep import export_file


def all_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command's parser by its name: 'train', 'data fetch', …"""
    found = {}

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        found[name] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child, subparser in action.choices.items():
                    walk(subparser, f"{name} {child}".strip())

    walk(build_parser(), "")
    return found


PARSERS = all_parsers()


def option(command: str, flag: str) -> argparse.Action:
    for action in PARSERS[command]._actions:
        if flag in action.option_strings:
            return action
    raise AssertionError(f"batchlab {command} has no {flag}")


# What each shared flag means: every attribute listed must be equal wherever the flag appears.
MEANING = {
    "--store": dict(option_strings=["--store"], type=_options.store_path, default=str(_options.DEFAULT_STORE), nargs=None),
    "--seed": dict(type=_options.seed_value),
    "--device": dict(option_strings=["--device"], default="auto", nargs=None),
    "--data-dir": dict(option_strings=["--data-dir"], default=None, nargs=None),
    "--out": dict(option_strings=["--out"], type=_options.output_dir, metavar="DIR", nargs=None),
    "--output": dict(option_strings=["-o", "--output"], metavar="FILE", nargs=None),
    "--progress": dict(option_strings=["--progress", "--no-progress"], default=None, nargs=0),
    "--dataset": dict(option_strings=["--dataset"], nargs=None),
    "--model": dict(option_strings=["--model"], nargs=None),
    "--hidden": dict(option_strings=["--hidden"], type=_options.hidden_width, nargs="+"),
    "--batch-size": dict(option_strings=["--batch-size"], type=_options.batch_size_value),
    "--momentum": dict(option_strings=["--momentum"], type=float),
    "--lr": dict(option_strings=["--lr"], type=float),
    "--epochs": dict(option_strings=["--epochs"], type=int, nargs=None),
}

# Where each shared flag must be found. A swept or listed flag takes several values (nargs '+')
# under the name a single run uses for one: sweep --batch-size 16 64, toy --momentum 0.5 0.9.
USES = {
    "train": ["--store", "--seed", "--device", "--data-dir", "--progress", "--dataset", "--model", "--hidden",
              "--batch-size", "--momentum", "--lr", "--epochs"],
    "sweep": ["--store", "--seed", "--device", "--data-dir", "--output", "--progress", "--dataset", "--model",
              "--hidden", "--batch-size", "--momentum", "--lr", "--epochs"],
    "runs": ["--store", "--output"],
    "report": ["--store", "--output"],
    "timing": ["--store", "--seed", "--device", "--data-dir", "--out", "--progress", "--dataset", "--model",
               "--hidden", "--batch-size"],
    "toy": ["--seed", "--out", "--momentum", "--lr"],
    "hessian": ["--store", "--seed", "--device", "--progress"],
    "sharpness": ["--store", "--seed", "--device", "--progress"],
    "landscape": ["--store", "--seed", "--device", "--out", "--progress"],
    "gap": ["--store", "--device", "--data-dir", "--out", "--progress"],
    "lecture": ["--store", "--device", "--data-dir", "--out", "--progress"],
    "data list": ["--data-dir"],
    "data fetch": ["--data-dir", "--progress"],
}
PAIRS = [(command, flag) for command, flags in USES.items() for flag in flags]
# The flags that take several values: swept axes and lists of values to compare.
SEVERAL = {("sweep", "--seed"), ("sweep", "--batch-size"), ("sweep", "--momentum"), ("sweep", "--lr"),
           ("timing", "--batch-size"), ("toy", "--momentum")}


@pytest.mark.parametrize(("command", "flag"), PAIRS, ids=[f"{c} {f}" for c, f in PAIRS])
def test_a_shared_flag_has_the_same_name_and_meaning_everywhere(command, flag):
    action = option(command, flag)
    for attribute, expected in MEANING[flag].items():
        assert getattr(action, attribute) == expected, f"batchlab {command} {flag}: {attribute}"
    if flag in ("--seed", "--batch-size", "--momentum", "--lr"):
        assert action.nargs == ("+" if (command, flag) in SEVERAL else None), f"batchlab {command} {flag}: nargs"
    if flag == "--output":
        assert action.type in (_options.output_file, export_file)


def test_the_table_names_real_commands():
    assert set(USES) <= set(PARSERS)  # commands added later are held to the rules of the next test


def test_no_command_uses_another_name_for_a_shared_idea():
    """Old or alternative spellings are gone everywhere; files are -o/--output, folders --out."""
    retired = {"--batch-sizes", "--momenta", "--lrs", "--optimizers", "--export", "--outdir", "--output-dir",
               "--out-dir", "--no-store-progress"}
    for name, parser in PARSERS.items():
        for action in parser._actions:
            strings = set(action.option_strings)
            assert not strings & retired, f"batchlab {name}: {strings & retired}"
            if action.type in (_options.output_file, export_file) and action.option_strings:
                assert action.option_strings in (["-o", "--output"], ["--summary-json"]), f"batchlab {name}"
            if action.type is _options.output_dir or "--out" in strings:
                assert action.option_strings == ["--out"] and action.type is _options.output_dir, f"batchlab {name}"
            if "-o" in strings or "--output" in strings:
                assert action.option_strings == ["-o", "--output"], f"batchlab {name}"
            if "--progress" in strings:
                assert action.option_strings == ["--progress", "--no-progress"], f"batchlab {name}"
            if "--store" in strings or action.dest == "store_given":
                assert action.type is _options.store_path, f"batchlab {name}"
            if "--seeds" in strings:  # a count of seeds, never a list of them (that is --seed)
                assert action.type is int and action.nargs is None, f"batchlab {name}"


def test_every_parser_refuses_abbreviations():
    assert all(parser.allow_abbrev is False for parser in PARSERS.values())


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["sweep", "--batch", "16"], "--batch-size"),
        (["sweep", "--momenta", "0", "0.9"], "--momentum"),
        (["sweep", "--lrs", "0.1"], "--lr"),
        (["train", "--mom", "0.9"], "--momentum"),
        (["timing", "--batch-sizes", "8"], "--batch-size"),
        (["runs", "--form", "csv"], "--format"),
        (["data", "fetch", "mnist", "--base", "http://x/"], "--base-url"),
    ],
)
def test_an_abbreviated_or_unknown_flag_names_the_command_and_suggests(argv, suggestion, capsys, tmp_path):
    assert main([*argv, "--store", str(tmp_path / "r.db")] if argv[0] != "data" else argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    command = " ".join(argv[:2]) if argv[0] == "data" else argv[0]
    flag = argv[3] if argv[0] == "data" else argv[1]
    assert lines[0].startswith(f"batchlab: error: {command}: unrecognized argument {flag}; did you mean "), lines[0]
    assert suggestion in lines[0]
    assert not (tmp_path / "r.db").exists()


def test_an_unknown_command_suggests_the_nearest(capsys):
    assert main(["trian"]) == 2
    assert "invalid choice 'trian'; did you mean train?" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"batchlab {batchlab.__version__}"


def test_commands_come_in_the_order_a_user_meets_them(capsys):
    names = command_modules()
    assert names[: len(ORDER)] == list(ORDER)
    assert names[len(ORDER):] == sorted(names[len(ORDER):])  # commands added later: alphabetical
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    positions = [listing.index(f"\n    {name}") for name in ORDER]
    assert positions == sorted(positions) and ORDER[0] == "lecture"


def test_help_builds_every_parser_without_importing_torch():
    """In a fresh interpreter: the top-level help and every command's help leave torch unloaded."""
    code = (
        "import contextlib, io, sys\n"
        "from batchlab.cli import build_parser\n"
        "parser = build_parser()\n"
        "commands = [a for a in parser._actions if a.dest == 'command'][0].choices\n"
        "for argv in [['--help'], *([name, '--help'] for name in commands)]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            parser.parse_args(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "heavy = [m for m in ('torch', 'numpy', 'matplotlib', 'scipy', 'ray') if m in sys.modules]\n"
        "print(','.join(heavy) or 'none')\n"
    )
    source = str(Path(batchlab.__file__).parents[1])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": source, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"


def test_cli_defaults_equal_the_library_defaults():
    """Commands write their defaults out so that --help needs no torch; they must not drift."""
    from batchlab.commands import landscape, timing, toy
    from batchlab.geometry import landscape as geometry
    from batchlab.timing import harness, paths
    from batchlab.toy import experiments, trajectory

    assert (timing.DEFAULT_BATCH_SIZES, timing.DEFAULT_N_EXAMPLES, timing.DEFAULT_REPEATS, timing.DEFAULT_WARMUP,
            timing.DEFAULT_BUDGET_S, timing.DEFAULT_CPU_BUDGET_WITH_GPU_S, timing.PATHS) == (
        harness.DEFAULT_BATCH_SIZES, harness.DEFAULT_N_EXAMPLES, harness.DEFAULT_REPEATS, harness.DEFAULT_WARMUP,
        harness.DEFAULT_BUDGET_S, harness.DEFAULT_CPU_BUDGET_WITH_GPU_S, paths.PATHS)
    assert (timing.DEFAULT_MODEL, timing.DEFAULT_DATASET) == (harness.DEFAULT_MODEL, harness.DEFAULT_DATASET)
    assert (landscape.BN_MODES, landscape.DEFAULT_BN_MODE, landscape.DEFAULT_ALPHA_RANGE,
            landscape.DEFAULT_GRID_STEPS, landscape.DEFAULT_SPAN) == (
        geometry.BN_MODES, geometry.DEFAULT_BN_MODE, geometry.DEFAULT_ALPHA_RANGE,
        geometry.DEFAULT_GRID_STEPS, geometry.DEFAULT_SPAN)
    assert (toy.DEFAULT_MOMENTA, toy.DEFAULT_STEPS) == (experiments.DEFAULT_MOMENTA, trajectory.DEFAULT_STEPS)
    from batchlab.runtime import threads

    assert timing.ONE_THREAD_BELOW_BATCH == threads.ONE_THREAD_BELOW_BATCH


def test_the_swept_flags_build_the_grid_a_train_flag_names():
    from batchlab.commands.sweep import spec_from_args

    args = build_parser().parse_args(["sweep", "--batch-size", "16", "64", "--momentum", "0", "0.9", "--lr", "0.1"])
    spec = spec_from_args(args)
    assert spec.grid_axes["batch_size"] == (16, 64) and spec.grid_axes["momentum"] == (0.0, 0.9)
    assert len(spec) == 4
