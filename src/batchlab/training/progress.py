"""Progress of a run: a tqdm bar on a terminal, one plain line per epoch otherwise (logs, CI)."""

from __future__ import annotations

import sys
from typing import Any


class EpochProgress:
    """Reports each finished epoch; ``enabled=None`` picks a bar when stderr is a terminal."""

    def __init__(self, total_epochs: int, *, enabled: bool | None = None, label: str = "") -> None:
        self.total = total_epochs
        self.label = label
        use_bar = sys.stderr.isatty() if enabled is None else enabled
        self.plain = not use_bar
        self._bar = None
        if use_bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total_epochs, desc=label or "epochs", unit="epoch", leave=False, file=sys.stderr)

    def skip_to(self, epoch: int) -> None:
        """Resumed runs start with ``epoch`` epochs already done."""
        if self._bar is not None and epoch:
            self._bar.update(epoch)

    def update(self, epoch: int, row: dict[str, Any]) -> None:
        shown = {k: row[k] for k in ("train_loss", "train_acc", "val_acc") if k in row}
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items()})
            self._bar.update(1)
        else:
            fields = " ".join(f"{k}={v:.4f}" for k, v in shown.items())
            print(f"{self.label} epoch {epoch}/{self.total} {fields} time={row['epoch_time_s']:.2f}s",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
