"""Fixed-window hit counters for the rate limits: per process, per host, or across hosts.

Every store answers `hit(key, period) -> (count in the current window, window end)`
atomically, so a limit of N lets exactly N requests through per window however
many workers or nodes answer them:

- `memory://` (`LocalWindows`): one dict and a lock, per process (one worker only);
- `node://` (`NodeWindows`): a small hash table in a memory-mapped file under
  the runtime dir, locked with `flock`, shared by every gunicorn worker and
  every `ledger serve` of the same ledger on this host;
- `redis://host:port/db` (`RedisWindows`): one key per client and window,
  `INCR` + `EXPIRE` in a transaction, shared by every node.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from pathlib import Path
from typing import Protocol

import redis


class Windows(Protocol):
    def hit(self, key: str, period: int) -> tuple[int, float]:
        """Count one hit; return the window's count and when the window ends (epoch s)."""
        ...


def _window_end(period: int) -> int:
    return (int(time.time()) // period + 1) * period


class LocalWindows:
    """Counters in process memory: one dict and one lock.

    Used for `memory://` instead of `limits`' memory storage, which starts a timer
    thread to expire keys; on the lookup path that cost more than the lookup itself.
    """

    MAX_KEYS = 200_000

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, period: int) -> tuple[int, float]:
        end = _window_end(period)
        slot = (key, end)
        with self._lock:
            count = self._counts.get(slot, 0) + 1
            self._counts[slot] = count
            if len(self._counts) > self.MAX_KEYS:
                now = time.time()
                for old in [s for s in self._counts if s[1] <= now]:
                    del self._counts[old]
        return count, end


class NodeWindows:
    """Counters in a memory-mapped file shared by every process of this host.

    An open-addressing table of SLOTS entries (key hash, window end, count); a
    key lives in one of PROBES slots after its hash. A slot whose window ended is
    free. If all PROBES slots hold live windows of other clients (tens of
    thousands of clients in one window), the one with the fewest hits is reused:
    that client's count restarts, the table never grows. The file is sparse, so
    it costs only the pages in use. `flock` orders processes, a thread lock the
    threads of one process (they share the file description, which flock does not
    tell apart).
    """

    SLOTS = 65_536
    PROBES = 8
    SLOT = struct.Struct("<QQQ")
    MAX_COUNT = 2**32  # far past any limit; a damaged file cannot overflow a slot

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        size = self.SLOTS * self.SLOT.size
        # a file object, not a bare descriptor: closed when the store is collected
        self._file = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+b", buffering=0)
        self._fd = self._file.fileno()
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)  # two processes doing it at once is harmless
        self._map = mmap.mmap(self._fd, size)
        self._lock = threading.Lock()

    def hit(self, key: str, period: int) -> tuple[int, float]:
        end = _window_end(period)
        digest = hashlib.blake2b(f"{period}/{key}".encode(), digest_size=8).digest()
        tag = int.from_bytes(digest, "little") or 1  # 0 marks an empty slot
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                count = self._increment(tag, end)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        return count, end

    def _increment(self, tag: int, end: int) -> int:
        now = time.time()
        start = tag % self.SLOTS
        free = victim = None
        fewest = 2**64
        for i in range(self.PROBES):
            offset = ((start + i) % self.SLOTS) * self.SLOT.size
            other, other_end, count = self.SLOT.unpack_from(self._map, offset)
            if other == tag:
                count = min(count, self.MAX_COUNT) + 1 if other_end == end else 1
                self.SLOT.pack_into(self._map, offset, tag, end, count)
                return count
            if free is None and (other == 0 or other_end <= now):
                free = offset
            elif count < fewest:
                victim, fewest = offset, count
        target = free if free is not None else victim
        self.SLOT.pack_into(self._map, target, tag, end, 1)  # type: ignore[arg-type]
        return 1

    def close(self) -> None:
        self._map.close()
        self._file.close()


class RedisWindows:
    """Counters in Redis, shared by every node; bounded connect and command time.

    Keys are `ledger:<namespace>:rl:<period>:<window end>:<key>` and expire one
    second after their window ends. A Redis error is raised as `redis.RedisError`
    for the caller to decide (see `limits.RateLimits`).
    """

    TIMEOUT_S = 0.25

    def __init__(self, url: str, namespace: str) -> None:
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=self.TIMEOUT_S, socket_timeout=self.TIMEOUT_S
        )
        self._prefix = f"ledger:{namespace}:rl:"

    def hit(self, key: str, period: int) -> tuple[int, float]:
        end = _window_end(period)
        name = f"{self._prefix}{period}:{end}:{key}"
        with self._client.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expireat(name, end + 1)
            count, _ = pipe.execute()
        return int(count), end
