"""Rate limits hold across workers, processes and nodes; caches and sockets are not shared.

A real `ledger serve` with two workers, two app instances behind one Redis, the
host store hammered from several processes, two servers side by side, and the
certificate-page cache under 10,000 forged tokens.
"""

from __future__ import annotations

import json
import multiprocessing
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis

from ledger.api import create_app
from ledger.api.limits import RateLimits
from ledger.api.rate_stores import NodeWindows, RedisWindows
from ledger.config import Config, ConfigError, suite_setting
from ledger.domain.certificate import CODE_ALPHABET
from ledger.lru import LRU
from ledger.store.application import Ledger
from tests.certification_flow import Flow
from tests.conftest import make_token
from tests.served import free_port, serve

REDIS_URL = suite_setting("LEDGER_TEST_REDIS")
FOREVER = 10**9  # a window that cannot end during a test (epoch 2e9 is in 2033)
UNKNOWN = "/api/v1/certificates/P-BBBBBBBB"


def _fresh_hour() -> None:
    """Start a burst early enough in the hour that its fixed window cannot end during it."""
    if time.time() % 3600 > 3585:
        time.sleep(3601 - time.time() % 3600)


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _serve(
    config: Config, port: int | None = None, **env: str
) -> AbstractContextManager[tuple[str, subprocess.Popen]]:
    """`ledger serve` with two workers on `config`'s store and runtime dir."""
    env = {"LEDGER_RUNTIME_DIR": str(config.runtime_dir), **env}
    return serve(config.database_url, config.keys_dir, workers=2, port=port, env=env)


def _init(config: Config) -> None:
    ledger = Ledger(config)
    ledger.init()
    ledger.close()


