"""The `custsync` command as a user runs it: help everywhere, `dev` end to end, clean shutdown."""

import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.support.processes import CUSTSYNC, wait_until
from tests.support.stripe_server import free_port

ENV = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "API_TOKEN")}

COMMANDS = [
    [],
    ["api"],
    ["worker"],
    ["dev"],
    ["relay"],
    ["migrate"],
    ["topics"],
    ["init"],
    ["dlq"],
    ["dlq", "list"],
    ["dlq", "replay"],
    ["stripe"],
    ["stripe", "binding"],
    ["stripe", "rebind"],
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = subprocess.run([CUSTSYNC, *command, "--help"], capture_output=True, text=True, timeout=30, env=ENV)
    assert result.returncode == 0
    assert "Usage: custsync" in result.stdout
    if command in (["api"], ["dev"]):
        assert "--port" in result.stdout and "--host" in result.stdout


@pytest.fixture
def dev_server():
    port = free_port()
    proc = subprocess.Popen(
        [CUSTSYNC, "dev", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV
    )
    base = f"http://127.0.0.1:{port}"

    def healthy():
        try:
            return httpx.get(f"{base}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return proc.poll() is not None and pytest.fail(proc.stdout.read())

    try:
        wait_until(healthy, timeout=20)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_dev_walkthrough_both_ways_then_a_clean_sigterm(dev_server):
    proc, base = dev_server
    with httpx.Client(base_url=base, timeout=5) as http:
        created = http.post("/api/v1/customers", json={"name": "Ada Lovelace", "email": "ada@example.com"})
        assert created.status_code == 201
        location = created.headers["location"]
        started = time.monotonic()

        def stripe_link():
            [link] = [m for m in http.get(location).json()["mappings"] if m["system"] == "stripe"]  # dev syncs Salesforce too
            return link if link["external_id"] else None

        link = wait_until(stripe_link, timeout=1.0)
        assert link["external_id"].startswith("cus_") and link["sync_status"] == "synced"
        assert time.monotonic() - started < 1.0

        changed = http.patch(f"/dev/stripe/customers/{link['external_id']}", json={"email": "ada@lovelace.dev"})
        assert changed.status_code == 200
        wait_until(lambda: http.get(location).json()["email"] == "ada@lovelace.dev", timeout=2)

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    output = proc.stdout.read()
    assert "Nothing is persisted" in output and "stopped cleanly" in output


def test_the_worker_stops_cleanly_on_sigint():
    proc = subprocess.Popen([CUSTSYNC, "worker"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    try:
        time.sleep(1.5)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
        output = proc.stdout.read()
        assert "in-memory backend" in output and "stopped cleanly" in output
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_bad_setting_stops_start_up_with_one_clear_line():
    result = subprocess.run(
        [CUSTSYNC, "worker"], capture_output=True, text=True, timeout=30, env={**ENV, "STRIPE_MAX_RPS": "lots"}
    )
    assert result.returncode != 0
    assert "STRIPE_MAX_RPS" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["dlq", "replay"], ["dlq", "replay", "--id", "1", "--all"]])
def test_dlq_replay_needs_exactly_one_of_id_or_all(args):
    result = subprocess.run([CUSTSYNC, *args], capture_output=True, text=True, timeout=30, env=ENV)
    assert result.returncode == 2
    assert "give either --id (one or more) or --all" in result.stderr


def test_dlq_without_a_database_says_so_in_one_line():
    result = subprocess.run([CUSTSYNC, "dlq", "list"], capture_output=True, text=True, timeout=30, env=ENV)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "Error: DATABASE_URL is not set: dead letters live in the database (in `custsync dev`, use the API)"
    )


@pytest.mark.parametrize("command", ["api", "worker"])
def test_api_and_worker_on_real_storage_refuse_to_start_without_a_stripe_key(command):
    # Finding 2: the in-memory Stripe stand-in once stored fake cus_ ids in a real catalog.
    env = {**ENV, "DATABASE_URL": "postgresql+asyncpg://u:p@127.0.0.1:9/none", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    env.pop("STRIPE_SECRET_KEY", None)
    result = subprocess.run([CUSTSYNC, command], capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: STRIPE_SECRET_KEY is not set: custsync {command} refuses to sync a real catalog with the in-memory "
        "Stripe stand-in (it exists for `custsync dev` only)"
    )


UNREACHABLE = {
    "DATABASE_URL": "postgresql+asyncpg://u:p@127.0.0.1:9/none",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
    "STRIPE_SECRET_KEY": "sk_test_unreachable",
    "STRIPE_API_BASE": "http://127.0.0.1:9",
}


def test_the_api_on_real_storage_refuses_to_start_without_a_token():
    result = subprocess.run([CUSTSYNC, "api"], capture_output=True, text=True, timeout=30, env={**ENV, **UNREACHABLE})
    assert result.returncode == 1
    assert result.stderr.startswith("Error: API_TOKEN is not set: custsync api refuses to serve the catalog on real storage")
    assert "Traceback" not in result.stderr and "API_AUTH=none" in result.stderr


def test_dev_beyond_this_machine_needs_a_token_too():
    result = subprocess.run(
        [CUSTSYNC, "dev", "--host", "0.0.0.0", "--port", str(free_port())], capture_output=True, text=True, timeout=30, env=ENV
    )
    assert result.returncode == 1 and "API_TOKEN is not set: custsync dev refuses" in result.stderr


def test_api_auth_none_is_said_at_start_up():
    env = {**ENV, **UNREACHABLE, "API_AUTH": "none"}
    result = subprocess.run([CUSTSYNC, "api", "--no-wait"], capture_output=True, text=True, timeout=30, env=env)
    assert "API_AUTH=none: the catalog, dead-letter and replay routes are open to anyone" in result.stderr


@pytest.mark.parametrize("command", ["api", "worker", "relay"])
def test_no_wait_stops_on_an_unreachable_backend_with_one_line_and_no_traceback(command):
    env = {**ENV, **UNREACHABLE, "API_TOKEN": "t"}
    result = subprocess.run([CUSTSYNC, command, "--no-wait"], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert error.startswith("Error: cannot reach the database at 127.0.0.1:9: the database is unavailable")


@pytest.mark.parametrize("command", ["api", "worker"])
def test_an_unreachable_backend_is_waited_for_one_line_per_attempt(command):
    env = {**ENV, **UNREACHABLE, "API_TOKEN": "t"}
    proc = subprocess.Popen([CUSTSYNC, command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        time.sleep(4)  # attempts at 0, 1 and 3 s
        assert proc.poll() is None  # still waiting, not exited
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    waits = [line for line in out.splitlines() if "cannot reach the database at 127.0.0.1:9" in line]
    assert len(waits) >= 2 and all("retrying in" in line for line in waits), out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("command", "line"),
    [
        ("migrate", "Error: cannot migrate the database at 127.0.0.1:9/none: the database is unavailable"),
        ("topics", "Error: cannot reach Kafka at 127.0.0.1:9: KafkaConnectionError"),
        ("init", "Error: cannot migrate the database at 127.0.0.1:9/none: the database is unavailable"),
    ],
)
def test_what_a_deployment_runs_first_fails_with_one_line_when_a_backend_is_unreachable(command, line):
    result = subprocess.run([CUSTSYNC, command], capture_output=True, text=True, timeout=60, env={**ENV, **UNREACHABLE})
    assert result.returncode == 1
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(line), result.stderr


def test_topic_partitions_and_replication_are_settings_of_topics():
    result = subprocess.run([CUSTSYNC, "topics", "--help"], capture_output=True, text=True, timeout=30, env=ENV)
    assert "--partitions" in result.stdout and "--replication-factor" in result.stdout
    refused = subprocess.run(
        [CUSTSYNC, "topics", "--replication-factor", "0"], capture_output=True, text=True, timeout=30, env={**ENV, **UNREACHABLE}
    )
    assert refused.returncode == 2 and "--replication-factor" in refused.stderr


def test_a_publishable_key_is_refused_before_any_call():
    env = {**ENV, **UNREACHABLE, "STRIPE_SECRET_KEY": "pk_live_51Habc", "API_TOKEN": "t"}
    for command in ("api", "worker"):
        result = subprocess.run([CUSTSYNC, command], capture_output=True, text=True, timeout=30, env=env)
        assert result.returncode == 1
        assert result.stderr.strip() == (
            "Error: STRIPE_SECRET_KEY is a publishable key (pk_...): custsync needs a secret key "
            "(sk_test_..., sk_live_...) or a restricted key (rk_...) from the dashboard's API keys page"
        ), result.stderr


def test_a_taken_port_stops_dev_with_one_line_and_no_traceback():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([CUSTSYNC, "dev", "--port", str(port)], capture_output=True, text=True, timeout=60, env=ENV)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.rstrip().endswith(
        f"Error: cannot serve HTTP on 127.0.0.1:{port}: the port is taken, or the address is not this machine's "
        "(the line above says which; another port: --port, or `make dev PORT=...`)"
    ), result.stderr
    assert f"error while attempting to bind on address ('127.0.0.1', {port}): address already in use" in result.stderr
