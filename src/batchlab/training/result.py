"""What one training run produced: per-epoch metrics, a summary, and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from batchlab.config import RunConfig
from batchlab.store.status import DIVERGED, ENDED_STATUSES, FAILED, FINISHED, RUNNING

__all__ = ["DIVERGED", "ENDED_STATUSES", "FAILED", "FINISHED", "RUNNING", "RunResult"]


@dataclass
class RunResult:
    """The outcome of :func:`batchlab.train`.

    ``epochs`` holds one dict per completed epoch (``epoch`` counts from 1) with ``train_loss``,
    ``train_acc``, ``val_loss``, ``val_acc``, ``updates``, ``epoch_time_s``. ``summary`` holds the
    final numbers (``test_acc``, ``time_per_update_s`` …) and, for a diverged run, the epoch it
    diverged in. ``from_store`` is True when the result was read back instead of trained.
    """

    run_id: str
    config: RunConfig
    status: str
    epochs: list[dict[str, float]]
    summary: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)
    from_store: bool = False

    @property
    def diverged(self) -> bool:
        return self.status == DIVERGED

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "config": self.config.to_dict(),
            "status": self.status,
            "epochs": self.epochs,
            "summary": self.summary,
            "environment": self.environment,
        }
