from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lprmeta.config import Secret, StoreConfig
from tests.tools.postgres import PgCluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_config(request: pytest.FixtureRequest, tmp_path: Path) -> StoreConfig:
    """A store configuration for an empty database: SQLite in tmp_path, or a fresh
    database in the session's throwaway PostgreSQL cluster."""
    data_dir = tmp_path / "data"
    if request.param == "sqlite":
        return StoreConfig(data_dir=data_dir, origin="test")
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return StoreConfig(url=Secret(cluster.new_database()), data_dir=data_dir, origin="test")