def test_two_workers_share_one_limit(database_url: str, tmp_path: Path) -> None:
    """Limit 10 with 2 workers: exactly 10 answers in total, then problem+json 429."""
    config = Config.from_env(database_url=database_url, keys_dir=tmp_path / "keys")
    _init(config)
    with _serve(config, LEDGER_LOOKUP_RATE_LIMIT="10/hour", LEDGER_RATELIMIT_STORAGE="node://") as (
        base,
        _,
    ):
        _fresh_hour()
        with ThreadPoolExecutor(16) as pool:  # concurrent, so both workers take requests
            answers = list(pool.map(_get, [f"{base}{UNKNOWN}"] * 40))
    served = [headers for status, headers, _ in answers if status == 404]
    refused = [(headers, body) for status, headers, body in answers if status == 429]
    assert len(served) == 10 and len(refused) == 30
    # one counter, incremented atomically: every "remaining" value exactly once
    assert sorted(int(h["X-RateLimit-Remaining"]) for h in served) == list(range(10))
    for headers, body in refused:
        assert headers["Content-Type"] == "application/problem+json"
        assert 0 < int(headers["Retry-After"]) <= 3600
        assert json.loads(body)["status"] == 429


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Test clients of app instances as if on separate hosts (each its own runtime dir)."""
    apps: list[Any] = []

    def start(host: str, **overrides: Any) -> Any:
        config = Config.from_env(
            database_url=database_url,
            keys_dir=tmp_path / "keys",
            runtime_dir=tmp_path / host,
            **overrides,
        )
        _init(config)
        apps.append(create_app(config))
        return apps[-1].test_client()

    yield start
    for app in apps:
        app.extensions["ledger"].ledger.close()


def test_two_nodes_share_the_limit_through_redis(node: Callable[..., Any]) -> None:
    settings = {
        "ratelimit_storage": REDIS_URL,
        "log_origin": f"test.local/{uuid.uuid4().hex}",  # this test's own keys in Redis
        "lookup_rate_limit": "4/hour",
    }
    nodes = [node(host, **settings) for host in "ab"]
    _fresh_hour()
    statuses = [nodes[i % 2].get(UNKNOWN).status_code for i in range(8)]
    assert statuses == [404] * 4 + [429] * 4
    refused = nodes[0].get(UNKNOWN)
    assert refused.mimetype == "application/problem+json" and "Retry-After" in refused.headers


def test_an_unreachable_redis_falls_back_to_the_host_limit(node: Callable[..., Any]) -> None:
    """No 500 and no wait when Redis is down; the limit still holds on this host."""
    client = node(
        "a",
        ratelimit_storage="redis://127.0.0.1:1/0",  # nothing listens on port 1
        lookup_rate_limit="3/hour",
    )
    _fresh_hour()
    started = time.monotonic()
    statuses = [client.get(UNKNOWN).status_code for _ in range(5)]
    assert statuses == [404] * 3 + [429] * 2
    assert time.monotonic() - started < 2


def test_redis_keys_expire_with_their_window() -> None:
    store = RedisWindows(REDIS_URL, f"test-{uuid.uuid4().hex}")
    assert store.hit("lookups/198.51.100.7", 60)[0] == 1
    assert store.hit("lookups/198.51.100.7", 60)[0] == 2
    (key,) = redis.Redis.from_url(REDIS_URL).keys(f"{store._prefix}*")
    assert 0 < redis.Redis.from_url(REDIS_URL).ttl(key) <= 61


def test_an_unknown_store_is_a_configuration_error(tmp_path: Path) -> None:
    config = Config.from_env(
        database_url=f"sqlite:///{tmp_path / 'l.db'}",
        keys_dir=tmp_path / "keys",
        ratelimit_storage="memcached://127.0.0.1",
    )
    with pytest.raises(ConfigError, match="LEDGER_RATELIMIT_STORAGE"):
        RateLimits(config)


def _hammer(path: str, hits: int) -> list[int]:
    store = NodeWindows(Path(path))
    return [store.hit("lookups/203.0.113.9", FOREVER)[0] for _ in range(hits)]


def test_node_store_counts_atomically_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "counters.bin")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        counts = [c for batch in pool.starmap(_hammer, [(path, 250)] * 4) for c in batch]
    assert sorted(counts) == list(range(1, 1001))


def test_node_store_counts_atomically_across_threads(tmp_path: Path) -> None:
    store = NodeWindows(tmp_path / "counters.bin")
    with ThreadPoolExecutor(4) as pool:
        counts = [
            c
            for batch in pool.map(
                lambda _: [store.hit("uploads/203.0.113.9", FOREVER)[0] for _ in range(250)],
                range(4),
            )
            for c in batch
        ]
    assert sorted(counts) == list(range(1, 1001))


def test_node_store_stays_the_same_size_under_many_clients(tmp_path: Path) -> None:
    path = tmp_path / "counters.bin"
    store = NodeWindows(path)
    size = path.stat().st_size
    for n in range(2 * NodeWindows.SLOTS):  # more clients than slots
        store.hit(f"lookups/10.{n >> 16}.{(n >> 8) & 255}.{n & 255}", FOREVER)
    assert path.stat().st_size == size
    assert store.hit("lookups/192.0.2.1", FOREVER)[0] == 1
    assert store.hit("lookups/192.0.2.1", FOREVER)[0] == 2  # a live key is still found


def test_two_servers_on_one_host_have_their_own_control_socket(
    database_url: str, tmp_path: Path
) -> None:
    config = Config.from_env(database_url=database_url, keys_dir=tmp_path / "keys")
    _init(config)
    ports = [free_port(), free_port()]
    sockets = [config.runtime_dir / f"gunicorn-127.0.0.1-{port}.ctl" for port in ports]
    with ExitStack() as stack:
        with ThreadPoolExecutor(2) as pool:  # started side by side; each stopped on exit
            started = pool.map(lambda port: stack.enter_context(_serve(config, port)), ports)
            servers = [server for _, server in started]
        for port in ports:
            assert _get(f"http://127.0.0.1:{port}/api/v1/health")[0] == 200
        for _ in range(50):  # the arbiter opens its socket just after the workers start
            if all(path.exists() for path in sockets):
                break
            time.sleep(0.1)
        for path in sockets:
            with socket.socket(socket.AF_UNIX) as conn:
                conn.connect(str(path))
        servers[0].terminate()
        servers[0].wait(timeout=20)
        assert not sockets[0].exists() and sockets[1].exists()  # the first took only its own
        assert _get(f"http://127.0.0.1:{ports[1]}/api/v1/health")[0] == 200


def test_forged_tokens_and_unknown_codes_do_not_grow_the_page_cache(
    database_url: str, node: Callable[..., Any]
) -> None:
    client = node("a", lookup_rate_limit="100000/minute")
    app = client.application
    _, code, _ = Flow(app, client, make_token(app, "admin")).certified()
    views = app.extensions["ledger"].views
    assert client.get(f"/v/{code}").status_code == 200
    cached = len(views.pages)
    forged = 1_000  # past the bound (CACHE_SIZE) four times
    for _ in range(forged):
        token = secrets.token_urlsafe(48)
        response = client.get(f"/v/{code}?t={token}")
        assert response.status_code == 200
        assert (code, "fr", token) not in views.pages
    assert len(views.pages) <= cached  # (views are re-verified every 10 s, which empties it)
    for n in range(300):  # well-formed codes that do not exist
        unknown = "P-" + "".join(CODE_ALPHABET[int(d)] for d in f"{n:08d}")
        assert client.get(f"/api/v1/certificates/{unknown}").status_code == 404
    assert len(views._views) <= views.CACHE_SIZE


def test_lru_keeps_the_most_recent_entries_only() -> None:
    cache: LRU[int] = LRU(256)
    for n in range(10_000):
        cache[secrets.token_hex(8)] = n
        if n == 5:
            cache["kept"] = -1
        if n % 100 == 0 and "kept" in cache:
            assert cache.get("kept") == -1  # a read makes it recent again
    assert len(cache) == 256 and cache.get("kept") == -1
    cache.clear()
    assert len(cache) == 0
