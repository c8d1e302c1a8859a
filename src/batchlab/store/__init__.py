"""The run store: one SQLite file per study, safe with several processes writing at once.

* :mod:`batchlab.store.database`: the file, its schema, the WAL journal, the write lock and retries.
* :mod:`batchlab.store.clock`: the one format of the store's timestamps (UTC, to the microsecond).
* :mod:`batchlab.store.status`: the run statuses (:class:`RunStatus`) and which of them are results.
* :mod:`batchlab.store.decision`: :func:`decide` — finished, busy, resume or start — for one run.
* :mod:`batchlab.store.record`: :class:`RunRecord`, one stored run.
* :mod:`batchlab.store.runs`: :class:`RunStore` — runs, per-epoch metrics, timings, analysis
  records, and the runs' weight and checkpoint files.
* :mod:`batchlab.store.export`: stored runs as a table, CSV or JSON; the registry of export formats.
* :mod:`batchlab.store.query`: ``--where`` conditions and ``--sort`` keys over stored runs.
* :mod:`batchlab.store.tensorboard`: stored runs as TensorBoard event folders.
"""

from batchlab.files import atomic_write, write_text_atomically
from batchlab.store.status import (
    DIVERGED,
    ENDED_STATUSES,
    FAILED,
    FAILED_TO_TRAIN,
    FINAL_STATUSES,
    FINISHED,
    INTERRUPTED,
    RUNNING,
    STATUSES,
    RunStatus,
    is_result,
)
from batchlab.store.decision import Action, Decision, decide
from batchlab.store.database import BUSY_TIMEOUT_S, LOCK_RETRIES, SCHEMA_NAME, SCHEMA_VERSION, TIMING_COLUMNS
from batchlab.store.export import (
    CONFIG_COLUMNS,
    EXPORT_COLUMNS,
    EXPORT_FORMATS,
    EXPORTERS,
    SUMMARY_COLUMNS,
    Exporter,
    Labels,
    export_runs,
    flat_run,
    get_exporter,
    register_exporter,
)
from batchlab.store.record import RunRecord
from batchlab.store.runs import RunStore

__all__ = [
    "Action",
    "BUSY_TIMEOUT_S",
    "CONFIG_COLUMNS",
    "DIVERGED",
    "Decision",
    "ENDED_STATUSES",
    "EXPORT_COLUMNS",
    "EXPORT_FORMATS",
    "EXPORTERS",
    "Exporter",
    "Labels",
    "FAILED",
    "FAILED_TO_TRAIN",
    "FINAL_STATUSES",
    "FINISHED",
    "INTERRUPTED",
    "LOCK_RETRIES",
    "RUNNING",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "STATUSES",
    "SUMMARY_COLUMNS",
    "TIMING_COLUMNS",
    "atomic_write",
    "decide",
    "export_runs",
    "flat_run",
    "get_exporter",
    "is_result",
    "register_exporter",
    "write_text_atomically",
]
