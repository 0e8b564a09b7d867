"""Throwaway local stack for tests and the demo: PostgreSQL, PowerDNS, Traefik, RabbitMQ, Prometheus.

Every service binds to 127.0.0.1 on free ports chosen at start, keeps all its files in its own state
directory and is stopped by the PID it saved (never by a process-name pattern), so several sessions can
run side by side on one machine.

Importable (``from devstack import Postgres``) and runnable::

    python deploy/devstack.py up --state-dir .devstack     # writes .devstack/env and .devstack/state.json
    python deploy/devstack.py env --state-dir .devstack    # prints the env file
    python deploy/devstack.py down --state-dir .devstack   # stops what `up` started
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

LOCALHOST = "127.0.0.1"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


class DevstackError(RuntimeError):
    """A service could not be started, did not become ready, or could not be stopped."""


# --------------------------------------------------------------------------------------------- helpers


def free_port(*, udp_too: bool = False, low: int = 0, high: int = 0) -> int:
    """A TCP port (optionally also free for UDP) on 127.0.0.1 that nothing listens on right now.

    With ``low``/``high`` the port is drawn at random from that range (some services derive other
    ports from it and need headroom), otherwise the kernel picks one.
    """
    for _ in range(200):
        candidate = secrets.randbelow(high - low) + low if high > low else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            try:
                tcp.bind((LOCALHOST, candidate))
            except OSError:
                continue
            port: int = tcp.getsockname()[1]
        if udp_too:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((LOCALHOST, port))
                except OSError:
                    continue
        return port
    raise DevstackError("no free port found on 127.0.0.1")


def port_open(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET without proxies (tests must only talk to 127.0.0.1). Returns (status, body); status 0 = no answer."""
    request = urllib.request.Request(url, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def http_post(url: str, data: bytes = b"", timeout: float = 5.0) -> int:
    request = urllib.request.Request(url, data=data, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, urllib.error.URLError):
        return 0


def wait_for(check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool] | None = None) -> None:
    """Poll ``check`` until it is true; fail early if ``alive`` says the process died."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if check():
            return
        if alive is not None and not alive():
            raise DevstackError(f"{what}: the process exited before it became ready")
        if time.monotonic() > deadline:
            raise DevstackError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def pid_running(pid: int | None) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _traversable_by(path: Path, uid: int) -> bool:
    """Whether a user other than root can reach ``path`` (every ancestor searchable)."""
    for part in [path, *path.parents]:
        try:
            st = part.stat()
        except OSError:
            return False
        if st.st_uid == uid:
            continue
        if not st.st_mode & stat.S_IXOTH:
            return False
    return True


# --------------------------------------------------------------------------------------------- base class


class Service:
    """One local service living in ``state_dir``: start/stop/restart, context manager, state for ``down``."""

    name: ClassVar[str] = "service"
    start_timeout: ClassVar[float] = 30.0

    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        if state_dir is None:
            state_dir = tempfile.mkdtemp(prefix=f"devstack-{self.name}-")
        self.dir = Path(state_dir).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None

    # subclasses implement these
    def _launch(self) -> None:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _terminate(self) -> None:
        """Ask the process to exit (default: SIGTERM to the saved PID)."""
        self._signal(signal.SIGTERM)

    def state(self) -> dict[str, Any]:
        """What `down` needs to find and stop this service again (also: its addresses)."""
        return {"dir": str(self.dir), "pid": self.pid}

    def env(self) -> dict[str, str]:
        return {}

    # common behaviour
    @property
    def log_file(self) -> Path:
        return self.dir / f"{self.name}.log"

    def running(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            return False
        return pid_running(self.pid)

    def start(self) -> Self:
        if self.running():
            return self
        began = time.monotonic()
        self._launch()
        try:
            wait_for(self._ready, self.start_timeout, f"{self.name} in {self.dir}", alive=self.running)
        except DevstackError as exc:
            log = tail(self.log_file)
            with contextlib.suppress(DevstackError):
                self.stop()
            raise DevstackError(f"{exc}\n--- {self.log_file} ---\n{log}") from None
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self, timeout: float = 20.0) -> None:
        if not self.running():
            self._reap()
            return
        self._terminate()
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                self._signal(signal.SIGKILL)
                time.sleep(0.2)
                if self.running():
                    raise DevstackError(f"{self.name} (pid {self.pid}) did not stop")
                break
            time.sleep(0.05)
        self._reap()

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        """Start a foreground process in its own session, output to the log file, and remember its PID."""
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd or self.dir,
                start_new_session=True,
            )
        self.pid = self._proc.pid

    def _signal(self, sig: int) -> None:
        if self.pid and pid_running(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1)
            self._proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------- PostgreSQL


class Postgres(Service):
    """A throwaway PostgreSQL 15 cluster: trust auth, fsync off, socket in its own dir."""

    name = "postgres"

    def __init__(self, state_dir: str | os.PathLike[str] | None = None, port: int | None = None) -> None:
        super().__init__(state_dir)
        self.port = port or free_port()
        self.user = "postgres"
        self._as_postgres = os.geteuid() == 0
        self.data_dir = self.dir / "data"
        if self._as_postgres:
            pg_uid = pwd.getpwnam("postgres").pw_uid
            if not _traversable_by(self.dir, pg_uid):
                # e.g. pytest's 0700 tmp dirs: the postgres user cannot reach them, so use a dir of its own
                self.data_dir = Path(tempfile.mkdtemp(prefix="devstack-pgdata-")) / "data"
                os.chown(self.data_dir.parent, pg_uid, -1)

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{LOCALHOST}:{self.port}/postgres"

    def database_url(self, database: str) -> str:
        return f"postgresql://{self.user}@{LOCALHOST}:{self.port}/{database}"

    def _run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def _launch(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise DevstackError(f"PostgreSQL 15 is not installed ({PG_BIN}/initdb missing)")
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if self._as_postgres:
                pg = pwd.getpwnam("postgres")
                os.chown(self.data_dir, pg.pw_uid, pg.pw_gid)
            result = self._run(
                [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", "postgres", "-N"]
            )
            if result.returncode != 0:
                raise DevstackError(f"initdb failed: {result.stdout}{result.stderr}")
        options = (
            f"-p {self.port} -k {self.data_dir} -c listen_addresses={LOCALHOST} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        # the server log lives in the data dir (writable by postgres); our log file gets pg_ctl's output
        server_log = str(self.data_dir / "server.log")
        pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-l", server_log, "-w", "-t", "30"]
        result = self._run([*pg_ctl, "-o", options, "start"])
        self.log_file.write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise DevstackError(
                f"pg_ctl start failed: {result.stdout}{result.stderr}\n{tail(self.data_dir / 'server.log')}"
            )
        self.pid = self._postmaster_pid()

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _ready(self) -> bool:
        result = self._run([str(PG_BIN / "pg_isready"), "-h", LOCALHOST, "-p", str(self.port), "-t", "1"], timeout=5)
        return result.returncode == 0

    def _terminate(self) -> None:
        self._signal(signal.SIGINT)  # "fast" shutdown

    def state(self) -> dict[str, Any]:
        return {**super().state(), "port": self.port, "data_dir": str(self.data_dir), "url": self.url}

    def env(self) -> dict[str, str]:
        return {"RECONCILER_DATABASE_URL": self.url}

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh, empty database and return its URL."""
        name = name or f"t_{secrets.token_hex(6)}"
        if not name.replace("_", "").isalnum():
            raise ValueError(f"unsafe database name {name!r}")
        self._sql(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        if not name.replace("_", "").isalnum():
            raise ValueError(f"unsafe database name {name!r}")
        self._sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _sql(self, statement: str) -> None:
        result = subprocess.run(
            [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url, "-c", statement],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise DevstackError(f"{statement!r} failed: {result.stderr.strip()}")

    def remove(self) -> None:
        """Stop and delete the cluster's files."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.data_dir.parent.name.startswith("devstack-pgdata-"):
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)
