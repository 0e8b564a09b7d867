"""Nginx driver: owns one Nginx process, its site files, validation and graceful reloads.

Called by the sites stage of a pass (``reconciler.runtime.passes.sites_step``). Nginx runs as its own process
(Debian's ``nginx``) with its own prefix under a state directory: ``nginx.conf`` (rendered by
``renderers.nginx.render_main``), ``sites/*.conf`` (one file per site), ``cache/``, ``logs/``, ``tmp/``.

A file is never loaded unless it passed ``nginx -t``: ``write`` stages a copy of the live sites directory with
the new files in it, tests the whole configuration against that copy, and only then moves the files into place
and reloads (SIGHUP: the master starts new workers with the new configuration while the old ones finish their
requests, so a reload loses none). A file that fails the test is not written; the previous one keeps serving.
The reload is confirmed: the master's worker processes must be new ones within ``reload_timeout`` seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.core.errors import PermanentError, TransientError
from reconciler.core.sites import SiteFile

SYSTEM = "nginx"
# Longest excerpt of ``nginx -t`` output kept in an error (it names the file and line).
_OUTPUT_EXCERPT = 400
# The title of a worker that accepts connections; one that finishes its requests after a reload adds
# " is shutting down".
_WORKER_TITLE = "nginx: worker process"


@dataclass
class NginxDriver:
    state_dir: Path
    prefix: str  # site files are <prefix>-site-<name>.conf
    binary: str = "nginx"
    timeout: float = 30.0  # any nginx command
    reload_timeout: float = 10.0
    calls: dict[str, int] = field(default_factory=lambda: {"test": 0, "reload": 0, "write": 0})

    @property
    def sites_dir(self) -> Path:
        return self.state_dir / "sites"

    @property
    def main_file(self) -> Path:
        return self.state_dir / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "nginx.pid"

    # --- the process ---------------------------------------------------------------------------------------

    def ensure_running(self, main: str) -> None:
        """Write the main configuration (tested first) and start Nginx if it is not running; reload it if the
        main configuration changed under a running Nginx."""
        for sub in ("sites", "cache", "logs", "tmp", "staging"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        changed = not self.main_file.exists() or self.main_file.read_text() != main
        if changed:
            staged = self.state_dir / "staging" / "nginx.conf"
            staged.write_text(main)
            self._test(staged, "main configuration")
            os.replace(staged, self.main_file)
        pid = self.master_pid()
        if pid is None:
            self._run([self.binary, "-p", str(self.state_dir), "-c", str(self.main_file)], "start nginx")
            if self.master_pid() is None:
                raise TransientError("nginx did not start", system=SYSTEM, operation="start nginx")
        elif changed:
            self.reload()

    def master_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def stop(self) -> None:
        """Stop Nginx gracefully (SIGQUIT: workers finish their requests), waiting for the master to exit."""
        pid = self.master_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + self.timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def reload(self) -> None:
        """SIGHUP, then wait until new workers run and every old worker stopped accepting (it shows "is shutting
        down" while it finishes its requests): from then on every new connection gets the new configuration."""
        pid = self.master_pid()
        if pid is None:
            raise TransientError("nginx is not running", system=SYSTEM, operation="reload")
        before = {child for child, title in _children(pid) if title == _WORKER_TITLE}
        os.kill(pid, signal.SIGHUP)
        self.calls["reload"] += 1
        deadline = time.monotonic() + self.reload_timeout
        while time.monotonic() < deadline:
            accepting = {child for child, title in _children(pid) if title == _WORKER_TITLE}
            if accepting and not accepting & before:
                return
            time.sleep(0.01)
        raise TransientError(
            f"nginx did not start new workers within {self.reload_timeout:g}s of a reload",
            system=SYSTEM,
            operation="reload",
        )

    # --- site files ----------------------------------------------------------------------------------------

    def observe(self) -> dict[str, SiteFile]:
        """Every site file of our prefix in the live directory, by site name."""
        found: dict[str, SiteFile] = {}
        marker = f"{self.prefix}-site-"
        if not self.sites_dir.is_dir():
            return found
        for path in sorted(self.sites_dir.glob(f"{marker}*.conf")):
            name = path.name.removeprefix(marker).removesuffix(".conf")
            try:
                found[name] = SiteFile.from_text(name, path.name, path.read_text())
            except (OSError, UnicodeDecodeError) as exc:
                raise TransientError(f"site file {path.name} not readable: {exc}", system=SYSTEM) from exc
        return found

    def test(self, files: Mapping[str, str | None]) -> str | None:
        """``nginx -t`` on the live sites with ``files`` (file name → text; None removes it) put in: None when the
        configuration is valid, else Nginx's message. Nothing live is touched."""
        workdir = Path(tempfile.mkdtemp(prefix="test-", dir=self.state_dir / "staging"))
        staging = workdir / "sites"
        staging.mkdir()
        try:
            for path in self.sites_dir.glob("*.conf"):
                shutil.copyfile(path, staging / path.name)
            for name, text in files.items():
                target = staging / name
                if text is None:
                    target.unlink(missing_ok=True)
                else:
                    target.write_text(text)
            live = self.main_file.read_text()
            main = workdir / "nginx.conf"
            main.write_text(live.replace(f"include {self.sites_dir}/", f"include {staging}/"))
            try:
                self._test(main, "site configuration")
            except PermanentError as exc:
                return exc.message.replace(str(staging), str(self.sites_dir))
            return None
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def write(self, files: Mapping[str, str | None]) -> None:
        """Put tested files in place (atomically, each) and remove those mapped to None; then reload once."""
        for name, text in files.items():
            target = self.sites_dir / name
            try:
                if text is None:
                    target.unlink(missing_ok=True)
                else:
                    partial = self.sites_dir / f".{name}.partial"
                    partial.write_text(text)
                    os.replace(partial, target)
            except OSError as exc:
                raise TransientError(f"site file {name} not written: {exc}", system=SYSTEM, key=name) from exc
            self.calls["write"] += 1
        if files:
            self.reload()

    # --- commands ------------------------------------------------------------------------------------------

    def _test(self, main: Path, what: str) -> None:
        self.calls["test"] += 1
        result = self._run([self.binary, "-t", "-q", "-p", str(self.state_dir), "-c", str(main)], "test", check=False)
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip().replace("\n", "; ")
            if len(output) > _OUTPUT_EXCERPT:
                output = output[: _OUTPUT_EXCERPT - 1] + "…"
            raise PermanentError(f"nginx rejected the {what}: {output}", system=SYSTEM, operation="test")

    def _run(self, command: list[str], operation: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout, check=False)
        except FileNotFoundError as exc:
            raise PermanentError(f"{self.binary} not found", system=SYSTEM, operation=operation) from exc
        except subprocess.TimeoutExpired as exc:
            raise TransientError(f"no answer within {self.timeout:g}s", system=SYSTEM, operation=operation) from exc
        if check and result.returncode != 0:
            output = (result.stderr or result.stdout).strip()[:_OUTPUT_EXCERPT]
            raise TransientError(f"{operation} failed: {output}", system=SYSTEM, operation=operation)
        return result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie answers signal 0; its state in /proc says it is gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _children(pid: int) -> list[tuple[int, str]]:
    """The master's live child processes (workers, cache manager) with their titles, from /proc."""
    result = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
            if int(fields[1]) != pid or fields[0] == "Z":
                continue
            title = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError, ValueError):
            continue
        result.append((int(stat.parent.name), title))
    return result
