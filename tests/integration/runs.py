"""Helpers for tests that watch a real ``reconciler run`` from outside: its metrics, its log, a second instance,
and a local HTTP endpoint that speaks the Telegram Bot API (getMe, sendMessage) and records what it was sent."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import httpx

from tests.integration.harness import REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric(port: int, name: str, **labels: str) -> float:
    """Value of one sample on a run's /metrics (0 when absent)."""
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = ",".join(sorted((match.group(2) or "{}")[1:-1].split(","))) if match.group(2) else ""
        if found == wanted:
            return float(match.group(3))
    return 0.0


def readyz(port: int) -> tuple[int, str]:
    response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    return response.status_code, response.text


def json_log(path: Path) -> list[dict[str, object]]:
    records = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def reconcile_starts(path: Path, tenant: str, trigger: str | None = None) -> int:
    return sum(
        1
        for r in json_log(path)
        if r.get("tenant") == tenant
        and "reconcile started" in str(r.get("msg"))
        and (trigger is None or f"trigger={trigger}" in str(r.get("msg")))
    )


def spawn_run(env: dict[str, str], log_path: Path) -> subprocess.Popen[str]:
    """Another ``reconciler run`` with these settings (the harness keeps one of its own)."""
    with open(log_path, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "run"],
            env={**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


def stop(proc: subprocess.Popen[str], timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return proc.returncode


class BotApi:
    """A Telegram Bot API endpoint on 127.0.0.1: answers getMe and sendMessage with ``{"ok": true}``.

    ``failing`` set to an HTTP status (500, 429, ...): every sendMessage is refused with it, the description echoing
    the request's path, which holds the token, so a test sees whether an error text leaks it."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.messages: list[dict[str, str]] = []
        self.calls: list[str] = []
        self.failing: int | None = None
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                prefix = f"/bot{api.token}/"
                if not self.path.startswith(prefix):
                    self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                    return
                method = self.path[len(prefix) :]
                content_type = self.headers.get("Content-Type", "")
                fields = json.loads(raw) if "json" in content_type else {k: v[0] for k, v in parse_qs(raw).items()}
                with api._lock:
                    api.calls.append(method)
                if method == "getMe":
                    me = {"id": 1, "is_bot": True, "first_name": "alerts", "username": "alerts_bot"}
                    self._answer(200, {"ok": True, "result": me})
                elif method == "sendMessage" and api.failing is not None:
                    refusal: dict[str, object] = {
                        "ok": False,
                        "error_code": api.failing,
                        "description": f"refused ({api.failing}) at {self.path}",
                    }
                    if api.failing == 429:
                        refusal["parameters"] = {"retry_after": 1}
                    self._answer(api.failing, refusal)
                elif method == "sendMessage":
                    with api._lock:
                        api.messages.append({k: str(v) for k, v in fields.items()})
                        number = len(api.messages)
                    chat = {"id": int(fields.get("chat_id", 0)), "type": "private"}
                    sent = {"message_id": number, "date": 0, "chat": chat, "text": fields.get("text", "")}
                    self._answer(200, {"ok": True, "result": sent})
                else:
                    self._answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})

            def _answer(self, code: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/bot"

    def texts(self, containing: str = "") -> list[str]:
        with self._lock:
            return [m.get("text", "") for m in self.messages if containing in m.get("text", "")]


@contextmanager
def bot_api(token: str) -> Iterator[BotApi]:
    api = BotApi(token)
    api.thread.start()
    try:
        yield api
    finally:
        api.server.shutdown()
        api.server.server_close()
