"""A PostgreSQL server of one's own on loopback, for the tests, the benchmarks and a local run on
the PostgreSQL backend.

It uses the server the machine has (Debian's postgresql-15 under /usr/lib/postgresql, or
whatever `pg_config --bindir` names) rather than a server shipped in a wheel: the machine's
package gets its security updates, and nothing large is downloaded. PostgreSQL refuses to run
as root, which is what CI and a container's shell usually are: as root the cluster's folder is
given to the unprivileged user `nobody` and the server runs as that user.

The superuser is `paymesh` with a password (scram-sha-256, as a bank's server asks), on
127.0.0.1 only; each test or service gets a database of its own (`create_database`).
"""

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psycopg

SUPERUSER = "paymesh"
UNPRIVILEGED_USER = "nobody"


class PostgresUnavailable(RuntimeError):
    pass


def server_bindir() -> Path:
    """Where initdb and postgres are: $PAYMESH_PG_BINDIR, pg_config's bindir, or Debian's newest."""
    candidates = [os.environ.get("PAYMESH_PG_BINDIR", "")]
    pg_config = shutil.which("pg_config")
    if pg_config:
        candidates.append(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name),
                         reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    raise PostgresUnavailable("no PostgreSQL server binaries (initdb, postgres) on this machine: "
                              "install Debian's postgresql package, or set PAYMESH_PG_BINDIR")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalPostgres:
    """`with LocalPostgres(folder) as server: server.create_database("core_cash")` -> its URL."""

    def __init__(self, folder: Path, port: int | None = None, settings: dict[str, str] | None = None,
                 primary: "LocalPostgres | None" = None):
        """primary: a running server this one is a streaming standby of (a base backup of it, then
        replaying its WAL, read-only until promote())."""
        self.folder = folder
        self.data = folder / "data"
        self.port = port or _free_port()
        self.primary = primary
        self.password: str = primary.password if primary else secrets.token_urlsafe(16)
        self.settings = settings or {}
        self.process: subprocess.Popen | None = None
        self._as_user = UNPRIVILEGED_USER if os.geteuid() == 0 else None

    def url(self, database: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        return f"postgresql://{user}:{password or self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, command: list[str], env: dict[str, str] | None = None) -> None:
        result = subprocess.run(command, capture_output=True, text=True, user=self._as_user,
                                env={**os.environ, **env} if env else None)
        if result.returncode:
            said = (result.stderr + result.stdout).strip()[-2000:]
            raise PostgresUnavailable(f"{' '.join(command[:2])} failed (exit {result.returncode}): {said}")

    def start(self) -> "LocalPostgres":
        bindir = server_bindir()
        self.folder.mkdir(parents=True, exist_ok=True)
        password_file = self.folder / "superuser.password"
        password_file.write_text(self.password)
        if self._as_user:
            owner = pwd.getpwnam(self._as_user)
            for path in (self.folder, password_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        if (self.data / "PG_VERSION").exists():
            pass  # started again on its own data (a restart), as a server after an outage
        elif self.primary is None:
            self._run([str(bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--pwfile",
                       str(password_file), "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"])
        else:  # -R: standby.signal and the primary's connection (its password too) in postgresql.auto.conf
            self._run([str(bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", SUPERUSER,
                       "-D", str(self.data), "-R", "-X", "stream", "--no-password"],
                      env={"PGPASSWORD": self.password})
        password_file.unlink()
        options = {"listen_addresses": "127.0.0.1", "port": str(self.port), "unix_socket_directories": str(self.folder),
                   "max_connections": "200", "shared_buffers": "128MB", "fsync": "on", **self.settings}
        command = [str(bindir / "postgres"), "-D", str(self.data)]
        for name, value in options.items():
            command += ["-c", f"{name}={value}"]
        with open(self.folder / "server.log", "ab") as log_file:
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, user=self._as_user)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise PostgresUnavailable(f"the server exited: {(self.folder / 'server.log').read_text()[-2000:]}")
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def promote(self) -> None:
        """A standby becomes a primary (read-write), waiting until it is. By SQL (pg_promote), not
        pg_ctl: no process forked from one whose other threads are inside gRPC or libpq."""
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as connection:
            promoted = connection.execute("SELECT pg_promote(wait => true, wait_seconds => 30)").fetchone()
        if not promoted or not promoted[0]:
            raise PostgresUnavailable(f"the standby on port {self.port} did not become a primary within 30 s")

    def create_database(self, name: str) -> str:
        """A new empty database `name`; its URL."""
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: PostgreSQL's smart shutdown
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
