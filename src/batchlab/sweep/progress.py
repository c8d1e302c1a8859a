"""Progress of a sweep: runs done out of the grid's total, as a tqdm bar or as plain lines.

On a terminal (or with ``enabled=True``) a bar counts runs with tqdm's rate and ETA. Otherwise
(logs, CI) each run that ends prints one line to stderr::

    [12/288] run 3f2a… B=16 lr=0.1 λ=0.9 seed=0 finished val_acc=0.9300

Runs skipped because the store already held them count as done from the start.
"""

from __future__ import annotations

import sys
from typing import Any

from batchlab.training.result import RunResult


class SweepProgress:
    """Counts ended runs out of ``total``, starting at ``already_done``."""

    def __init__(self, total: int, already_done: int = 0, *, enabled: bool | None = None) -> None:
        self.total = total
        self.done = already_done
        use_bar = sys.stderr.isatty() if enabled is None else enabled
        self._bar = None
        if use_bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=already_done, desc="sweep", unit="run", file=sys.stderr)

    @property
    def plain(self) -> bool:
        return self._bar is None

    def run_ended(self, result: RunResult) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
            return
        print(f"[{self.done}/{self.total}] {describe_result(result)}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        """A line that does not disturb the bar."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def describe_result(result: RunResult) -> str:
    """``run <id> B=16 lr=0.1 λ=0.9 seed=0 finished val_acc=0.9300`` (the status and, when there
    is one, the last validation accuracy, or the epoch a diverged run diverged in)."""
    config = result.config
    parts = [
        f"run {result.run_id}",
        f"B={config.batch_size}",
        f"lr={config.lr:g}",
        f"λ={config.momentum:g}",
        f"seed={config.seed}",
    ]
    if config.optimizer != "momentum":
        parts.append(f"opt={config.optimizer}")
    parts.append(result.status)
    summary: dict[str, Any] = result.summary
    if summary.get("val_acc") is not None:
        parts.append(f"val_acc={summary['val_acc']:.4f}")
    elif summary.get("train_acc") is not None:
        parts.append(f"train_acc={summary['train_acc']:.4f}")
    if summary.get("diverged_epoch") is not None:
        parts.append(f"(diverged at epoch {summary['diverged_epoch']})")
    return " ".join(parts)
