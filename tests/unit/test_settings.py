import re

import pytest

from domain.conflicts import ConflictPolicy
from entrypoints.settings import Settings, SettingsError, load_settings


def test_defaults_run_everything_in_memory():
    settings = load_settings({})
    assert settings.uses_memory and settings.stripe_max_rps == 25 and settings.max_body_bytes == 64 * 1024
    assert settings.conflict_policy is ConflictPolicy.LATEST_WINS


def test_environment_variables_are_read_and_converted():
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql+asyncpg://u:p@127.0.0.1/db",
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
            "STRIPE_MAX_RPS": "10.5",
            "CONFLICT_POLICY": "stripe_wins",
            "STRIPE_WEBHOOK_SECRET": "whsec_a",
            "STRIPE_WEBHOOK_SECRET_PREVIOUS": "whsec_b",
            "API_TOKEN": "t",
        }
    )
    assert (settings.storage_backend, settings.broker_backend) == ("postgres", "kafka")
    assert settings.stripe_max_rps == 10.5
    assert settings.conflict_policy is ConflictPolicy.EXTERNAL_WINS
    assert settings.webhook_secrets == ["whsec_a", "whsec_b"]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"STRIPE_MAX_RPS": "fast"}, "STRIPE_MAX_RPS"),
        ({"CONFLICT_POLICY": "coin_flip"}, "CONFLICT_POLICY"),
        ({"MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES"),
    ],
)
def test_a_bad_value_fails_at_start_up_naming_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        load_settings(env)


def test_unrelated_environment_variables_are_ignored():
    assert load_settings({"HOME": "/root", "PATH": "/bin"}) == Settings()


@pytest.mark.parametrize(
    "env",
    [
        {"DATABASE_URL": "postgresql+asyncpg://u:p@h/db"},
        {"KAFKA_BOOTSTRAP_SERVERS": "h:9092"},
        {"DATABASE_URL": "mysql://u:p@h/db", "KAFKA_BOOTSTRAP_SERVERS": "h:9092"},
    ],
)
def test_half_a_real_backend_is_refused(env):
    with pytest.raises(SettingsError):
        load_settings(env)


def test_catch_up_polls_every_minute_reading_two_minutes_back_unless_told_otherwise():
    assert (Settings().catchup_interval, Settings().catchup_overlap) == (60.0, 120.0)
    settings = load_settings({"CATCHUP_INTERVAL": "0", "CATCHUP_OVERLAP": "30"})
    assert (settings.catchup_interval, settings.catchup_overlap) == (0.0, 30.0)


@pytest.mark.parametrize(
    "env", [{"CATCHUP_INTERVAL": "-1"}, {"CATCHUP_OVERLAP": "-5"}, {"CATCHUP_INTERVAL": "nan"}, {"CATCHUP_OVERLAP": "inf"}]
)
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


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("pk_test_51Habc", "a publishable key (pk_...)"),
        ("pk_live_51Habc", "a publishable key (pk_...)"),
        ("whsec_abc", "a webhook signing secret (whsec_...)"),
        ("sk_test", "not a Stripe API key"),
        ("ghp_token", "not a Stripe API key"),
        ("sk_test_...", "not a Stripe API key"),
        ("sk_live_51Habc\n", "not a Stripe API key"),
    ],
)
def test_a_stripe_key_of_the_wrong_kind_is_refused_before_any_call(key, kind):
    with pytest.raises(SettingsError, match=re.escape(f"STRIPE_SECRET_KEY is {kind}: custsync needs a secret key")):
        load_settings({"STRIPE_SECRET_KEY": key})


@pytest.mark.parametrize("key", ["sk_test_51Habc", "sk_live_51Habc", "rk_test_51Habc", "rk_live_51Habc"])
def test_secret_and_restricted_keys_are_accepted(key):
    assert load_settings({"STRIPE_SECRET_KEY": key}).stripe_secret_key == key


@pytest.mark.parametrize("name", ["STRIPE_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET_PREVIOUS"])
def test_an_api_key_given_as_the_webhook_secret_is_refused(name):
    with pytest.raises(SettingsError, match=f"^{name} holds an API key: it takes the endpoint's signing secret"):
        load_settings({name: "sk_test_51Habc"})


@pytest.mark.parametrize("token", ["change-me-openssl-rand-hex-32", "CHANGEME", "<your token>", "...", "replace-me"])
def test_a_placeholder_api_token_is_refused(token):
    with pytest.raises(SettingsError, match=r"API_TOKEN is a placeholder, not a token: generate one with `openssl rand -hex 32`"):
        load_settings({"API_TOKEN": token})


def test_a_generated_api_token_is_accepted():
    token = "9f" * 32
    assert load_settings({"API_TOKEN": token}).api_token == token


def test_topics_are_replicated_as_configured():
    assert Settings().kafka_replication_factor == 1
    assert load_settings({"KAFKA_REPLICATION_FACTOR": "3"}).kafka_replication_factor == 3
    with pytest.raises(SettingsError, match="KAFKA_REPLICATION_FACTOR must be at least 1"):
        load_settings({"KAFKA_REPLICATION_FACTOR": "0"})
