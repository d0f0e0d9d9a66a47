"""Real `custsync` processes for the integration tests: started, waited for, killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

CUSTSYNC = str(Path(sys.executable).with_name("custsync"))


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, step: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(step)
    raise AssertionError(f"{what} not reached within {timeout}s")


class Processes:
    """Every process started here is killed at teardown; logs are kept for failure messages."""

    def __init__(self, env: dict[str, str], log_dir: Path | None) -> None:
        self.env = env
        self.log_dir = log_dir
        self.running: list[subprocess.Popen] = []

    def start(self, *args: str, name: str | None = None, **env: str) -> subprocess.Popen:
        assert self.log_dir is not None, "give a log_dir to start long-running processes"
        log = (self.log_dir / f"{name or args[0]}-{len(self.running)}.log").open("w")
        proc = subprocess.Popen([CUSTSYNC, *args], stdout=log, stderr=subprocess.STDOUT, env={**self.env, **env})
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.running.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([CUSTSYNC, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=True)

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    @staticmethod
    def log(proc: subprocess.Popen) -> str:
        return Path(proc.log_path).read_text()  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.running:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def wait_for_health(http: httpx.AsyncClient, timeout: float = 30.0) -> None:
    """Until ``GET /health`` answers 200 on ``http``'s base URL (a `custsync api` starting up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await http.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the API at {http.base_url} did not come up within {timeout}s")


def base_env() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "DATABASE_URL", "KAFKA_", "API_TOKEN"))}
    return {**keep, "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
