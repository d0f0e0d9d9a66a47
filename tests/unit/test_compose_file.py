"""No Docker engine runs here, so the compose file is checked statically: valid against the
Compose Specification's JSON schema, every command a real `custsync` command, and the start-up
order right. Its settings: tests/unit/test_configuration_sources.py."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from entrypoints.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]
# The schema docker compose itself validates with: schema/compose-spec.json of
# github.com/compose-spec/compose-go/v2 v2.9.1, the version docker compose v2.40.3 builds with.
SCHEMA = json.loads((ROOT / "tests/fixtures/compose-spec.schema.json").read_text())
VALIDATOR = jsonschema.Draft7Validator  # its $schema: draft-07 (written with https, which jsonschema does not look up)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def custsync_services(compose):
    return {name: svc for name, svc in compose["services"].items() if svc.get("image") == "custsync:local"}


def test_the_file_is_valid_against_the_compose_specification(compose):
    VALIDATOR(SCHEMA).validate(compose)


def test_a_broken_file_would_be_caught_by_the_schema(compose):
    broken = {**compose, "services": {**compose["services"], "api": {**compose["services"]["api"], "ports": "8000"}}}
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR(SCHEMA).validate(broken)


MONITORING = {"prometheus", "grafana"}  # the `monitoring` profile (deploy/, tests/unit/test_monitoring_kit.py)


def test_the_expected_services_run(compose):
    assert set(compose["services"]) == {"postgres", "kafka", "init", "api", "worker"} | MONITORING
    # A plain `docker compose up` starts no monitoring; `--profile monitoring` adds it to the rest.
    profiled = {name for name, svc in compose["services"].items() if "profiles" in svc}
    assert profiled == MONITORING
    for name in MONITORING:
        assert compose["services"][name]["profiles"] == ["monitoring"]
    assert set(custsync_services(compose)) == {"init", "api", "worker"}
    assert compose["services"]["postgres"]["image"].startswith("postgres:")
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:")
    assert "zookeeper" not in json.dumps(compose).lower()


@pytest.mark.parametrize("service", ["init", "api", "worker"])
def test_every_service_command_is_a_real_custsync_command(compose, service):
    command = compose["services"][service]["command"]
    subcommand = cli.commands.get(command[0])
    assert subcommand is not None, f"custsync has no command {command[0]!r}"
    ctx = subcommand.make_context(command[0], list(command[1:]), resilient_parsing=False)  # raises on a bad option
    assert ctx.command is subcommand


def test_services_start_in_order(compose):
    services = compose["services"]
    assert services["init"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "kafka": {"condition": "service_healthy"},
    }
    for name in ("api", "worker"):
        assert services[name]["depends_on"] == {"init": {"condition": "service_completed_successfully"}}
    for name in ("postgres", "kafka", "api"):
        assert "test" in services[name]["healthcheck"]


def test_the_image_runs_as_a_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(line.startswith("ENTRYPOINT") and "custsync" in line for line in dockerfile)
