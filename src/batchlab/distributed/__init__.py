"""Data parallelism on PyTorch's own distributed engine: one run, several processes or machines.

``batchlab train … --nproc N`` (:func:`train_on_processes`) or
``torchrun --nproc-per-node N -m batchlab.distributed …`` trains one run with
``DistributedDataParallel`` — gloo on the CPU, NCCL on GPUs — whose updates are those of a
one-process run of the same global batch (:mod:`batchlab.distributed.plan` says how the batch
is cut and why the run id is shared; :mod:`batchlab.distributed.trainer` how process 0 owns the
store). Across machines, torchrun's ``--nnodes`` and ``--rdzv-endpoint`` start the same module.
"""

from batchlab.distributed.launch import train_on_processes
from batchlab.distributed.plan import DataParallelPlan, plan_data_parallel

__all__ = ["DataParallelPlan", "plan_data_parallel", "train_on_processes"]
