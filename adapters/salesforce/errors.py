"""Salesforce's answers classified into the integration port's errors (``application.errors``),
with the same rules as Stripe's: what may succeed later waits, a definite refusal dead-letters,
refused credentials pause, and a 404 is never taken for a deletion by itself.

Salesforce answers errors as a JSON list: ``[{"errorCode": "...", "message": "...", "fields": [...]}]``.
"""

from __future__ import annotations

import re

import httpx

from application.errors import (
    ExternalCustomerMissing,
    IntegrationAuthError,
    IntegrationError,
    PermanentIntegrationError,
    RequestRefused,
    RetryableIntegrationError,
)

# Wait-worthy: the org's rolling 24-hour request limit, row locks held by someone else's write,
# and the server's own troubles.
RETRYABLE_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "QUERY_TIMEOUT"})
# The record's data refused as it is (a validation error, a validation or duplicate rule of the
# customer's admin): nothing was written, and sending the same again cannot help.
REFUSAL_CODES = frozenset(
    {
        "REQUIRED_FIELD_MISSING",
        "INVALID_EMAIL_ADDRESS",
        "STRING_TOO_LONG",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "DUPLICATES_DETECTED",
        "DUPLICATE_VALUE",
        "INVALID_FIELD",
        "MALFORMED_ID",
        "FIELD_INTEGRITY_EXCEPTION",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
    }
)
# How long to wait before trying again once the org's daily limit is spent: it is a rolling 24 h,
# so calls come back as the oldest ones age out; the worker's backoff cap applies on top.
LIMIT_RETRY_AFTER = 300.0
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


def error_codes(response: httpx.Response) -> list[str]:
    try:
        body = response.json()
    except ValueError:
        return []
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list):
        return []
    return [str(e.get("errorCode")) for e in body if isinstance(e, dict) and e.get("errorCode")]


def classify(response: httpx.Response) -> IntegrationError:
    """The error an unsuccessful answer stands for."""
    status, codes = response.status_code, error_codes(response)
    what = f"salesforce: {status} {', '.join(codes) or 'no error code'}: {_message(response)}"
    if status == 401 or "INVALID_SESSION_ID" in codes:
        return IntegrationAuthError(what)  # the caller asks for a new token first (auth.ClientCredentials)
    if "REQUEST_LIMIT_EXCEEDED" in codes:
        return RetryableIntegrationError(what, retry_after=LIMIT_RETRY_AFTER)
    if status >= 500 or status == 429 or RETRYABLE_CODES.intersection(codes):
        return RetryableIntegrationError(what, retry_after=_retry_after(response))
    if status == 404:
        # Salesforce says so for a record it never had *and* for one in the Recycle Bin: only a
        # look-up (queryAll's IsDeleted) may make it a deletion (domain.safety).
        return ExternalCustomerMissing(what)
    if status == 403:
        return IntegrationAuthError(what)  # the integration user lacks a permission: a person fixes it
    if REFUSAL_CODES.intersection(codes) or status == 400:
        return RequestRefused(what)
    return PermanentIntegrationError(what)


def api_usage(response: httpx.Response) -> tuple[int, int] | None:
    """``(used, limit)`` of the org's daily API requests, from ``Sforce-Limit-Info``."""
    match = _USAGE.search(response.headers.get("sforce-limit-info", ""))
    return (int(match.group(1)), int(match.group(2))) if match else None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    first = body[0] if isinstance(body, list) and body else body
    return str(first.get("message", "") if isinstance(first, dict) else first)[:300]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None
