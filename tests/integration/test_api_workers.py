"""`custsync api --workers N`: N processes serve one port (uvicorn's supervisor), each with its own
pool and producer; SIGTERM stops them all cleanly; a process that cannot start stops the API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests.support.infra import recreate_database
from tests.support.processes import wait_until
from tests.support.scrape import Scrape


def children(pid: int) -> list[str]:
    """The command lines of ``pid``'s child processes."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(FileNotFoundError):
                found.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    return found


def serving(cmdlines: list[str]) -> list[str]:
    return [c for c in cmdlines if "spawn_main" in c]


async def test_two_api_processes_serve_one_port_and_stop_cleanly_on_sigterm(pipeline):
    proc = pipeline.processes.start("api", "--port", str(pipeline.api_port), "--workers", "2")
    pipeline.wait_for_api()
    assert (
        len(
            wait_until(
                lambda: serving(children(proc.pid)) if len(serving(children(proc.pid))) == 2 else None,
                15,
                0.1,
                "two API processes",
            )
        )
        == 2
    )

    async with httpx.AsyncClient(base_url=pipeline.api_url, headers=pipeline.http.headers, timeout=10) as http:
        answers = await asyncio.gather(
            *(http.post("/api/v1/customers", json={"name": f"W {n}", "email": None}) for n in range(40))
        )
        assert [a.status_code for a in answers] == [201] * 40
        page = (await http.get("/api/v1/customers", params={"limit": 100})).json()
        assert sorted(c["name"] for c in page["data"]) == sorted(f"W {n}" for n in range(40))  # one catalog

        # Either process answers /metrics with both processes' figures (PROMETHEUS_MULTIPROC_DIR).
        forged = await asyncio.gather(
            *(http.post("/api/v1/webhooks/stripe", content=b"{}", headers={"stripe-signature": "t=1,v1=00"}) for _ in range(30))
        )
        assert {f.status_code for f in forged} == {400}
        for _ in range(6):
            scraped = Scrape((await http.get("/metrics")).text)
            assert scraped.value("custsync_webhooks_rejected_total", system="stripe", reason="signature") == 30

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert not os.path.exists(f"/proc/{proc.pid}")


async def test_an_api_process_that_cannot_start_stops_the_api_with_a_reason(pipeline, tmp_path):
    unmigrated = await recreate_database(pipeline.database_url, "custsync_it_unmigrated")
    proc = pipeline.processes.start(
        "api",
        "--port",
        str(pipeline.api_port),
        "--workers",
        "2",
        "--no-wait",
        DATABASE_URL=unmigrated,
    )
    assert proc.wait(60) != 0
    log = Path(proc.log_path).read_text()
    assert "an API worker process could not start" in log
    assert "migrat" in log  # the reason: the schema is not migrated


def test_workers_need_real_backends():
    done = subprocess.run(
        [str(Path(".venv/bin/custsync").resolve()), "api", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "API_AUTH": "none"},
    )
    assert done.returncode != 0 and "--workers needs PostgreSQL and Kafka" in done.stderr


async def test_api_processes_waiting_for_the_database_stop_on_sigterm(pipeline):
    proc = pipeline.processes.start(
        "api",
        "--port",
        str(pipeline.api_port),
        "--workers",
        "2",
        DATABASE_URL="postgresql+asyncpg://custsync:custsync@127.0.0.1:1/nowhere",  # refused: waited for
    )
    wait_until(lambda: Path(proc.log_path).read_text().count("retrying in") >= 2, 30, 0.1, "both processes waiting")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert "stopped before the backends could be reached" in Path(proc.log_path).read_text()
