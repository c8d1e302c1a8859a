"""``batchlab toy``: table and JSON output, figure files, one-line errors with exit code 2."""

import json

import pytest
from matplotlib.figure import Figure

from batchlab.cli import main
from batchlab.files import save_figure
from batchlab.toy.experiments import lecture_toy_experiments
from batchlab.toy.plots import plot_loss_curves, plot_momentum_sweep, plot_paths, study_figure
from batchlab.toy.surfaces import get_surface
from batchlab.toy.trajectory import run_trajectory

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_table_output_and_files(tmp_path, capsys):
    out = tmp_path / "toy"
    assert main(["toy", "--surface", "ball", "--momentum", "0.5", "0.9", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    header = text.splitlines()[0].split()
    assert header[:5] == ["surface", "scenario", "method", "λ", "η"]
    rows = [line.split() for line in text.splitlines() if line.startswith("ball ")]
    assert [row[2:4] for row in rows] == [["GD", "0"], ["momentum", "0.5"], ["momentum", "0.9"]]
    assert "shallow minimum" in text and "global minimum" in text
    assert "[holds] Gradient descent stops in the shallow minimum" in text
    assert f"wrote {out / 'toy.json'}" in text
    data = json.loads((out / "toy.json").read_text())
    assert data["surfaces"][0]["surface"]["name"] == "ball"
    assert (out / "toy-ball.png").read_bytes()[:8] == PNG_MAGIC
    assert (out / "toy-ball.svg").read_text().lstrip().startswith("<?xml")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left behind


@pytest.mark.slow
def test_json_output(tmp_path, capsys):
    out = tmp_path / "toy"
    assert main(["toy", "--surface", "saddle", "--momentum", "0.9", "--steps", "400", "--seed", "3",
                 "--out", str(out), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["settings"]["momenta"] == [0.0, 0.9]
    assert data["settings"]["seed"] == 3 and data["settings"]["steps"] == 400
    runs = data["surfaces"][0]["runs"]
    assert {(r["scenario"], r["method"]) for r in runs} >= {("on-manifold", "GD"), ("noise", "momentum")}
    assert sorted(data["files"]) == sorted(str(out / n) for n in ("toy.json", "toy-saddle.png", "toy-saddle.svg"))


# Every λ runs out of its 50 steps here: the λ-sweep panel must still get a readable axis.
@pytest.mark.slow
@pytest.mark.filterwarnings("error::UserWarning")
def test_lr_and_noise_reach_every_run(tmp_path, capsys):
    assert main(["toy", "--surface", "valley", "--lr", "0.01", "--noise", "0.001", "--steps", "50",
                 "--out", str(tmp_path), "--format", "json"]) == 0
    runs = json.loads(capsys.readouterr().out)["surfaces"][0]["runs"]
    assert {r["lr"] for r in runs} == {0.01} and {r["noise_std"] for r in runs} == {0.001}


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--surface", "bowl"], ["bowl", "ball", "saddle", "valley", "two-minima"]),
        (["--lr", "-0.1"], ["learning rate"]),
        (["--momentum", "1.0"], ["momentum", "[0, 1)"]),
        (["--momentum", "-0.2"], ["momentum"]),
        (["--steps", "0"], ["steps"]),
        (["--noise", "-1"], ["noise"]),
        (["--steps", "many"], ["steps"]),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, argv, words):
    out = tmp_path / "toy"
    assert main(["toy", *argv, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batchlab: error:")
    assert all(word in lines[0] for word in words), lines[0]
    assert not out.exists()  # nothing written


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["toy", "--help"])
    assert "Example: batchlab toy" in capsys.readouterr().out


@pytest.mark.slow
def test_plot_functions_return_figures(tmp_path):
    ball, saddle = get_surface("ball"), get_surface("saddle")
    paths = {t.label: t for t in (run_trajectory(ball), run_trajectory(ball, momentum=0.9))}
    one_d = plot_paths(ball, paths)
    assert isinstance(one_d, Figure) and len(one_d.axes) == 1
    assert len(one_d.axes[0].get_lines()) >= 1 + 2 * len(paths)  # the curve, each path, each ball
    two_d = plot_paths(saddle, {"GD": run_trajectory(saddle, start=(1.5, 1e-6), steps=300)})
    assert isinstance(two_d, Figure)
    assert isinstance(plot_loss_curves(ball, paths), Figure)
    study = lecture_toy_experiments(["two-minima"], sweep=(0.5, 0.9)).study("two-minima")
    assert isinstance(plot_momentum_sweep(study), Figure)
    figure = study_figure(study)
    assert len(figure.axes) == 3
    assert all(ax.get_title() for ax in figure.axes)
    written = save_figure(figure, tmp_path / "figures" / "two")
    assert [p.name for p in written] == ["two.png", "two.svg"]
    assert written[0].read_bytes()[:8] == PNG_MAGIC
