"""A throwaway PostgreSQL cluster for the tests: ``initdb`` and ``pg_ctl`` in a
temporary directory, on a free loopback port, no system service involved.

Debian's ``postgresql`` package puts the server programs in
``/usr/lib/postgresql/<version>/bin``. PostgreSQL refuses to run as root, so
under root (CI) the cluster runs as the ``postgres`` user the package creates.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

__all__ = ["PgCluster", "find_pg_bin"]


def find_pg_bin() -> Path | None:
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    def __init__(self) -> None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            pytest.skip("PostgreSQL server programs not installed (apt-get install postgresql)")
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="lprmeta-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._prefix = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._databases = 0

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self._prefix, str(self.bin / program), *args],
            check=True,
            capture_output=True,
            cwd=self.root,
            timeout=60,
        )

    def start(self, *, durable: bool = False) -> None:
        """``durable``: PostgreSQL's own defaults (fsync on: benchmarks); otherwise the
        tests' settings, which skip fsync (nothing here must survive a power cut)."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        if durable:
            options += " -c shared_buffers=512MB -c max_wal_size=4GB -c maintenance_work_mem=512MB"
        else:
            options += " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        self._databases += 1
        name = f"t{self._databases}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
