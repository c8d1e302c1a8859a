"""The shape every experiment shares: a plan at a scale, runs, one record, figures, text, a report section.

An experiment (``gap``, ``largebatch``, ``advise``, the lecture) is planned at a *scale*
(:func:`check_scale`), trains and measures with a *log* of one line per step (:func:`stage_log`),
and keeps its result in the run store as one *record* of its *kind*. Every such record carries
the same :class:`Envelope` — where and how it was made: the environment, the seconds it took,
the machine's load at the start and the end, and when it was created — beside the experiment's
own body. An experiment declares itself once, as an :class:`Experiment` (kind, title, scales,
the JSON file its command writes, its figures and its report sections), with
:func:`register_experiment` where its package is defined (timm's ``@register_model`` habit), so
the report and the commands ask this registry instead of importing each experiment by name.

Stored records stay readable: the envelope's keys (``environment``, ``seconds``, ``created``,
``load_average``) are the ones every record has had, and :meth:`Envelope.read` also reads a
record without a load average or with ``created`` in Unix seconds.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from batchlab.errors import ConfigError

# The scales of gap, largebatch and advise: minutes on a CPU, or the papers' setting.
SCALES = ("quick", "full")
# The gap experiment's, with a scale between them: standard, about two hours on a 2-core CPU (the
# full Fashion-MNIST with a conv net). Here, not in the experiment, so that its command's --help
# builds without torch.
GAP_SCALES = ("quick", "standard", "full")

Log = Callable[[str], None]
# (id, title, caption, matplotlib Figure) for each figure of a stored record.
FigureList = Callable[[Mapping[str, Any]], Sequence[tuple[str, str, str, Any]]]
# Rows of the report's summary table (batchlab.analysis.summary.SummaryRow) from a report context.
SummaryRows = Callable[[Any], Sequence[Any]]
# A report section from a report context (batchlab.report.context.ReportContext): a
# batchlab.report.document.ReportSection, the same as plain data, or None (nothing stored).
SectionBuild = Callable[[Any], Any]


def check_scale(scale: str, scales: Sequence[str] = SCALES) -> str:
    """``scale`` when it is one of ``scales``; else a ConfigError that lists them."""
    if scale not in scales:
        raise ConfigError(f"unknown scale {scale!r}; allowed: {', '.join(scales)}")
    return scale


def check_seeds(seeds: Any, note: str = "") -> int:
    """``seeds`` when it is an integer ≥ 1 (a bool is not); else a ConfigError (``note`` is appended
    to the allowed values, e.g. "(the paper used 5)")."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds {seeds!r} is invalid; allowed: an integer ≥ 1{' ' + note if note else ''}")
    return seeds


def stage_log(kind: str) -> Log:
    """A log that writes ``[kind] message`` to stderr, one line per call, flushed at once (the
    experiments' progress; stdout stays for the result)."""

    def log(message: str) -> None:
        print(f"[{kind}] {message}", file=sys.stderr, flush=True)

    return log


