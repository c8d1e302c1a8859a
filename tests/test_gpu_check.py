"""benchmarks/gpu_check.sh: it parses, it is executable, and its summary reports every step.
(The dry run itself takes minutes on a loaded 2-core CPU, so it is not run here.)"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
SUMMARY = ROOT / "benchmarks" / "gpu_check_summary.py"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_script_parses_and_is_executable():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert os.access(SCRIPT, os.X_OK)
    text = SCRIPT.read_text(encoding="utf-8")
    # Every step is bounded, and nothing is installed.
    steps = [line for line in text.splitlines() if line.startswith("run_step ")]
    assert [line.split()[1] for line in steps] == ["gpu-tests", "timing-paths", "sweep-throughput", "hvp"]
    assert "timeout --kill-after" in text and "pip install" not in text


def run_summary(tmp_path: Path, steps: str) -> subprocess.CompletedProcess:
    results, logs = tmp_path / "results", tmp_path / "logs"
    results.mkdir()
    logs.mkdir()
    (results / "gpu-tests-x.xml").write_text(
        '<testsuites><testsuite name="pytest" tests="5" failures="0" errors="0" skipped="1"/></testsuites>')
    (results / "hvp-x.json").write_text(json.dumps({
        "device_name": "Some GPU",
        "per_hvp": {"plain": {"median_s": 0.002}, "batchlab": {"median_s": 0.001}},
        "pyhessian_comparison": None,
    }))
    (logs / "sweep-throughput.log").write_text("line 1\nModuleNotFoundError: No module named 'mlxtend'\n")
    return subprocess.run(
        [sys.executable, str(SUMMARY), "--device", "cuda", "--results", str(results), "--logs", str(logs),
         "--slug", "x", "--missing", "mlxtend pyhessian", "--seconds", "300"],
        input=steps, capture_output=True, text=True, cwd=ROOT / "benchmarks",
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )


@pytest.mark.slow
def test_the_summary_reports_each_step_and_fails_when_one_did(tmp_path):
    steps = "gpu-tests|0|20|80|gpu-tests-x.xml\nsweep-throughput|1|5|150|sweep-throughput-x.json\n" \
            "hvp|0|30|90|hvp-x.json\ntiming-paths|124|140|140|timing-x.json\n"
    done = run_summary(tmp_path, steps)
    assert done.returncode == 1, done.stderr
    assert "5 tests, 0 failures, 0 errors, 1 skipped" in done.stdout
    assert "plain 2.0 ms, batchlab 1.0 ms per product" in done.stdout
    assert "PyHessian comparison not run" in done.stdout
    assert "timed out after 140 s" in done.stdout and "failed (exit 1)" in done.stdout
    summary = json.loads((tmp_path / "results" / "gpu-check-x.json").read_text())
    assert summary["device_name"] == "Some GPU"
    assert summary["python_packages_missing"] == ["mlxtend", "pyhessian"]
    failed = next(s for s in summary["steps"] if s["step"] == "sweep-throughput")
    assert failed["log_tail"][-1] == "ModuleNotFoundError: No module named 'mlxtend'"
    assert failed["headline"] == ["no result file"]


@pytest.mark.slow
def test_the_summary_passes_when_every_step_did(tmp_path):
    done = run_summary(tmp_path, "gpu-tests|0|20|80|gpu-tests-x.xml\nhvp|0|30|90|hvp-x.json\n")
    assert done.returncode == 0, done.stderr
