"""Webhook verification with the stripe SDK, and the translation of Stripe events into changes."""

import json
import time

import pytest
import stripe

from adapters.stripe.integration import StripeIntegration
from application.errors import InvalidWebhook, WebhookNotConfigured
from domain.customer import CustomerData
from domain.messages import ChangeKind
from tests.support.system import WEBHOOK_SECRET

CUSTOMER = {"id": "cus_1", "object": "customer", "name": "Ada", "email": "ada@example.com", "metadata": {"internal_id": "7"}}


def event(kind="customer.updated", obj=None, created=1_767_225_600):
    return {"id": "evt_1", "object": "event", "type": kind, "created": created, "data": {"object": obj or CUSTOMER}}


def signed(body: dict | bytes, secret=WEBHOOK_SECRET, timestamp=None):
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    header = stripe.WebhookSignature.generate_signature_header(payload.decode(errors="replace"), secret, timestamp)
    return payload, {"stripe-signature": header}


@pytest.fixture
def integration(fake_stripe):
    return StripeIntegration(fake_stripe, [WEBHOOK_SECRET], tolerance=300)


def test_a_valid_signature_yields_the_change(integration):
    change = integration.parse_webhook(*signed(event()))
    assert (change.event_id, change.system, change.kind, change.external_id) == ("evt_1", "stripe", ChangeKind.UPDATED, "cus_1")
    assert change.customer.data == CustomerData("Ada", "ada@example.com") and change.customer.internal_id == 7
    assert change.occurred_at.timestamp() == 1_767_225_600


def test_a_missing_signature_is_refused(integration):
    with pytest.raises(InvalidWebhook, match="missing Stripe-Signature"):
        integration.parse_webhook(json.dumps(event()).encode(), {})


def test_a_signature_made_with_another_secret_is_refused(integration):
    with pytest.raises(InvalidWebhook, match="No signatures found matching"):
        integration.parse_webhook(*signed(event(), secret="whsec_attacker"))


def test_a_tampered_body_is_refused(integration):
    payload, headers = signed(event())
    with pytest.raises(InvalidWebhook):
        integration.parse_webhook(payload.replace(b"Ada", b"Eve"), headers)


def test_a_stale_timestamp_is_refused(integration):
    with pytest.raises(InvalidWebhook, match="tolerance"):
        integration.parse_webhook(*signed(event(), timestamp=int(time.time()) - 301))


def test_one_matching_signature_among_several_is_enough(integration):
    payload, headers = signed(event())
    headers["stripe-signature"] += ",v1=" + "0" * 64
    assert integration.parse_webhook(payload, headers) is not None


def test_the_previous_secret_is_still_accepted_during_a_rotation(fake_stripe):
    rotating = StripeIntegration(fake_stripe, ["whsec_new", "whsec_old"])
    assert rotating.parse_webhook(*signed(event(), secret="whsec_old")) is not None
    assert rotating.parse_webhook(*signed(event(), secret="whsec_new")) is not None


def test_no_configured_secret_refuses_everything(fake_stripe):
    with pytest.raises(WebhookNotConfigured, match="no webhook secret"):
        StripeIntegration(fake_stripe, [""]).parse_webhook(*signed(event()))


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[]", b'{"id": 1}'])
def test_a_signed_body_that_is_not_an_event_is_refused(integration, body):
    _payload, headers = signed(body)
    with pytest.raises(InvalidWebhook):
        integration.parse_webhook(body, headers if body != b"\xff\xfe" else {"stripe-signature": "t=1,v1=00"})


@pytest.mark.parametrize("kind", ["invoice.paid", "customer.subscription.updated", "customer.source.created"])
def test_other_event_types_are_ignored(integration, kind):
    obj = CUSTOMER if kind.startswith("invoice") else {"id": "sub_1", "object": "subscription"}
    assert integration.parse_webhook(*signed(event(kind, obj))) is None


def test_a_deleted_event_marks_the_customer_deleted(integration):
    change = integration.parse_webhook(*signed(event("customer.deleted")))
    assert change.kind is ChangeKind.DELETED and change.customer.deleted


def test_empty_strings_and_foreign_metadata_are_read_as_absent(integration):
    obj = dict(CUSTOMER, name="", email=None, metadata={"internal_id": "not-a-number"})
    change = integration.parse_webhook(*signed(event(obj=obj)))
    assert change.customer.data == CustomerData(None, None) and change.customer.internal_id is None
