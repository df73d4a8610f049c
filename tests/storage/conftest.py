"""Fixtures for the storage tests: a real Supabase-Storage-compatible server on loopback and
backends (local folder, SupabaseStorage through supabase-py) built against it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flowsync_dev.storage_server import StorageTestServer
from flowsync_provider.storage import LocalStorage, StorageBackend, SupabaseStorage

SERVICE_KEY = "sb_service_role_test_key_8d41c2"
BUCKETS = ("ingest", "flow-staging")


@pytest.fixture(scope="session")
def storage_server() -> Iterator[StorageTestServer]:
    server = StorageTestServer(SERVICE_KEY, BUCKETS).start()
    yield server
    server.stop()


@pytest.fixture
def server(storage_server: StorageTestServer) -> StorageTestServer:
    """The session server with no objects, logs or pending faults left by another test."""
    storage_server.reset()
    return storage_server


@pytest.fixture
def supabase_storage(server: StorageTestServer) -> Iterator[SupabaseStorage]:
    storage = SupabaseStorage(server.url, SERVICE_KEY, timeout=10, backoff_seconds=0.01)
    yield storage
    storage.close()


@pytest.fixture
def local_storage(tmp_path) -> LocalStorage:
    storage = LocalStorage(tmp_path / "buckets", create_buckets=False)
    for name in BUCKETS:
        storage.create_bucket(name)
    return storage


@pytest.fixture(params=["local", "supabase"])
def backend(request) -> StorageBackend:
    """Each contract test runs against both backends."""
    name = "local_storage" if request.param == "local" else "supabase_storage"
    return request.getfixturevalue(name)


@pytest.fixture
def service_key() -> str:
    """The key the test server accepts (a fixture: test dirs are not packages)."""
    return SERVICE_KEY
