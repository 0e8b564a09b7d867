"""A reconciler wired to real services for integration tests: settings, runtime, CLI subprocesses, waits.

Each test gets its own owner id and name prefix (so concurrent sessions never touch each other's objects) and
its own database. ``Harness.cli`` runs the real console entry point in a subprocess with the same settings.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from desired_state.database import upgrade
from desired_state.yaml_io import import_yaml
from reconciler.runtime.passes.reconcile import PassResult
from reconciler.runtime.settings import Settings
from reconciler.runtime.wiring import Runtime, build_runtime

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # a check may race with the reconciler; retry until the deadline
            last = exc
        if last and not isinstance(last, Exception):
            return last  # type: ignore[no-any-return]
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last result: {last!r}")


@dataclass
class Harness:
    owner: str
    database_url: str
    docker_client: Any
    env: dict[str, str] = field(default_factory=dict)
    runtime: Runtime | None = None
    _run: subprocess.Popen[str] | None = None

    @classmethod
    def create(cls, owner: str, database_url: str, docker_client: Any, **settings: str) -> Harness:
        env = {
            "RECONCILER_DATABASE_URL": database_url,
            "RECONCILER_OWNER_ID": owner,
            "RECONCILER_NAME_PREFIX": owner,
            "RECONCILER_RESYNC_INTERVAL": "2",
            "RECONCILER_READY_TIMEOUT": "20",
            "RECONCILER_BACKOFF_INITIAL": "0.5",
            "RECONCILER_BACKOFF_MAX": "5",
            "RECONCILER_METRICS_ADDR": "127.0.0.1:0",
        }
        env.update({f"RECONCILER_{k.upper()}": v for k, v in settings.items()})
        harness = cls(owner=owner, database_url=database_url, docker_client=docker_client, env=env)
        upgrade(database_url)
        harness.rebuild()
        return harness

    def settings(self) -> Settings:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            return Settings()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def rebuild(self) -> Runtime:
        self.runtime = build_runtime(self.settings())
        return self.runtime

    @property
    def rt(self) -> Runtime:
        assert self.runtime is not None
        return self.runtime

    def import_yaml(self, text: str) -> None:
        import_yaml(self.rt.engine, text)

    def apply(self, **kwargs: Any) -> PassResult:
        return self.rt.reconciler.run_pass(**kwargs)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env, "PYTHONPATH": str(REPO_ROOT)}
        return subprocess.run(
            [sys.executable, "-m", "reconciler.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # --- reconciler run as a real process -------------------------------------------------------------

    def start_run(self, *extra: str, log_path: Path | None = None) -> subprocess.Popen[str]:
        env = {**os.environ, **self.env, "PYTHONPATH": str(REPO_ROOT)}
        out = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 (closed with the process)
        self._run = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "run", *extra],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return self._run

    def stop_run(self, timeout: float = 30) -> int:
        if self._run is None:
            return 0
        proc, self._run = self._run, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError("reconciler run did not stop within 30 s of SIGTERM") from None
        return proc.returncode

    # --- looking at Docker directly ---------------------------------------------------------------------

    def containers(self, tenant: str | None = None) -> list[Any]:
        labels = [f"tenant-reconciler.owner={self.owner}"]
        if tenant:
            labels.append(f"tenant-reconciler.tenant={tenant}")
        return list(self.docker_client.containers.list(all=True, filters={"label": labels}))

    def running(self, tenant: str | None = None) -> list[Any]:
        return [c for c in self.containers(tenant) if c.status == "running"]

    def network(self, tenant: str) -> Any | None:
        found = self.docker_client.networks.list(names=[f"{self.owner}-{tenant}"])
        return next((n for n in found if n.name == f"{self.owner}-{tenant}"), None)

    def volume_names(self) -> set[str]:
        vols = self.docker_client.volumes.list(filters={"label": [f"tenant-reconciler.owner={self.owner}"]})
        return {v.name for v in vols}

    def execute_sql(self, sql: str, **params: Any) -> None:
        from sqlalchemy import text

        with self.rt.engine.begin() as connection:
            connection.execute(text(sql), params)


@contextmanager
def routed_harness(
    owner: str, database_url: str, docker_client: Any, traefik: Any, **settings: str
) -> Iterator[Harness]:
    """A harness with the routing stage on ``traefik`` (its files named after ``owner``); on exit its
    ``reconciler run`` is stopped, its route files removed and its database engine disposed."""
    h = Harness.create(
        owner,
        database_url,
        docker_client,
        traefik_dynamic_dir=str(traefik.dynamic_dir),
        traefik_api_url=traefik.api_url,
        **settings,
    )
    try:
        yield h
    finally:
        h.stop_run()
        for path in Path(traefik.dynamic_dir).glob(f"{owner}-*.yml"):
            path.unlink(missing_ok=True)
        h.rt.engine.dispose()
