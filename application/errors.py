"""The error contract of the integration port: every adapter raises these and nothing else."""

from __future__ import annotations

from domain.errors import DomainError


class IntegrationError(DomainError):
    """A call to an external system failed."""

    retryable = False
    drops_intent = False  # the create intent this failure settles (see CreateRefused)
    conflict_note: str | None = None  # a conflict the failed attempt had settled, for the history

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryableIntegrationError(IntegrationError):
    """Rate limited, timed out, unreachable or a server error: the same call may succeed later."""

    retryable = True


class PermanentIntegrationError(IntegrationError):
    """Retrying the same request cannot help (the system said so, or refused it)."""


class RequestRefused(PermanentIntegrationError):
    """The system refused the request's data itself (a validation error, e.g. an invalid email):
    nothing was done. The only failure that proves a create made nothing."""


class IntegrationAuthError(RetryableIntegrationError):
    """Our credentials were refused: every call fails until they are fixed, so the worker pauses
    (rather than dead-lettering the whole queue) and retries once they may have been."""


class IdempotentReplayFailure(RetryableIntegrationError):
    """The system answered a failure saved under our idempotency key (Stripe replays a 500 for
    24 hours to every retry with that key): repeating the request cannot succeed. Whether the
    first attempt made anything must be looked up, then the request made under a new key."""


class CreateRefused(PermanentIntegrationError):
    """The system refused a create itself (a validation error): its saved intent is dropped, so
    that the next attempt (a replay) sends the customer's current state under a new key."""

    drops_intent = True


class CreateFailed(PermanentIntegrationError):
    """A create failed for good without saying it was refused, and a look-up proved it made
    nothing: its intent is dropped and the message waits in the dead-letter store."""

    drops_intent = True


class NothingCreated(RetryableIntegrationError):
    """A look-up proved that a create whose answer was lost made nothing: its intent is dropped
    and the next attempt sends the create again under a new key."""

    drops_intent = True


class AccountChanged(IntegrationAuthError):
    """The credentials now answer for another account than the one the catalog is bound to: sync
    pauses (like refused credentials) instead of writing anywhere, until an operator acts."""


class ExternalCustomerMissing(PermanentIntegrationError):
    """The system does not know this id (Stripe: 404 ``resource_missing``). Not a deletion: a
    deleted customer is still retrievable with ``deleted: true``; this means another account,
    another mode or a restored database."""


class MappingBroken(PermanentIntegrationError):
    """A mapped external customer is unknown to the account: the link is marked broken, nothing
    in the catalog changed, and the message waits in the dead-letter store for an operator."""


class AmbiguousImport(PermanentIntegrationError):
    """A record linked to nothing here shares its email with a catalog customer linked to nothing
    there: perhaps the same person (a first sync not done, or left ambiguous). Importing it could
    make them twice, so the change waits in the dead-letter store: link them (``custsync reconcile
    --match-by email``) or tell them apart, then replay."""


class AmbiguousExport(PermanentIntegrationError):
    """The mirror of AmbiguousImport: a catalog customer linked to nothing there shares its email
    with records there linked to nothing here (a case the last reconcile left for a person)."""


class InvalidWebhook(DomainError):
    """A webhook's signature is missing, forged or expired (``reason`` "signature"), or its body
    is not an event ("malformed")."""

    def __init__(self, message: str, *, reason: str = "malformed") -> None:
        self.reason = reason
        super().__init__(message)


class RefusedWebhook(DomainError):
    """A genuine, well-formed event whose object we refuse: acknowledged (redelivery cannot help)
    and recorded, never applied."""

    def __init__(self, event_id: str, reason: str) -> None:
        self.event_id, self.reason = event_id, reason
        super().__init__(f"event {event_id} refused: {reason}")


class WebhookNotConfigured(DomainError):
    """No secret to verify webhooks with: a deployment mistake, not the sender's."""


class AccountMismatch(DomainError):
    """The credentials belong to another account or mode than the one the catalog is bound to."""

    def __init__(self, system: str, bound: object, actual: object) -> None:
        self.system, self.bound, self.actual = system, bound, actual
        super().__init__(
            f"{system}: the credentials belong to {actual}, but this catalog is bound to {bound}; "
            f"refusing to start (if the change is intended, run `custsync {system} rebind`)"
        )


class UnprovenBinding(DomainError):
    """A first binding refused: the account does not know the customers the catalog links to."""


class UnknownSystem(DomainError):
    def __init__(self, system: str) -> None:
        self.system = system
        super().__init__(f"no integration named {system!r}")


class BackendUnavailable(DomainError):
    """A backend this process depends on (the database, the broker) cannot be reached or is
    overloaded right now: the same work may succeed later, so it waits; it never dead-letters.
    Adapters raise it in place of their drivers' connection errors."""

    retryable = True
    backend = "backend"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageUnavailable(BackendUnavailable):
    """The database refused or dropped the connection, is restarting, or its pool had no
    connection free in time."""

    backend = "database"


class BrokerUnavailable(BackendUnavailable):
    """The message broker cannot be reached (or did not acknowledge in time)."""

    backend = "broker"


class NotLinked(DomainError):
    """An operation that needs a customer's link to an external system, on a customer without one."""

    def __init__(self, customer_id: int, system: str) -> None:
        super().__init__(f"customer {customer_id} is not linked to {system}: push it (it is created there) instead of pulling")
        self.customer_id, self.system = customer_id, system
