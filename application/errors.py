"""The error contract of the integration port: every adapter raises these and nothing else."""

from __future__ import annotations

from domain.errors import DomainError


class IntegrationError(DomainError):
    """A call to an external system failed."""

    retryable = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryableIntegrationError(IntegrationError):
    """Rate limited, timed out, unreachable or a server error: the same call may succeed later."""

    retryable = True


class PermanentIntegrationError(IntegrationError):
    """The system refused the request itself (e.g. invalid email): retrying cannot help."""


class IntegrationAuthError(RetryableIntegrationError):
    """Our credentials were refused: every call fails until they are fixed, so the worker pauses
    (rather than dead-lettering the whole queue) and retries once they may have been."""


class ExternalCustomerMissing(IntegrationError):
    """The external customer does not exist (any more)."""


class InvalidWebhook(DomainError):
    """A webhook's signature is missing, forged or expired, or its body is not an event."""


class WebhookNotConfigured(DomainError):
    """No secret to verify webhooks with: a deployment mistake, not the sender's."""


class UnknownSystem(DomainError):
    def __init__(self, system: str) -> None:
        self.system = system
        super().__init__(f"no integration named {system!r}")
