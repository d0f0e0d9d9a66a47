"""Salesforce's answers classified as Stripe's are: waits, refusals, paused credentials, and a 404
that is never a deletion by itself; the daily API usage read from Sforce-Limit-Info."""

import httpx
import pytest

from adapters.salesforce.errors import LIMIT_RETRY_AFTER, api_usage, classify
from application.errors import (
    ExternalCustomerMissing,
    IntegrationAuthError,
    PermanentIntegrationError,
    RequestRefused,
    RetryableIntegrationError,
)


def answer(status: int, code: str | None = None, message: str = "", **headers: str) -> httpx.Response:
    body = [{"errorCode": code, "message": message, "fields": []}] if code else None
    return (
        httpx.Response(status, json=body, headers=headers)
        if body is not None
        else httpx.Response(status, text=message, headers=headers)
    )


@pytest.mark.parametrize(
    ("response", "kind", "retryable"),
    [
        (answer(401, "INVALID_SESSION_ID", "Session expired or invalid"), IntegrationAuthError, True),
        (answer(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."), RetryableIntegrationError, True),
        (answer(400, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"), RetryableIntegrationError, True),
        (answer(503, None, "Service Unavailable"), RetryableIntegrationError, True),
        (answer(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred"), RetryableIntegrationError, True),
        (answer(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]"), RequestRefused, False),
        (answer(400, "INVALID_EMAIL_ADDRESS", "Email: invalid email address: x"), RequestRefused, False),
        (answer(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Rule says no"), RequestRefused, False),
        (answer(400, "DUPLICATES_DETECTED", "Use one of these records?"), RequestRefused, False),
        (answer(404, "NOT_FOUND", "The requested resource does not exist"), ExternalCustomerMissing, False),
        (answer(404, "ENTITY_IS_DELETED", "entity is deleted"), ExternalCustomerMissing, False),
        (answer(403, "INSUFFICIENT_ACCESS", "insufficient access rights on object id"), IntegrationAuthError, True),
        (
            answer(300, None, '["/services/data/v62.0/sobjects/Contact/003A", "/services/data/v62.0/sobjects/Contact/003B"]'),
            PermanentIntegrationError,
            False,
        ),
    ],
)
def test_each_answer_is_classified_with_the_rules_stripes_follow(response, kind, retryable):
    error = classify(response)
    assert type(error) is kind and error.retryable is retryable
    assert str(error).startswith(f"salesforce: {response.status_code}")


def test_the_spent_daily_limit_waits_longer_than_a_blip_and_retry_after_is_honoured():
    assert classify(answer(403, "REQUEST_LIMIT_EXCEEDED")).retry_after == LIMIT_RETRY_AFTER
    assert classify(answer(503, None, "busy", **{"Retry-After": "7"})).retry_after == 7.0


def test_the_daily_usage_is_read_from_sforce_limit_info():
    assert api_usage(httpx.Response(200, headers={"Sforce-Limit-Info": "api-usage=18/15000"})) == (18, 15000)
    assert api_usage(httpx.Response(200)) is None
