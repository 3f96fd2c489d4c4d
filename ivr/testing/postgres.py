"""Start a throwaway PostgreSQL server from Debian's packages (tests and benchmarks).

PostgreSQL refuses to run as root, so the cluster is created and started as the
``postgres`` system user that Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    pass


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL server binaries not found: apt-get install postgresql")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    datadir: Path
    port: int
    bindir: Path
    user_prefix: list[str]
    keep: bool = False  # a cached cluster (benchmarks): stop it, keep its files

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        subprocess.run([*self.user_prefix, str(self.bindir / "createdb"), "-h", "127.0.0.1",
                        "-p", str(self.port), "-U", "postgres", name], check=True,
                       capture_output=True)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run([*self.user_prefix, str(self.bindir / "pg_ctl"), "-D", str(self.datadir),
                        "-m", "fast" if self.keep else "immediate", "stop"],
                       capture_output=True)
        if not self.keep:
            shutil.rmtree(self.datadir.parent, ignore_errors=True)


def start_postgres(root: Path | None = None, *, port: int | None = None) -> PostgresServer:
    """A throwaway cluster in a temporary folder, or (``root``) one kept there between
    runs: created on the first start, started again as it was afterwards (on ``port``:
    a database restarted under clients that keep their URL)."""
    bindir = _bindir()
    keep = root is not None
    root = Path(tempfile.mkdtemp(prefix="kanaal-pg-")) if root is None else root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    datadir = root / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    port = port or _free_port()
    if not (datadir / "PG_VERSION").exists():
        init = subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(datadir), "-A",
                               "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
                              capture_output=True, text=True)
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
    opts = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off")
    start = subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(datadir), "-o", opts,
                            "-l", str(root / "log"), "-w", "-t", "60", "start"],
                           capture_output=True, text=True)
    if start.returncode != 0:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        raise PostgresUnavailable(f"pg_ctl start failed: {start.stderr.strip()} {log[-500:]}")
    server = PostgresServer(datadir, port, bindir, prefix, keep=keep)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.1)
    server.stop()
    raise PostgresUnavailable("PostgreSQL did not accept connections")
