"""The Dask client a study command uses: a LocalCluster of worker processes, or a scheduler's address.

Each local worker is one process with one thread, so it runs one dataset at a time and its memory
limit (``memory_limit_mb``) bounds that dataset's run: Dask's nanny pauses a worker at 80 % of it
and restarts it at 95 %. An existing scheduler's workers keep the limits they were started with.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from hybridkit.errors import StudyError

#: Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which freezes glibc's mmap
#: threshold: every block buffer (MBs) is then a fresh mmap with its pages faulted in again, and
#: `generate` ran 1.7x slower in a worker than in a plain process (4 example datasets: 8.3-8.9 s
#: against 4.9-5.5 s). Unset (None) leaves glibc's default; blocks stay bounded by
#: engine.max_memory_mb either way.
LOCAL_WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@contextlib.contextmanager
def study_client(workers: int, memory_limit_mb: int, scheduler: str | None = None,
                 client=None) -> Iterator:
    """Yield a ``distributed.Client``: ``client`` itself, one connected to ``scheduler``, or a
    LocalCluster of ``workers`` processes of one thread and ``memory_limit_mb`` MB each (closed
    on exit)."""
    if client is not None:
        yield client
        return
    import dask
    from distributed import Client, LocalCluster

    # distributed logs every worker start and stop at INFO; a study prints its own summary
    quiet = logging.getLogger("distributed")
    if not logging.getLogger("hybridkit").isEnabledFor(logging.INFO):
        quiet.setLevel(logging.ERROR)

    if scheduler is not None:
        try:
            c = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise StudyError(f"--scheduler {scheduler}: no Dask scheduler answers there ({exc}); "
                             "give the address the scheduler prints, e.g. tcp://host:8786") from None
        try:
            yield c
        finally:
            c.close()
        return
    with dask.config.set(LOCAL_WORKER_CONFIG), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         memory_limit=f"{memory_limit_mb}MB", dashboard_address=None,
                         silence_logs=logging.ERROR) as cluster, Client(cluster) as c:
        yield c
