"""The README's first command on a fresh clone: `make dev` sets itself up (a new virtualenv, the
service's packages only) and serves, and nothing alarming is printed on the way: no traceback, no
installer banner, no warning, one log format."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.stripe_server import free_port

ROOT = Path(__file__).resolve().parents[2]
# Our text format (entrypoints/logs.py): "2026-12-08 00:35:47,321 INFO custsync: ..."
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def fresh_clone(into: Path) -> Path:
    """The files a clone of this checkout would hold once its work is committed (as they are in the
    working tree), nothing ignored."""
    tracked = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


@pytest.mark.network  # pip installs the service's packages from PyPI, as on a new machine
@pytest.mark.timeout(660)
def test_make_dev_on_a_fresh_clone_installs_quietly_and_serves(tmp_path):
    clone = fresh_clone(tmp_path / "custsync")
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "DATABASE_URL", "KAFKA_", "API_TOKEN", "MAKE"))
    }
    env["PYTHON"] = sys.executable  # the interpreter the suite runs on: Python 3.11 as on a new machine
    proc = subprocess.Popen(
        ["make", "dev", f"PORT={port}"], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:  # until the server answers (pip may take a while), bounded
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "make dev exited:\n" + "".join(lines)
            lines.append(line)
            if "Uvicorn running on" in line or "Application startup complete" in line:
                break
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    output = "".join(lines)
    banner = next(i for i, line in enumerate(lines) if line.startswith("custsync dev:"))
    assert lines[:banner] == ["installing custsync into .venv (once)...\n"], output
    assert "Traceback" not in output and "!!" not in output, output
    rest = lines[banner + 1 :]
    logged = rest[next(i for i, line in enumerate(rest) if not line.startswith("  ")) :]  # after the banner's own lines
    assert logged and all(LOG_LINE.match(line) for line in logged), "not one log format:\n" + output
    assert not [line for line in logged if " WARNING " in line or " ERROR " in line], output
    installed = {p.name for p in (clone / ".venv/lib").glob("python*/site-packages/*")}
    assert {"litestar", "aiokafka", "stripe"} <= installed
    assert not installed & {"pytest", "hypothesis", "schemathesis", "playwright", "mkdocs"}, "make dev installed the test tools"
