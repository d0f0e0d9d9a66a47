"""One source for configuration: the settings class. `.env.example`, the compose file and the
configuration reference each carry every setting the service reads, and nothing it does not."""

import importlib.util
import re
from pathlib import Path

import msgspec
import pytest
import yaml

from entrypoints.settings import ENV_NAMES, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = set(ENV_NAMES)
# The example points these at the services `make services` starts, not at the in-memory default.
LOCAL_SERVICES = {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}
# What a deployment must fill in: empty or commented out in the example, and compose refuses to start without them.
REQUIRED = {"STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "API_TOKEN"}


def example_lines() -> dict[str, tuple[str, bool]]:
    """NAME -> (value, commented out) of every variable line of .env.example."""
    found: dict[str, tuple[str, bool]] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if match := re.fullmatch(r"(# )?([A-Z][A-Z0-9_]*)=(.*)", line):
            assert match[2] not in found, f".env.example names {match[2]} twice"
            found[match[2]] = (match[3], bool(match[1]))
    return found


def test_env_example_lists_every_setting_and_nothing_else():
    listed = set(example_lines())
    assert SETTINGS - listed == set(), f".env.example lacks {sorted(SETTINGS - listed)}"
    assert listed - SETTINGS == set(), f".env.example lists variables custsync never reads: {sorted(listed - SETTINGS)}"


def test_env_example_gives_the_defaults_and_leaves_the_required_ones_to_fill_in():
    defaults = msgspec.to_builtins(Settings())
    for name, (value, commented) in example_lines().items():
        if name in REQUIRED:
            assert value == "", f"{name} must be left for the operator to fill in"
        elif name not in LOCAL_SERVICES:
            assert not commented, f"{name} is commented out: give its default"
            expected = defaults[ENV_NAMES[name]]
            assert msgspec.convert(value, type(expected), strict=False) == expected, (
                f"{name}={value} is not the default {expected!r}"
            )


def test_a_copied_example_filled_in_is_accepted():
    filled = {name: value for name, (value, commented) in example_lines().items() if not commented}
    filled.update(STRIPE_SECRET_KEY="sk_test_abc", STRIPE_WEBHOOK_SECRET="whsec_abc", API_TOKEN="0" * 64)
    settings = load_settings(filled)
    assert settings.database_url.startswith("postgresql+asyncpg://") and settings.api_token == "0" * 64


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def custsync_services(compose: dict) -> dict[str, dict]:
    return {name: svc for name, svc in compose["services"].items() if svc.get("image") == "custsync:local"}


# What compose itself sets, and so overrides in .env (`environment` wins over `env_file`): where its own
# PostgreSQL and Kafka are, the three settings it refuses to start without, and the worker's listener.
COMPOSE_SETS = {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", *REQUIRED}
COMPOSE_SETS_FOR = {"init": COMPOSE_SETS, "api": COMPOSE_SETS, "worker": COMPOSE_SETS | {"METRICS_PORT", "METRICS_HOST"}}


def test_compose_passes_every_setting_of_the_env_file_to_every_custsync_container(compose):
    services = custsync_services(compose)
    assert set(services) == set(COMPOSE_SETS_FOR)
    for name, service in services.items():
        assert service["env_file"] == ".env", name
        # Any other setting named here would silently override the operator's .env.
        assert set(service["environment"]) == COMPOSE_SETS_FOR[name], name


def test_compose_refuses_to_start_without_what_the_service_cannot_run_without(compose):
    """`${NAME:?message}` (unset or empty) stops `docker compose up` with that one line;
    API_TOKEN may be empty (`?`), for API_AUTH=none."""
    for name, service in custsync_services(compose).items():
        environment = service["environment"]
        for variable in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
            assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", environment[variable]), (name, variable)
        assert re.fullmatch(r"\$\{API_TOKEN\?[^}]+\}", environment["API_TOKEN"]), name


def test_the_configuration_reference_describes_every_setting_in_its_group():
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "docs/gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not as mkdocs-gen-files runs it: nothing is written
    page = module.configuration()
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| (.+?) \| (.+) \|$", page, flags=re.MULTILINE)
    assert {name for name, _, _ in rows} == SETTINGS
    assert len(rows) == len(SETTINGS), "a setting is listed twice"
    assert all(len(description) > 20 for _, _, description in rows)


def test_every_setting_says_what_it_does_and_where_it_belongs():
    from entrypoints.settings import GROUPS

    for field in msgspec.inspect.type_info(Settings).fields:
        meta = field.type
        assert isinstance(meta, msgspec.inspect.Metadata), f"{field.name} has no description"
        assert meta.extra["group"] in GROUPS, field.name
        assert meta.extra_json_schema["description"].strip(), field.name
