"""Event signatures checked on every core while the audit walks the log in order.

Signature verification is almost all of an audit's cost and each check stands
alone, so the walk hands (seq, public key, signature, message) to a pool of
processes in batches and keeps only the order checks (seq, chain link, hash, key
history) for itself. At most a few batches are in flight, so memory stays flat
whatever the log's size. A log smaller than one batch never starts the pool.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType

from ledger import crypto

BATCH = 1024  # signatures per task: large enough to amortise the hand-over
IN_FLIGHT_PER_WORKER = 3

Check = tuple[int, bytes, bytes, bytes]
"""(seq, public key, signature, signed message)."""


def default_workers() -> int:
    """Every core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def first_bad(batch: list[Check]) -> int | None:
    """The seq of the first signature in `batch` that does not verify (runs in a worker)."""
    index = crypto.verify_batch([(public, sig, message) for _, public, sig, message in batch])
    return None if index is None else batch[index][0]


class SignatureChecker:
    """Collects signature checks; `first_failure()` waits for them all and names the first bad seq.

    `workers` <= 1 verifies in this process (the sequential audit).
    """

    def __init__(self, workers: int = 1, batch: int | None = None) -> None:
        self.workers = workers
        self.batch_size = batch or BATCH
        self._batch: list[Check] = []
        self._pending: deque[Future[int | None]] = deque()
        self._pool: ProcessPoolExecutor | None = None
        self._failures: list[int] = []

    def add(self, seq: int, public: bytes, signature: bytes, message: bytes) -> None:
        self._batch.append((seq, public, signature, message))
        if len(self._batch) >= self.batch_size:
            self._submit(start_pool=True)

    def first_failure(self) -> int | None:
        """Verify what is left and wait for every batch; the smallest failing seq, or None."""
        self._submit(start_pool=False)
        while self._pending:
            self._collect()
        return min(self._failures, default=None)

    def _submit(self, start_pool: bool) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        if self.workers > 1 and self._pool is None and start_pool:
            context = multiprocessing.get_context("spawn")  # no inherited DB sockets or threads
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
        if self._pool is None:
            self._record(first_bad(batch))
            return
        self._pending.append(self._pool.submit(first_bad, batch))
        while len(self._pending) >= self.workers * IN_FLIGHT_PER_WORKER:
            self._collect()

    def _collect(self) -> None:
        self._record(self._pending.popleft().result())

    def _record(self, seq: int | None) -> None:
        if seq is not None:
            self._failures.append(seq)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> SignatureChecker:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
