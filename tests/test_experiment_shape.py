"""The shape experiments share (batchlab.experiments.shape): scales, the record envelope, the
registry the report and the commands ask, and stores written before the shape was shared."""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

import batchlab
from batchlab.cli import main
from batchlab.errors import ConfigError
from batchlab.experiments import experiments
from batchlab.experiments.shape import Envelope, check_scale, check_seeds, latest_record
from batchlab.store import RunStore

SOURCE = Path(batchlab.__file__).parent
OLD_STORE = Path(__file__).parent / "data" / "store-before-shape"


def test_scale_and_seed_checks_name_what_is_allowed():
    assert check_scale("full") == "full"
    with pytest.raises(ConfigError, match="unknown scale 'huge'; allowed: quick, full"):
        check_scale("huge")
    assert check_seeds(3) == 3
    for bad in (0, True, 1.5, "2"):
        with pytest.raises(ConfigError, match="allowed: an integer ≥ 1 \\(the paper used 5\\)"):
            check_seeds(bad, "(the paper used 5)")


def test_the_envelope_keeps_the_keys_records_always_had():
    envelope = Envelope({"device": "cpu"}, 1.5, "2026-01-02T03:04:05+00:00", (0.5, 1.0))
    assert envelope.to_dict() == {"environment": {"device": "cpu"}, "seconds": 1.5,
                                  "created": "2026-01-02T03:04:05+00:00", "load_average": [0.5, 1.0]}
    assert Envelope.read(envelope.to_dict()) == envelope


def test_an_older_envelope_reads_with_defaults():
    # The lecture's records kept created in Unix seconds; early records had no load average.
    old = Envelope.read({"environment": {"device": "cpu"}, "seconds": 2, "created": 0.0})
    assert old.created == "1970-01-01T00:00:00+00:00" and old.load_average == (None, None) and old.seconds == 2.0


def test_latest_record_is_the_newest_by_created(tmp_path):
    with RunStore(tmp_path / "runs.db") as store:
        assert latest_record(store, "advise") is None
        store.put_record("advise", "a", {"created": "2026-01-02T00:00:00+00:00", "n": 1})
        store.put_record("advise", "b", {"created": "2026-03-01T00:00:00+00:00", "n": 2})
        store.put_record("advise", "c", {"created": "2025-12-31T00:00:00+00:00", "n": 3})
        assert latest_record(store, "advise")["n"] == 2


def test_every_experiment_registers_kind_scales_and_sections():
    registered = {e.kind: e for e in experiments()}
    assert list(registered) == ["lecture", "gap", "sharpening", "largebatch", "advise"]
    for kind in ("gap", "sharpening", "largebatch", "advise"):
        assert registered[kind].json_name == f"{kind}.json" and registered[kind].figures is not None
        # gap has a scale between the two: the full Fashion-MNIST with a conv net, hours on a CPU.
        assert registered[kind].scales == (("quick", "standard", "full") if kind == "gap" else ("quick", "full"))
    for experiment in registered.values():
        plan = experiment.plan("quick")
        assert getattr(plan, "scale", getattr(plan, "name", None)) == "quick" and callable(experiment.run)
        with pytest.raises(ConfigError, match="unknown scale 'huge'; allowed: "):
            experiment.plan("huge")
    sections = [s.id for e in registered.values() for s in e.sections]
    assert sections == ["gap", "gap-paper", "gap-own", "sharpening", "largebatch", "advise"]

    from batchlab.report.registry import section_builders

    ids = [b.id for b in section_builders()]
    # The summary table leads the report (the answer first); the experiments follow in the lecture's order.
    assert set(sections) <= set(ids) and ids[0] == "summary"
    assert ids.index("gap") < ids.index("sharpening") < ids.index("largebatch") < ids.index("advise")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in ``path``, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
    return found


def test_the_report_imports_no_experiment_by_name():
    allowed = {"batchlab.experiments", "batchlab.experiments.shape"}
    named = [f"{path.name}: {module}" for path in sorted((SOURCE / "report").glob("*.py"))
             for module, _ in _imports(path) if module.startswith("batchlab.experiments") and module not in allowed]
    assert named == []


def test_no_private_name_crosses_an_experiment_package():
    crossing = []
    for path in sorted((SOURCE / "experiments").rglob("*.py")):
        package = path.relative_to(SOURCE / "experiments").parts[0]
        for module, names in _imports(path):
            parts = module.split(".")
            if parts[:2] == ["batchlab", "experiments"] and len(parts) > 2 and parts[2] != package:
                crossing += [f"{path.relative_to(SOURCE)}: {module}.{name}" for name in names if name.startswith("_")]
    assert crossing == []


# -------------------------------------------------------------- a store made before the shape


def _old_store_settings():
    spec = importlib.util.spec_from_file_location("make_store", OLD_STORE / "make_store.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def old_store(tmp_path):
    """A copy of the store made by tests/data/store-before-shape/make_store.py at an earlier commit."""
    shutil.copy(OLD_STORE / "runs.db", tmp_path / "runs.db")
    shutil.copytree(OLD_STORE / "runs-weights", tmp_path / "runs-weights")
    return tmp_path / "runs.db"


@pytest.mark.slow
def test_a_store_made_before_the_shape_renders_its_experiments(old_store):
    from batchlab.report import build_report

    with RunStore(old_store, create=False) as store:
        for kind in ("gap", "advise"):
            record = latest_record(store, kind)
            envelope = Envelope.read(record)
            assert envelope.environment["device"] == "cpu" and envelope.seconds > 0 and envelope.created
        report, _ = build_report(store)
    ids = [section.id for section in report.sections]
    assert "gap" in ids and "advise" in ids


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_a_store_made_before_the_shape_is_reused_without_training(old_store, tmp_path, capsys, monkeypatch):
    from batchlab.experiments.gap import experiment

    settings = _old_store_settings()
    monkeypatch.setattr(experiment, "_quick_networks", lambda: {"f1": settings.TINY_F1})
    common = ["--store", str(old_store), "--out", str(tmp_path / "out"), "--format", "json"]
    capsys.readouterr()
    assert main([*settings.GAP, *common]) == 0
    gap = json.loads(capsys.readouterr().out)
    runs = gap["networks"][0]["runs"]
    assert len(runs) == 2 and all(r["from_store"] for r in runs)
    assert all(s["from_store"] for r in runs for s in r["sharpness"])
    assert main([*settings.ADVISE, *common]) == 0
    advise = json.loads(capsys.readouterr().out)
    assert advise["trained_runs"] == 0 and len(advise["runs"]) == 4
