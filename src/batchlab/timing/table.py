"""What a timing measurement produces: one :class:`TimingPoint` per (path, device, batch size),
gathered in a :class:`TimingTable` that serializes to JSON and to rows of the run store.

A point keeps every repeat's time per update, so the median and the spread (quartiles, min, max)
can be checked against the raw values. ``per_epoch_s`` is either a measured full epoch (the median
over repeats, ``extrapolated=False``) or, when a full epoch did not fit the time budget, the median
time per update multiplied by the number of updates in an epoch (``extrapolated=True``).
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from typing import Any

# Columns of the run store's ``timings`` table that a point fills directly; the rest of a point
# goes into the row's ``extra`` JSON.
_STORE_COLUMNS = {
    "device": "device",
    "device_name": "device_name",
    "data_path": "path",
    "model": "model",
    "batch_size": "batch_size",
    "n_examples": "n_examples",
    "per_update_median_s": "per_update_median_s",
    "per_update_q25_s": "per_update_q25_s",
    "per_update_q75_s": "per_update_q75_s",
    "per_epoch_s": "per_epoch_s",
    "extrapolated": "extrapolated",
    "synthetic_data": "synthetic_data",
}


@dataclass(frozen=True)
class TimingPoint:
    """Time per update and per epoch of one data path at one batch size on one device.

    ``per_update_s`` holds one value per repeat: the duration of a block of
    ``updates_per_repeat`` consecutive updates divided by that number (a block is a whole epoch
    when ``extrapolated`` is False). ``capture_s`` is the one-off CUDA-graph capture time
    (``cuda-graph`` path only), never included in the per-update times. ``threads`` is the
    intra-op thread count every timed update ran with (None in rows written before it was kept).

    What was timed (:mod:`batchlab.timing.timed_task`): ``model`` and ``dataset`` by name,
    ``network`` in one line (``784-512-512-10 mlp``), ``loss`` the loss of the update, and for a
    user's model and data their short fingerprints (empty and None in rows written before these
    were kept).
    """

    path: str
    device: str
    device_name: str
    model: str
    dataset: str
    optimizer: str
    batch_size: int
    n_examples: int
    updates_per_epoch: int
    per_update_s: tuple[float, ...]
    updates_per_repeat: int
    warmup_updates: int
    per_epoch_s: float
    extrapolated: bool
    synthetic_data: bool
    num_workers: int = 0
    capture_s: float | None = None
    threads: int | None = None
    notes: tuple[str, ...] = ()
    network: str = ""
    loss: str = ""
    model_fingerprint: str | None = None
    data_fingerprint: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_update_s", tuple(float(v) for v in self.per_update_s))
        object.__setattr__(self, "notes", tuple(self.notes))
        if not self.per_update_s:
            raise ValueError("a timing point needs at least one repeat")

    @property
    def repeats(self) -> int:
        return len(self.per_update_s)

    @property
    def per_update_median_s(self) -> float:
        return statistics.median(self.per_update_s)

    @property
    def per_update_q25_s(self) -> float:
        return _quartiles(self.per_update_s)[0]

    @property
    def per_update_q75_s(self) -> float:
        return _quartiles(self.per_update_s)[1]

    @property
    def per_update_min_s(self) -> float:
        return min(self.per_update_s)

    @property
    def per_update_max_s(self) -> float:
        return max(self.per_update_s)

    @property
    def series(self) -> str:
        """The data path and device of the point (a progress line's name for it)."""
        return f"{self.path} ({self.device})"

    @property
    def network_label(self) -> str:
        """The network timed, in one line, with a user's model's fingerprint: ``784-512-512-10 mlp``,
        ``user:net.make_model·3f2a9c1e`` (the model's name in rows that predate ``network``)."""
        return _with_fingerprint(self.network or self.model, self.model_fingerprint)

    @property
    def data_label(self) -> str:
        """The data timed: its name, with a user's data's fingerprint."""
        return _with_fingerprint(self.dataset, self.data_fingerprint)

    @property
    def curve(self) -> tuple[str, ...]:
        """What one line of a figure shares: the network, the data and the loss (so two networks,
        or one network on two data, never make one line), the path and the device."""
        return (self.network_label, self.data_label, self.loss, self.path, self.device, self.device_name)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["per_update_s"] = list(self.per_update_s)
        data["notes"] = list(self.notes)
        data.update(
            repeats=self.repeats,
            per_update_median_s=self.per_update_median_s,
            per_update_q25_s=self.per_update_q25_s,
            per_update_q75_s=self.per_update_q75_s,
            per_update_min_s=self.per_update_min_s,
            per_update_max_s=self.per_update_max_s,
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TimingPoint":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_store_row(self, environment: dict[str, Any] | None = None) -> dict[str, Any]:
        """A row for :meth:`batchlab.store.RunStore.add_timing`; what has no column goes to ``extra``."""
        data = self.to_dict()
        row = {column: data[key] for column, key in _STORE_COLUMNS.items()}
        row["repeats"] = self.repeats
        row["environment"] = environment or {}
        row["extra"] = {k: v for k, v in data.items() if k not in _STORE_COLUMNS.values()}
        return row

    @classmethod
    def from_store_row(cls, row: dict[str, Any]) -> "TimingPoint":
        """Rebuild a point from a row returned by :meth:`batchlab.store.RunStore.timings`."""
        data = dict(row.get("extra") or {})
        data.update({key: row[column] for column, key in _STORE_COLUMNS.items() if column in row})
        if "per_update_s" not in data:
            # A row written by other code: only the summary columns are known.
            data["per_update_s"] = [row["per_update_median_s"]]
        data.setdefault("dataset", "")
        data.setdefault("optimizer", "")
        data.setdefault("updates_per_epoch", _ceil_div(int(data["n_examples"]), int(data["batch_size"])))
        data.setdefault("updates_per_repeat", 0)
        data.setdefault("warmup_updates", 0)
        return cls.from_dict(data)


@dataclass
class TimingTable:
    """All points of one timing sweep, the paths skipped (and why), settings and environments.

    ``environments`` maps a device string (``"cpu"``, ``"cuda"``) to
    :func:`batchlab.runtime.environment.describe_environment` of that device. ``notes`` are the footnotes
    a reader needs (synthetic data, extrapolated epochs, capped batch sizes).
    """

    points: list[TimingPoint] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def series(self) -> dict[tuple[str, ...], list[TimingPoint]]:
        """Points grouped by line (:attr:`TimingPoint.curve`: network, data, loss, path, device),
        each sorted by batch size."""
        grouped: dict[tuple[str, ...], list[TimingPoint]] = {}
        for point in self.points:
            grouped.setdefault(point.curve, []).append(point)
        return {curve: sorted(points, key=lambda p: p.batch_size) for curve, points in grouped.items()}

    def workloads(self) -> list[tuple[str, str, str]]:
        """The distinct (network, data, loss) timed, in the order first met."""
        return list(dict.fromkeys((p.network_label, p.data_label, p.loss) for p in self.points))

    def find(self, path: str, batch_size: int, device: str | None = None) -> TimingPoint | None:
        for point in self.points:
            if point.path == path and point.batch_size == batch_size and (device is None or point.device == device):
                return point
        return None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable data (``json.dumps`` works on it as is)."""
        return {
            "points": [p.to_dict() for p in self.points],
            "skipped": [dict(s) for s in self.skipped],
            "settings": dict(self.settings),
            "environments": {k: dict(v) for k, v in self.environments.items()},
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TimingTable":
        return cls(
            points=[TimingPoint.from_dict(p) for p in data.get("points", [])],
            skipped=[dict(s) for s in data.get("skipped", [])],
            settings=dict(data.get("settings", {})),
            environments={k: dict(v) for k, v in data.get("environments", {}).items()},
            notes=list(data.get("notes", [])),
        )

    def store_rows(self) -> list[dict[str, Any]]:
        """One row per point for :meth:`batchlab.store.RunStore.add_timing`."""
        return [p.to_store_row(self.environments.get(p.device)) for p in self.points]

    @classmethod
    def from_store_rows(cls, rows: list[dict[str, Any]]) -> "TimingTable":
        """A table (for figures and reports) from rows of :meth:`batchlab.store.RunStore.timings`."""
        table = cls(points=[TimingPoint.from_store_row(row) for row in rows])
        for row in rows:
            if row.get("environment") and row.get("device"):
                table.environments.setdefault(row["device"], dict(row["environment"]))
        table.notes = footnotes(table.points)
        return table


def footnotes(points: list[TimingPoint]) -> list[str]:
    """The notes a reader of these points needs: which numbers are extrapolated or synthetic."""
    notes = []
    extrapolated = [p for p in points if p.extrapolated]
    if extrapolated:
        notes.append(
            "* extrapolated: a full epoch did not fit the time budget, so time/epoch = median "
            "time/update × updates per epoch, measured on fewer updates than an epoch "
            f"({len(extrapolated)} of {len(points)} points)."
        )
    threads = _threads_note(points)
    if threads:
        notes.append(threads)
    synthetic = [p for p in points if p.synthetic_data]
    random = [p for p in synthetic if p.data_fingerprint is None]
    if random:
        notes.append(
            f"† synthetic: timed on random data of the dataset's shape with N = {_sizes(random)} examples "
            "(the real training set is smaller or absent); timing does not depend on pixel values."
        )
    repeated = [p for p in synthetic if p.data_fingerprint is not None]
    if repeated:
        notes.append(
            f"† made up: the user's training examples repeated in order up to N = {_sizes(repeated)} (the data "
            "has fewer); shapes and types are the data's own, only the values repeat."
        )
    return notes


def _sizes(points: list[TimingPoint]) -> str:
    return ", ".join(f"{n:,}" for n in sorted({p.n_examples for p in points}))


def _threads_note(points: list[TimingPoint]) -> str | None:
    """Which intra-op thread count the updates ran with, per device and batch sizes."""
    by_count: dict[tuple[str, int], list[int]] = {}
    for point in points:
        if point.threads is not None:
            by_count.setdefault((point.device, point.threads), []).append(point.batch_size)
    if not by_count:
        return None
    parts = [
        f"{count} on {device} (B = {', '.join(str(b) for b in sorted(set(sizes)))})"
        for (device, count), sizes in by_count.items()
    ]
    note = f"Intra-op threads per update: {'; '.join(parts)}."
    devices = [device for device, _ in by_count]
    if len(devices) > len(set(devices)):
        # One device timed with two counts: batchlab.runtime.threads' rule, which the reader should see.
        from batchlab.runtime.threads import ONE_THREAD_BELOW_BATCH

        note += (f" These are the counts training uses (one thread below B = {ONE_THREAD_BELOW_BATCH}, which spares "
                 "small updates a stall on a busy machine; on a quiet one two threads are up to a quarter faster "
                 "there), so the curve can step where the count changes; `batchlab timing --threads N` times one "
                 "count throughout.")
    return note


def _with_fingerprint(name: str, fingerprint: str | None) -> str:
    return f"{name}·{fingerprint}" if fingerprint else name


def _quartiles(values: tuple[float, ...]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q25, _, q75 = statistics.quantiles(values, n=4, method="inclusive")
    return q25, q75


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)
