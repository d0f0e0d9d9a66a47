"""Who made an external record: the rules that keep another installation's customers out of ours.

An external record says which catalog customer it belongs to (Stripe: ``metadata``). Anyone with
access to the account can write that: another installation of custsync on a shared test account,
a copied account, a person, a script. So what a record says is a **claim**, never a proof; only a
claim that matches something this installation itself did (its installation id *and* the key of
the create it saved before sending) links a record to an existing catalog customer.
"""

from __future__ import annotations

import uuid

import msgspec

from domain.mapping import CreateIntent

# The prefix of every idempotency key this service sends: a Stripe event names the key of the
# request that caused it, which tells our own writes (echoes) from everybody else's.
KEY_PREFIX = "custsync"


def new_installation_id() -> str:
    return uuid.uuid4().hex


class OwnershipTag(msgspec.Struct, frozen=True, kw_only=True):
    """What we write on an external record we made or adopted (Stripe: metadata keys)."""

    internal_id: int
    installation: str
    create_key: str | None = None  # the create intent's key, on records our own create made


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """What an external record says about its catalog twin. Each part may be missing or wrong."""

    internal_id: int | None = None
    installation: str | None = None
    create_key: str | None = None

    @property
    def empty(self) -> bool:
        return self.internal_id is None and self.installation is None and self.create_key is None


NO_CLAIM = Claim()


def proves_own_create(claim: Claim, installation: str, intent: CreateIntent | None) -> bool:
    """Rule "metadata is a claim, not a proof": a record is the one our create made only if it
    carries this installation's id, the catalog id, *and* the key of the create intent we saved
    for that customer before sending it. Without a pending intent nothing of ours is unlinked."""
    return (
        intent is not None
        and claim.installation == installation
        and claim.internal_id == intent.customer_id
        and claim.create_key == intent.idempotency_key
    )


def claimed_by_another_installation(claim: Claim, installation: str) -> bool:
    """Another custsync owns this record: never overwrite its tags (its own links depend on them)."""
    return claim.installation is not None and claim.installation != installation


def write_key(installation: str, kind: str) -> str:
    """A fresh idempotency key for one write of ours (``custsync-<installation>-<kind>-<uuid>``)."""
    return f"{KEY_PREFIX}-{installation}-{kind}-{uuid.uuid4().hex}"


def is_own_write(request_key: str | None, installation: str) -> bool:
    """Did a request of this installation cause the event (its idempotency key is one of ours)?"""
    return request_key is not None and request_key.startswith(f"{KEY_PREFIX}-{installation}-")
