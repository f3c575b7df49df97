"""The server scripts start servers of their own when asked to, as .ci/run asks them.

``scripts/pgserver.sh start auto`` and ``scripts/mariadbserver.sh start auto`` must hand
back the URL of a new server that this very call started, never one that was already
listening: a server that belongs to someone else may be stopped in the middle of a run.
Each test holds a port with a plain TCP listener of its own, the first port above the
default that ``start auto`` could take, then checks that the URL names neither that port
nor the default one, that the server behind it reports the data directory this call
created, and that ``stop`` leaves nothing behind.  ``start PORT`` on a port another
process holds must fail without leaving a data directory.

These tests start real throwaway servers (a few seconds each).  Where the server binaries
are missing they are skipped, except under CI, where they must run.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Server:
    script: str
    default_port: int
    dir_prefix: str  # a server's directory is dir_prefix + port
    datadir_query: str
    datadir_under: str  # where the server's data directory lies in its directory

    def directory(self, port: int) -> Path:
        return Path(f"{self.dir_prefix}{port}")

    def installed(self) -> bool:
        if self.script == "pgserver.sh":
            return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        return shutil.which("mariadbd") is not None or os.access("/usr/sbin/mariadbd", os.X_OK)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(ROOT / "scripts" / self.script), *args],
            capture_output=True,
            text=True,
            timeout=600,  # under CI the first start may install the server with apt-get
        )


POSTGRESQL = Server("pgserver.sh", 54329, "/tmp/sessionkit-pg-", "SHOW data_directory", ".")
MARIADB = Server("mariadbserver.sh", 33069, "/tmp/sessionkit-mariadb-", "SELECT @@datadir", "data")

SERVERS = [
    pytest.param(POSTGRESQL, id="postgresql", marks=pytest.mark.postgresql),
    pytest.param(MARIADB, id="mariadb", marks=pytest.mark.mariadb),
]


def _free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port (binding as servers do)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> Server:
    srv: Server = request.param
    if not srv.installed() and not os.environ.get("CI"):
        pytest.skip(f"no server binaries for scripts/{srv.script}")
    return srv


@pytest.fixture
def held_port(server: Server) -> Iterator[int]:
    """A port that a plain TCP listener of this test holds: the first port above the
    default with no server directory, the one ``start auto`` would take if it were free."""
    for port in range(server.default_port + 1, server.default_port + 100):
        if server.directory(port).exists():
            continue
        listener = socket.socket()
        try:
            listener.bind(("127.0.0.1", port))
        except OSError:
            listener.close()
            continue
        with listener:
            listener.listen()
            yield port
        return
    pytest.fail("no free port to hold above the default one")


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def test_start_auto_starts_a_server_of_its_own(server: Server, held_port: int) -> None:
    before = set(glob.glob(f"{server.dir_prefix}*"))
    proc = server.run("start", "auto")
    assert proc.returncode == 0, proc.stderr
    url = proc.stdout.strip()
    port = _port(url)
    directory = server.directory(port)
    # Never a server that was there before: stopping that one would stop someone else's.
    assert port not in (server.default_port, held_port), (url, proc.stderr)
    assert str(directory) not in before, f"{url}: {directory} existed before the start"
    try:
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                reported = Path(conn.execute(text(server.datadir_query)).scalar_one())
        finally:
            engine.dispose()
        assert reported.resolve() == (directory / server.datadir_under).resolve()
    finally:
        stopped = server.run("stop", str(port))
    assert stopped.returncode == 0, stopped.stderr
    assert not directory.exists()
    assert _free(port), f"something still listens on port {port} after stop"


def test_start_refuses_a_port_held_by_another_process(server: Server, held_port: int) -> None:
    proc = server.run("start", str(held_port))
    leftover = server.directory(held_port).exists()
    if leftover:  # whatever a start left there is this test's to remove
        server.run("stop", str(held_port))
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert not leftover, f"start left {server.directory(held_port)} behind"