def utc_now() -> str:
    """The current time as ISO 8601 in UTC to the second (an envelope's ``created``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Envelope:
    """Where and how a record was made, the same for every experiment.

    ``load_average`` is the 1-minute load average at the start and at the end (None where the
    system has none): other processes competing for the CPUs stretch ``seconds`` and every time
    inside the record.
    """

    environment: dict[str, Any]
    seconds: float
    created: str
    load_average: tuple[float | None, float | None] = (None, None)

    def to_dict(self) -> dict[str, Any]:
        return {"environment": self.environment, "seconds": self.seconds, "created": self.created,
                "load_average": list(self.load_average)}

    @classmethod
    def read(cls, record: Mapping[str, Any]) -> Envelope:
        """The envelope of a stored record, also of one written before the envelope was shared:
        a missing load average is (None, None), a ``created`` in Unix seconds becomes ISO text."""
        created = record.get("created", "")
        if isinstance(created, (int, float)) and not isinstance(created, bool):
            created = datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="seconds")
        start, end = (list(record.get("load_average") or []) + [None, None])[:2]
        return cls(dict(record.get("environment") or {}), float(record.get("seconds") or 0.0), str(created),
                   (start, end))


def load_text(load_average: Sequence[float | None] | None) -> str:
    """``"; load average a at the start, b at the end on N CPUs (…)"`` from an envelope's
    ``load_average``, or "" where none was read."""
    start, end = (list(load_average or ()) + [None, None])[:2]
    if start is None:
        return ""
    at_end = "" if end is None else f", {end:.1f} at the end"
    return (f"; load average {start:.1f} at the start{at_end} on {os.cpu_count()} CPUs "
            "(other processes stretch these times)")


def latest_record(store: Any, kind: str) -> dict[str, Any] | None:
    """The most recently created record of ``kind`` in ``store`` (a :class:`batchlab.store.RunStore`),
    or None when it holds none."""
    records = store.records(kind)
    if not records:
        return None
    return max(records, key=lambda r: str(Envelope.read(r).created))


class Stopwatch:
    """Started when an experiment starts: the clock and the load then, for its :class:`Envelope`."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.load_before = _machine_load()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def envelope(self, device: Any) -> Envelope:
        """The envelope now: the environment of ``device``, the seconds since the start, the load
        at the start and now."""
        # Imported here so that the registry below can be listed without torch.
        from batchlab.runtime.environment import describe_environment

        return Envelope(describe_environment(device), self.elapsed, utc_now(), (self.load_before, _machine_load()))


def _machine_load() -> float | None:
    from batchlab.timing.harness import machine_load

    return machine_load()


# Where sections stand in the report: the summary table leads (the answer first), then the lecture's
# order: parallelism, optimization, why noise helps, generalization, (the lecture's place for its
# summary, which advise follows), momentum. An experiment's sections take a place between them.
ORDER_LEAD = 0.0
ORDER_TIMING = 10.0
ORDER_ACCURACY = 20.0
ORDER_NOISE = 30.0
ORDER_GENERALIZATION = 40.0
ORDER_SUMMARY = 50.0
ORDER_MOMENTUM = 60.0


@dataclass(frozen=True)
class Section:
    """A report section an experiment contributes: its id, its place (sections are sorted by
    ``order``, see :mod:`batchlab.report.registry`) and the function that builds it."""

    id: str
    order: float
    build: SectionBuild


@dataclass(frozen=True)
class Experiment:
    """What the commands and the report need to know about one experiment.

    ``kind``: the kind of its record in the store (also its command's name); ``scales``: what
    ``--scale`` allows; ``plan(scale, **overrides)``: what it will do at a scale, every override
    checked (a ConfigError before anything trains); ``run(plan, store, **options)``: trains and
    measures into the store and returns the result, whose ``to_dict()`` is the record (its body
    and the :class:`Envelope`); ``json_name``: the file its command writes to ``--out``;
    ``figures``: its figures from a stored record; ``text``: what its command prints from a
    record (tables and words); ``sections``: its sections of the report; ``summary_rows``: the
    rows it adds to the report's summary table.
    """

    kind: str
    title: str
    scales: tuple[str, ...] = SCALES
    plan: Callable[..., Any] | None = None
    run: Callable[..., Any] | None = None
    json_name: str = ""
    figures: FigureList | None = None
    text: Callable[[Mapping[str, Any]], str] | None = None
    sections: tuple[Section, ...] = field(default_factory=tuple)
    summary_rows: SummaryRows | None = None


_EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(experiment: Experiment) -> Experiment:
    """Add (or replace) ``experiment`` under its kind; returns it."""
    _EXPERIMENTS[experiment.kind] = experiment
    return experiment


def registered_experiments() -> list[Experiment]:
    """The experiments registered so far, in the order they registered
    (:func:`batchlab.experiments.experiments` imports them all first)."""
    return list(_EXPERIMENTS.values())
