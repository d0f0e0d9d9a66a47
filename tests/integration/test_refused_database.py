"""A database that answers but will not let custsync in (a wrong password, a database that does
not exist) is a configuration error, not an outage: every command says so in one line and stops,
instead of a driver's traceback or waiting forever."""

from __future__ import annotations

import os
import subprocess

import pytest
from sqlalchemy.engine import make_url

from tests.integration.conftest import DEFAULT_TEST_DATABASE_URL
from tests.support.processes import CUSTSYNC

URL = make_url(os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL))
WHERE = f"{URL.host}:{URL.port}"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (URL.set(password="not-the-password"), f'password authentication failed for user "{URL.username}"'),
        (URL.set(database="no_such_database"), 'database "no_such_database" does not exist'),
    ],
)
@pytest.mark.parametrize("command", [["migrate"], ["init"], ["dlq", "list"], ["worker"], ["api"]])
def test_a_database_that_refuses_custsync_stops_every_command_with_one_line(url, why, command):
    env = {
        **os.environ,
        "DATABASE_URL": url.render_as_string(hide_password=False),
        "STRIPE_SECRET_KEY": "sk_test_refused",
        "API_TOKEN": "refused-database-token",
        "KAFKA_BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:29092"),
    }
    result = subprocess.run([CUSTSYNC, *command], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert error == f"Error: the database at {WHERE}/{url.database} refuses custsync: {why} (check DATABASE_URL)"
