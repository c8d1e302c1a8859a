"""Joining an existing Ray cluster: one try with short timeouts, quiet, and a one-line error.

Left to its defaults, ``ray.init(address=...)`` against a cluster that refuses the connection
(a closed port, a wrong address, token authentication without the token) retries for minutes
(Ray 2.x: 20 attempts, each waiting 5 s for the GCS, 5 s for its pubsub and 30 s for the
cluster id) and prints every attempt from Ray's C++ core straight to file descriptor 2, then
ends in a traceback. Here:

* the attempt count and the waits are set through Ray's own environment variables, only where
  the user has not set them, and before Ray is first imported (its core reads them then);
* Ray's own output during the attempt goes to a temporary file instead of the terminal; it is
  replayed on success and dropped on failure, whose cause becomes one line naming the address
  and what to check.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from batchlab.errors import UserError

# Ray's environment variables for how long a driver waits for the cluster's GCS (seconds) and
# how many times it tries; values the user set are kept.
CONNECT_SETTINGS = {
    "RAY_gcs_server_port_wait_time_s": "1",  # one attempt
    "RAY_gcs_rpc_server_connect_timeout_s": "5",
    "RAY_py_gcs_connect_timeout_s": "5",
}


def join_cluster(address: str) -> bool:
    """Connect this process to the Ray cluster at ``address``; ``False`` if Ray was already
    initialized here (then it is used as it is). Raises :class:`UserError` in one line when the
    cluster cannot be reached."""
    for name, value in CONNECT_SETTINGS.items():
        os.environ.setdefault(name, value)
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs the ray extra: pip install 'batchlab[ray]'") from None
    if ray.is_initialized():
        return False
    with _stderr_kept_unless_failed():
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise UserError(
                f"cannot join the Ray cluster at {address} ({reason}); check that the cluster is running "
                "(`ray status` on its head node), that the address and port are its GCS address "
                "(e.g. head:6379, or ray://head:10001 for Ray Client) and, where the cluster uses token "
                "authentication, that RAY_AUTH_TOKEN is set"
            ) from None
    return True


@contextmanager
def _stderr_kept_unless_failed() -> Iterator[None]:
    """Send file descriptor 2 (where Ray's C++ core logs) to a temporary file for the block;
    write it back to stderr when the block succeeds, drop it when it raises."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured by a test runner)
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        succeeded = False
        try:
            yield
            succeeded = True
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if succeeded:
                captured.seek(0)
                text = captured.read().decode("utf-8", "replace")
                if text:
                    sys.stderr.write(text)
