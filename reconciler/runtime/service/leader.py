"""One active instance: only the leader applies changes; others stand by.

Used by ``runtime.service.run``. On PostgreSQL the leader holds a session-level advisory lock
(``pg_try_advisory_lock``) on a dedicated connection for as long as it leads; the server releases it the moment
that connection dies (process killed, host gone), and a standby polling every second takes over. The leader
checks its connection just as often and stops applying as soon as it cannot be sure it still holds the lock.
The lock key is derived from the owner id, so reconcilers of different owners sharing a database do not wait
for each other.

On SQLite there is no shared server to arbitrate, so a second ``reconciler run`` on the same database file is
refused with a clear message: an ``fcntl`` lock on ``<database>.lock`` held for the process's lifetime (the
kernel drops it when the process dies, however it dies).

The CLI's commands that change the world (``apply``, ``backup``, ``restore``, ``rollback``, ``requests``,
``tenants purge``) take the same lock for their duration through ``writer_lock``, or refuse naming the holder:
one writer per owner and database, whether it is a service or a command. The holder's name is in the lock file
(SQLite) or in the lock session's ``application_name`` (PostgreSQL, read from ``pg_locks``/``pg_stat_activity``).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from desired_state.database import database_url, make_engine

log = logging.getLogger("reconciler.leader")

# How often a standby tries the lock and the leader checks that it still holds it (takeover within ~1 s).
POLL_INTERVAL = 1.0


class AnotherInstance(RuntimeError):
    """A second ``reconciler run`` on a database that allows only one."""


def identity() -> str:
    return f"{socket.gethostname()}/pid {os.getpid()}"


def holder_label(command: str) -> str:
    """How a lock holder names itself: the command and where it runs (PostgreSQL keeps 63 characters)."""
    return f"`reconciler {command}` on {identity()}"[:63]


def lock_key(owner: str) -> int:
    """A signed 64-bit advisory lock key for this application and owner id."""
    digest = hashlib.sha256(f"tenant-reconciler leader {owner}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership(Protocol):
    def try_acquire(self) -> bool:
        """Become the leader if nobody else is; True when this instance leads (now or already)."""

    def still_held(self) -> bool:
        """For the leader: whether the lock is certainly still ours."""

    def release(self) -> None: ...

    def holder(self) -> str | None:
        """Who holds the lock now, as it named itself (None when unknown)."""


class PostgresLeadership:
    def __init__(self, url: str | None, owner: str, command: str = "run") -> None:
        self.engine = make_engine(url)
        self.key = lock_key(owner)
        self.label = holder_label(command)
        self._connection: Connection | None = None
        self._held = False

    def _connect(self) -> Connection:
        if self._connection is None:
            self._connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        self._held = False
        if connection is not None:
            try:
                connection.invalidate()
                connection.close()
            except SQLAlchemyError as exc:
                log.debug("closing the leader connection: %s", exc)

    def try_acquire(self) -> bool:
        if self._held:
            return True
        try:
            got = self._connect().execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar()
        except SQLAlchemyError as exc:
            log.warning("leader lock: database unreachable (%s)", type(exc).__name__)
            self._drop()
            return False
        self._held = bool(got)
        if self._held:
            try:
                self._connect().execute(
                    text("SELECT set_config('application_name', :name, false)"), {"name": self.label}
                )
            except SQLAlchemyError as exc:
                log.debug("naming the leader session: %s", exc)
        return self._held

    def holder(self) -> str | None:
        # A bigint advisory lock shows in pg_locks as classid (high 32 bits) and objid (low 32 bits), objsubid 1.
        query = text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = :high AND l.objid::bigint = :low"
        )
        try:
            with self.engine.connect() as connection:
                name = connection.execute(
                    query, {"high": (self.key >> 32) & 0xFFFFFFFF, "low": self.key & 0xFFFFFFFF}
                ).scalar()
        except SQLAlchemyError as exc:
            log.debug("reading the lock holder: %s", exc)
            return None
        return str(name) if name else None

    def still_held(self) -> bool:
        if not self._held:
            return False
        try:
            # The lock lives as long as this session; a query that succeeds proves the session is alive.
            self._connect().execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            log.error("leader lock: connection lost (%s)", type(exc).__name__)
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._held and self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            except SQLAlchemyError as exc:
                log.debug("releasing the leader lock: %s", exc)
        self._drop()
        self.engine.dispose()


class SqliteSingleInstance:
    """Refuses a second instance on the same SQLite file (there is no standby on SQLite)."""

    def __init__(self, path: Path, command: str = "run") -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.label = holder_label(command)
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        if self._file is not None:
            return True
        handle = open(self.lock_path, "a+")  # noqa: SIM115 (held open for the process's lifetime)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise AnotherInstance(
                f"{holder} already uses the SQLite database {self.path} (lock file {self.lock_path}); SQLite "
                "allows one instance at a time: stop that one first (or wait for it to finish), or use "
                "PostgreSQL (RECONCILER_DATABASE_URL) to run a standby next to the active instance"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(self.label + "\n")
        handle.flush()
        self._file = handle
        return True

    def still_held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def holder(self) -> str | None:
        try:
            return self.lock_path.read_text().strip() or None
        except OSError:
            return None


def build_leadership(url: str | None, owner: str, command: str = "run") -> Leadership:
    resolved = make_url(database_url(url))
    if resolved.get_backend_name() == "sqlite":
        return SqliteSingleInstance(Path(resolved.database or "reconciler.sqlite3").resolve(), command)
    return PostgresLeadership(url, owner, command)


@contextmanager
def writer_lock(url: str | None, owner: str, command: str) -> Iterator[None]:
    """Hold the leader lock while a CLI command changes the world; ``AnotherInstance`` names who holds it."""
    leadership = build_leadership(url, owner, command)
    try:
        try:
            acquired = leadership.try_acquire()
        except AnotherInstance as exc:
            raise AnotherInstance(f"refusing `reconciler {command}`: {exc}") from None
        if not acquired:
            holder = leadership.holder() or "another instance"
            raise AnotherInstance(
                f"refusing `reconciler {command}`: {holder} holds the leader lock of owner {owner!r} on this "
                "database and applies changes; ask it instead (`reconciler nudge`, an operation_requests row) "
                "or stop it first"
            )
        yield
    finally:
        leadership.release()


def wait_for_leadership(leadership: Leadership, stop: threading.Event, interval: float = POLL_INTERVAL) -> bool:
    """Block until this instance leads (True) or ``stop`` is set (False); logs standing by once."""
    announced = False
    while not stop.is_set():
        if leadership.try_acquire():
            return True
        if not announced:
            log.info("standing by: another instance holds the leader lock; trying every %.0fs", interval)
            announced = True
        stop.wait(interval)
    return False
