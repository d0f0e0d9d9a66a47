import pytest

from domain.conflicts import ConflictPolicy
from entrypoints.settings import Settings, SettingsError, load_settings


def test_defaults_run_everything_in_memory():
    settings = load_settings({})
    assert settings.uses_memory and settings.stripe_max_rps == 25 and settings.max_body_bytes == 64 * 1024
    assert settings.conflict_policy is ConflictPolicy.LATEST_WINS


def test_environment_variables_are_read_and_converted():
    settings = load_settings({
        "DATABASE_URL": "postgresql+asyncpg://u:p@127.0.0.1/db", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "STRIPE_MAX_RPS": "10.5", "CONFLICT_POLICY": "stripe_wins",
        "STRIPE_WEBHOOK_SECRET": "whsec_a", "STRIPE_WEBHOOK_SECRET_PREVIOUS": "whsec_b", "API_TOKEN": "t",
    })
    assert (settings.storage_backend, settings.broker_backend) == ("postgres", "kafka")
    assert settings.stripe_max_rps == 10.5
    assert settings.conflict_policy is ConflictPolicy.EXTERNAL_WINS
    assert settings.webhook_secrets == ["whsec_a", "whsec_b"]


@pytest.mark.parametrize(
    ("env", "named"),
    [({"STRIPE_MAX_RPS": "fast"}, "STRIPE_MAX_RPS"), ({"CONFLICT_POLICY": "coin_flip"}, "CONFLICT_POLICY"),
     ({"MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES")],
)
def test_a_bad_value_fails_at_start_up_naming_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        load_settings(env)


def test_unrelated_environment_variables_are_ignored():
    assert load_settings({"HOME": "/root", "PATH": "/bin"}) == Settings()


@pytest.mark.parametrize(
    "env",
    [{"DATABASE_URL": "postgresql+asyncpg://u:p@h/db"}, {"KAFKA_BOOTSTRAP_SERVERS": "h:9092"},
     {"DATABASE_URL": "mysql://u:p@h/db", "KAFKA_BOOTSTRAP_SERVERS": "h:9092"}],
)
def test_half_a_real_backend_is_refused(env):
    with pytest.raises(SettingsError):
        load_settings(env)


def test_catch_up_polls_every_minute_reading_two_minutes_back_unless_told_otherwise():
    assert (Settings().catchup_interval, Settings().catchup_overlap) == (60.0, 120.0)
    settings = load_settings({"CATCHUP_INTERVAL": "0", "CATCHUP_OVERLAP": "30"})
    assert (settings.catchup_interval, settings.catchup_overlap) == (0.0, 30.0)


@pytest.mark.parametrize("env", [{"CATCHUP_INTERVAL": "-1"}, {"CATCHUP_OVERLAP": "-5"}, {"CATCHUP_INTERVAL": "nan"}, {"CATCHUP_OVERLAP": "inf"}])
def test_a_negative_or_unbounded_catch_up_setting_is_refused(env):
    with pytest.raises(SettingsError, match="CATCHUP_INTERVAL and CATCHUP_OVERLAP"):
        load_settings(env)


def test_scheduled_reconcile_runs_are_off_unless_asked_for():
    assert Settings().reconcile_interval == 0.0
    assert load_settings({"RECONCILE_INTERVAL": "86400"}).reconcile_interval == 86400.0


@pytest.mark.parametrize("value", ["-1", "30", "59.9", "nan", "inf"])
def test_a_reconcile_interval_that_is_negative_unbounded_or_under_a_minute_is_refused(value):
    with pytest.raises(SettingsError, match="RECONCILE_INTERVAL"):
        load_settings({"RECONCILE_INTERVAL": value})
