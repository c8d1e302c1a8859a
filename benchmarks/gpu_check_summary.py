"""The summary of ``gpu_check.sh``: one line per step, the headline numbers of each result file,
and ``gpu-check-<device-slug>.json`` beside the results.

Reads the steps from standard input, one ``name|exit code|seconds|limit|result file`` a line.
Exits 0 when every step exited 0, else 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timezone
from pathlib import Path

from common import write_result

TIMED_OUT = (124, 137)
LOG_TAIL_LINES = 15


def parse_steps(lines: list[str]) -> list[dict]:
    steps = []
    for line in lines:
        if not line.strip():
            continue
        name, code, seconds, limit, result = line.strip().split("|")
        steps.append({"step": name, "exit_code": int(code), "seconds": int(seconds), "limit_s": int(limit),
                      "result_file": result or None})
    return steps


def outcome(step: dict) -> str:
    if step["exit_code"] == 0:
        return "ok"
    if step["exit_code"] in TIMED_OUT:
        return f"timed out after {step['limit_s']} s"
    return f"failed (exit {step['exit_code']})"


def headline(step: dict, path: Path) -> list[str]:
    """The few numbers a reader wants first from a step's result file."""
    if not path.exists():
        return ["no result file"]
    if path.suffix == ".xml":
        suite = ElementTree.parse(path).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
        return [", ".join(f"{value} {key}" for key, value in counts.items())]
    data = json.loads(path.read_text(encoding="utf-8"))
    if step["step"] == "timing-paths":
        return [f"{row['series']} B={row['batch_size']}: {row['speedup_per_update']:.2f}x plain per update"
                for row in data.get("speedup_vs_plain", [])] + [
                f"goal: {goal['goal']}: {goal['status']}" for goal in data.get("goals", [])]
    if step["step"] == "sweep-throughput":
        lines = [f"bandwidth {data['memory_bandwidth']['bytes_per_s'] / 1e9:.0f} GB/s"] if "memory_bandwidth" in data else []
        for row in data.get("results", []):
            share = row.get("bandwidth_bound", {}).get("share", {})
            lines.append(
                f"{row['model']} B={row['batch_size']}: packed/plain {row['ratios']['packed_vs_plain']:.2f}x, "
                f"packed/single {row['ratios']['packed_vs_single']:.2f}x; "
                + ", ".join(f"{name} {value:.1%}" for name, value in share.items()) + " of the bandwidth bound")
        return lines
    if step["step"] == "hvp":
        per_hvp = data.get("per_hvp", {})
        lines = [", ".join(f"{name} {timing['median_s'] * 1e3:.1f} ms" for name, timing in per_hvp.items())
                 + " per product"]
        for row in data.get("pyhessian_comparison") or []:
            lines.append(
                f"N={row['examples']} top-{row['top_n']}: PyHessian {row['pyhessian']['seconds']:.2f} s "
                f"(error {row['pyhessian']['max_relative_error']:.0e}), batchlab {row['batchlab_auto']['seconds']:.2f} s "
                f"(error {row['batchlab_auto']['max_relative_error']:.0e})")
        if data.get("pyhessian_comparison") is None:
            lines.append("PyHessian comparison not run")
        return lines
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", required=True)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--logs", type=Path, required=True)
    parser.add_argument("--slug", required=True)
    parser.add_argument("--dry", default="0")
    parser.add_argument("--missing", default="")
    parser.add_argument("--seconds", type=int, required=True)
    args = parser.parse_args(argv)

    steps = parse_steps(sys.stdin.read().splitlines())
    device_name = None
    print(f"\ngpu_check summary ({args.device}, {args.slug}{', dry run' if args.dry == '1' else ''}; "
          f"{args.seconds} s in all)")
    for step in steps:
        step["outcome"] = outcome(step)
        print(f"  {step['step']:<18} {step['outcome']:<24} {step['seconds']:>4} s of {step['limit_s']} s")
        path = args.results / step["result_file"] if step["result_file"] else None
        if path is not None:
            try:
                step["headline"] = headline(step, path)
            except (OSError, ValueError, KeyError, TypeError, ElementTree.ParseError) as error:
                step["headline"] = [f"result file unreadable: {error}"]
            for line in step["headline"]:
                print(f"      {line}")
            if path.suffix == ".json" and path.exists():
                device_name = device_name or json.loads(path.read_text(encoding="utf-8")).get("device_name")
        log = args.logs / f"{step['step']}.log"
        if step["exit_code"] != 0 and log.exists():
            step["log_tail"] = log.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
    summary = {
        "benchmark": "gpu-check",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": args.device,
        "device_name": device_name,
        "dry_run": args.dry == "1",
        "python_packages_missing": args.missing.split(),
        "seconds": args.seconds,
        "steps": steps,
    }
    out = args.results / f"gpu-check-{args.slug}.json"
    write_result(summary, out, "gpu-check", None)
    print(f"wrote {out}")
    return 0 if all(step["exit_code"] == 0 for step in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
