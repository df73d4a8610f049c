"""Proactive pacing per Klaviyo rate-limit bucket, shared across processes.

Each Airflow task is a new process, so in-memory pacing would let parallel tasks of one account
blow through Klaviyo's limits together. State therefore lives in a SQLite file (serialized by a
file lock) or Redis, keyed by account (a digest, never the key) and bucket. The counting and the
wait math are pyrate-limiter's sliding-window log; this module only chooses rates and storage,
and adds a persisted "paused until" per bucket for waits the server asks for (429 / Remaining 0).

The same store keeps the attempt ledger (``TaskLedger``): per (run, task, map index, account) key,
how many reporting calls of each chunk went unanswered (each may have cost one of the 225 daily
reporting calls), and the diagnostics of the task's earlier tries. Airflow retries a task in a new
process, so this state must outlive the process, exactly like the pacing state.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from pyrate_limiter import AbstractBucket, InMemoryBucket, Rate, RateItem, RedisBucket, SQLiteBucket
from pyrate_limiter.buckets.redis_bucket import LuaScript
from pyrate_limiter.buckets.sqlite_bucket import Queries

from flowsync_provider.core.limits import RateLimit
from flowsync_provider.klaviyo.errors import KlaviyoConfigError, KlaviyoRateLimitExceeded

# Client-side windows are a little longer than the server's: the server stamps a request when it
# arrives, some milliseconds after we admitted it (more for the first request of a connection, or
# on a loaded machine), and that jitter must not turn into a 429.
WINDOW_MARGIN_RATIO = 0.05
WINDOW_MARGIN_MS = 100
LEAK_EVERY = 50
# Ledger rows outlive any run (a history run deferred on the daily quota can span days), then go.
LEDGER_TTL_SECONDS = 30 * 86400


def pacing_rates(limit: RateLimit, time_scale: float) -> list[Rate]:
    """pyrate-limiter rates for a bucket: windows divided by the time scale, plus a small margin.

    Redundant windows are dropped so the list satisfies pyrate-limiter's ordering contract
    (e.g. after lowering the steady limit below the burst, the burst window adds nothing).
    """
    rates: list[Rate] = []
    for count, seconds in sorted(limit.windows(), key=lambda pair: pair[1]):
        interval = math.ceil(seconds * 1000.0 / time_scale * (1 + WINDOW_MARGIN_RATIO)) + WINDOW_MARGIN_MS
        rate = Rate(count, interval)
        while rates and rate.limit <= rates[-1].limit:
            rates.pop()  # a longer window allowing no more calls makes the shorter one redundant
        if rates and rate.limit / rate.interval > rates[-1].limit / rates[-1].interval:
            continue  # allows more than the shorter window already implies: redundant
        rates.append(rate)
    return rates


class _Store(Protocol):
    def bucket(self, name: str, rates: list[Rate]) -> AbstractBucket: ...
    def lock(self) -> object: ...
    def paused_until_ms(self, name: str) -> int: ...
    def pause_until_ms(self, name: str, until_ms: int) -> None: ...
    def ledger_count(self, key: str) -> int: ...
    def ledger_add(self, key: str) -> int: ...
    def ledger_append(self, key: str, entry: str) -> None: ...
    def ledger_entries(self, key: str) -> list[str]: ...
    def close(self) -> None: ...


class _SQLiteStore:
    """One SQLite file for all accounts/buckets; a file lock serializes processes."""

    def __init__(self, path: Path) -> None:
        from filelock import FileLock

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file_lock = FileLock(str(path) + ".lock")
        with self._file_lock:
            self._conn = sqlite3.connect(
                str(path), isolation_level="DEFERRED", check_same_thread=False, timeout=30
            )
            self._conn.execute("PRAGMA journal_mode=WAL;")
            self._conn.execute("PRAGMA synchronous=NORMAL;")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS flowsync_pause (name TEXT PRIMARY KEY, until_ms INTEGER)"
            )
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS flowsync_ledger (key TEXT PRIMARY KEY, spent INTEGER, updated_ms INTEGER)"
            )
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS flowsync_ledger_tries "
                "(seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT, entry TEXT, created_ms INTEGER)"
            )
            expired = int((time.time() - LEDGER_TTL_SECONDS) * 1000)
            self._conn.execute("DELETE FROM flowsync_ledger WHERE updated_ms < ?", (expired,))
            self._conn.execute("DELETE FROM flowsync_ledger_tries WHERE created_ms < ?", (expired,))
            self._conn.commit()

    def lock(self) -> object:
        return self._file_lock

    def bucket(self, name: str, rates: list[Rate]) -> AbstractBucket:
        table = "rl_" + name
        with self._file_lock:
            self._conn.execute(Queries.CREATE_BUCKET_TABLE.format(table=table))
            self._conn.execute(
                Queries.CREATE_INDEX_ON_TIMESTAMP.format(index_name=f"idx_{table}_ts", table_name=table)
            )
            self._conn.commit()
        return SQLiteBucket(rates, self._conn, table=table, lock=self._file_lock)

    def paused_until_ms(self, name: str) -> int:
        row = self._conn.execute("SELECT until_ms FROM flowsync_pause WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def pause_until_ms(self, name: str, until_ms: int) -> None:
        with self._file_lock:
            self._conn.execute(
                "INSERT INTO flowsync_pause (name, until_ms) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET until_ms = MAX(until_ms, excluded.until_ms)",
                (name, until_ms),
            )
            self._conn.commit()

    def ledger_count(self, key: str) -> int:
        row = self._conn.execute("SELECT spent FROM flowsync_ledger WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def ledger_add(self, key: str) -> int:
        with self._file_lock:
            self._conn.execute(
                "INSERT INTO flowsync_ledger (key, spent, updated_ms) VALUES (?, 1, ?) "
                "ON CONFLICT(key) DO UPDATE SET spent = spent + 1, updated_ms = excluded.updated_ms",
                (key, int(time.time() * 1000)),
            )
            self._conn.commit()
            return self.ledger_count(key)

    def ledger_append(self, key: str, entry: str) -> None:
        with self._file_lock:
            self._conn.execute(
                "INSERT INTO flowsync_ledger_tries (key, entry, created_ms) VALUES (?, ?, ?)",
                (key, entry, int(time.time() * 1000)),
            )
            self._conn.commit()

    def ledger_entries(self, key: str) -> list[str]:
        rows = self._conn.execute("SELECT entry FROM flowsync_ledger_tries WHERE key = ? ORDER BY seq", (key,))
        return [str(r[0]) for r in rows.fetchall()]

    def close(self) -> None:
        self._conn.close()


class _OrderSafeRedisBucket(RedisBucket):
    """pyrate-limiter's RedisBucket, but a window also counts entries stamped *after* ``now``.

    Each process stamps its item with its own clock before the Lua script runs, so a process that
    took its timestamp first can reach Redis second. The stock script counts ``[window_start, now]``
    and misses the newer entry already stored, admitting both (two workers, one burst slot).
    Counting ``[window_start, +inf]`` closes that race; it can only make admission stricter.
    """

    @classmethod
    def init(cls, rates: list[Rate], redis: object, bucket_key: str) -> _OrderSafeRedisBucket:  # type: ignore[override]
        script = LuaScript.PUT_ITEM.replace(
            "redis.call('ZCOUNT', bucket, window_start, now)", "redis.call('ZCOUNT', bucket, window_start, '+inf')"
        )
        if script == LuaScript.PUT_ITEM:
            raise KlaviyoConfigError("pyrate-limiter's Redis script changed; re-check the limiter's ordering fix")
        return cls(rates, redis, bucket_key, redis.script_load(script))  # type: ignore[attr-defined]


class _RedisStore:
    """Redis keys ``flowsync:limiter:<account>:<bucket>``; one Lua script per put keeps it atomic."""

    PREFIX = "flowsync:limiter:"

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url)
        self._lock = threading.RLock()

    def lock(self) -> object:
        return self._lock

    def bucket(self, name: str, rates: list[Rate]) -> AbstractBucket:
        return _OrderSafeRedisBucket.init(rates, self._redis, self.PREFIX + name)

    def paused_until_ms(self, name: str) -> int:
        raw = self._redis.get(self.PREFIX + "pause:" + name)
        return int(raw) if raw else 0

    def pause_until_ms(self, name: str, until_ms: int) -> None:
        ttl = max(1, until_ms - int(time.time() * 1000))
        key = self.PREFIX + "pause:" + name
        current = self.paused_until_ms(name)
        if until_ms > current:
            self._redis.set(key, until_ms, px=ttl)

    def ledger_count(self, key: str) -> int:
        raw = self._redis.get(self.PREFIX + "ledger:" + key)
        return int(raw) if raw else 0

    def ledger_add(self, key: str) -> int:
        name = self.PREFIX + "ledger:" + key
        pipe = self._redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, LEDGER_TTL_SECONDS)
        return int(pipe.execute()[0])

    def ledger_append(self, key: str, entry: str) -> None:
        name = self.PREFIX + "ledger-tries:" + key
        pipe = self._redis.pipeline()
        pipe.rpush(name, entry)
        pipe.expire(name, LEDGER_TTL_SECONDS)
        pipe.execute()

    def ledger_entries(self, key: str) -> list[str]:
        raw = self._redis.lrange(self.PREFIX + "ledger-tries:" + key, 0, -1)
        return [r.decode() if isinstance(r, bytes) else str(r) for r in raw]

    def close(self) -> None:
        self._redis.close()


class _MemoryStore:
    """Process-local state (``memory://``): for tests and one-off scripts, not for Airflow tasks."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._pauses: dict[str, int] = {}
        self._spent: dict[str, int] = {}
        self._tries: dict[str, list[str]] = {}

    def lock(self) -> object:
        return self._lock

    def bucket(self, name: str, rates: list[Rate]) -> AbstractBucket:
        return InMemoryBucket(rates)

    def paused_until_ms(self, name: str) -> int:
        return self._pauses.get(name, 0)

    def pause_until_ms(self, name: str, until_ms: int) -> None:
        self._pauses[name] = max(until_ms, self._pauses.get(name, 0))

    def ledger_count(self, key: str) -> int:
        return self._spent.get(key, 0)

    def ledger_add(self, key: str) -> int:
        with self._lock:
            self._spent[key] = self._spent.get(key, 0) + 1
            return self._spent[key]

    def ledger_append(self, key: str, entry: str) -> None:
        with self._lock:
            self._tries.setdefault(key, []).append(entry)

    def ledger_entries(self, key: str) -> list[str]:
        return list(self._tries.get(key, []))

    def close(self) -> None:
        self._pauses.clear()


def open_store(url: str) -> _Store:
    if url.startswith("memory://"):
        return _MemoryStore()
    if url.startswith("sqlite:///"):
        return _SQLiteStore(Path(url[len("sqlite://"):]))
    if url.startswith(("redis://", "rediss://", "unix://")):
        return _RedisStore(url)
    raise KlaviyoConfigError(f"unsupported limiter URL scheme {url.split(':', 1)[0]!r}")


class Pacer:
    """Admit requests per (account, bucket) at the spec's rates; raise instead of over-long sleeps."""

    def __init__(self, url: str, account_key: str, time_scale: float = 1.0) -> None:
        self.url = url
        self.account_key = account_key
        self.time_scale = time_scale
        self._store: _Store | None = None
        self._buckets: dict[str, tuple[AbstractBucket, list[Rate]]] = {}
        self._puts: dict[str, int] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        scheme = self.url.split(":", 1)[0]
        return f"Pacer(backend={scheme!r}, account_key={self.account_key!r}, time_scale={self.time_scale})"

    @property
    def store(self) -> _Store:
        if self._store is None:
            self._store = open_store(self.url)
        return self._store

    def _name(self, bucket: str) -> str:
        return f"{self.account_key}_{bucket}".replace("-", "_").replace(":", "_")

    def _bucket(self, bucket: str, limit: RateLimit) -> AbstractBucket:
        rates = pacing_rates(limit, self.time_scale)
        cached = self._buckets.get(bucket)
        shape = [(r.limit, r.interval) for r in rates]
        if cached is None or [(r.limit, r.interval) for r in cached[1]] != shape:
            cached = (self.store.bucket(self._name(bucket), rates), rates)
            self._buckets[bucket] = cached
        return cached[0]

    def _try(self, bucket: str, limit: RateLimit) -> float:
        """Take a slot now (returns 0) or return the real seconds until one may be free."""
        name = self._name(bucket)
        store = self.store
        with self._lock, store.lock():  # type: ignore[attr-defined]
            target = self._bucket(bucket, limit)
            wall_ms = int(time.time() * 1000)
            paused = store.paused_until_ms(name)
            if paused > wall_ms:
                return (paused - wall_ms) / 1000.0
            now_ms = int(target.now())
            item = RateItem(name, now_ms)
            if target.put(item):
                self._puts[bucket] = self._puts.get(bucket, 0) + 1
                if self._puts[bucket] % LEAK_EVERY == 1:
                    target.leak(now_ms)
                return 0.0
            wait_ms = target.waiting(item)
        if not isinstance(wait_ms, int) or wait_ms < 0:
            # The weight can never fit (a limit of 0 cannot come from the spec): treat as a day away.
            return 86400.0 / self.time_scale
        return max(wait_ms, 1) / 1000.0

    def acquire(self, bucket: str, limit: RateLimit, max_wait_seconds: float) -> float:
        """Block until the bucket admits one request; returns real seconds slept.

        Any single wait longer than ``max_wait_seconds`` raises ``KlaviyoRateLimitExceeded``
        before sleeping, so callers can defer instead of holding a worker.
        """
        waited = 0.0
        while True:
            wait = self._try(bucket, limit)
            if wait <= 0:
                return waited
            if wait > max_wait_seconds:
                raise KlaviyoRateLimitExceeded(time.time() + wait, bucket, wait_seconds=wait)
            time.sleep(wait)
            waited += wait

    def ledger(self, key: str) -> TaskLedger:
        """The attempt ledger of one task instance, in the same store as the pacing state."""
        return TaskLedger(self, key)

    def pause(self, bucket: str, seconds: float) -> None:
        """Record a server-requested wait (real seconds) so every process honours it."""
        if seconds <= 0:
            return
        until_ms = int(time.time() * 1000 + seconds * 1000)
        with self._lock:
            self.store.pause_until_ms(self._name(bucket), until_ms)

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            self._buckets.clear()


class AttemptLedger(Protocol):
    """What the client consults before and after a reporting call that may have cost quota."""

    def spent(self) -> int:
        """Unanswered reporting calls recorded for this chunk so far (over all task tries)."""
        ...

    def spend(self) -> int:
        """Record one more; returns the new total."""
        ...


class ChunkLedger:
    """One chunk's count in the store (``AttemptLedger``)."""

    def __init__(self, pacer: Pacer, key: str) -> None:
        self._pacer = pacer  # the pacer (re)opens its store lazily: never hold a closed one
        self.key = key

    def spent(self) -> int:
        return self._pacer.store.ledger_count(self.key)

    def spend(self) -> int:
        with self._pacer._lock:
            return self._pacer.store.ledger_add(self.key)


class TaskLedger:
    """One task instance's ledger: per-chunk counts, and the diagnostics of its earlier tries.

    ``key`` must be stable across the task's tries and unique per (dag, run, task, map index,
    account): the operator builds it; this class only stores under it.
    """

    def __init__(self, pacer: Pacer, key: str) -> None:
        self._pacer = pacer
        self.key = key

    def chunk(self, label: str = "") -> ChunkLedger:
        return ChunkLedger(self._pacer, f"{self.key}/{label}")

    def record_try(self, entry: dict[str, Any]) -> None:
        """Persist one finished try's summary (JSON-able: diagnostics, outcome, error sentence)."""
        with self._pacer._lock:
            self._pacer.store.ledger_append(self.key, json.dumps(entry, sort_keys=True, default=str))

    def earlier_tries(self) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self._pacer.store.ledger_entries(self.key)]
