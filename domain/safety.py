"""The rules that decide when sync may destroy customer data. Every place that tombstones a
catalog customer because of an external signal goes through one of these.

- **A 404 is not a deletion.** Stripe keeps deleted customers retrievable (``deleted: true``); a
  404 on a customer we mapped means another account, another mode (test/live) or a restored
  database. It breaks the link (``ExternalMapping.broken``) and changes nothing in the catalog.
- **An object's own ``deleted`` flag is evidence only on a deletion event or a re-fetch.** A
  ``customer.updated`` whose object says ``deleted: true`` is malformed or forged: re-fetch.
- **Metadata is a claim, not a proof** (see ``domain.ownership``): linking never deletes on a claim.
"""

from __future__ import annotations

from domain.customer import CustomerData
from domain.messages import ChangeKind, ExternalChange, ExternalCustomer


def deletion_without_refetch(change: ExternalChange) -> bool:
    """Only a deletion event (Stripe: ``customer.deleted``) deletes without asking again: a
    deletion is final, so no later state can contradict it."""
    return change.kind is ChangeKind.DELETED


def must_refetch(change: ExternalChange, baseline: CustomerData | None) -> bool:
    """Re-fetch unless the event is a deletion (final) or its snapshot is the agreed baseline (an
    echo, or a state since superseded). An object that merely *says* ``deleted`` outside a
    deletion event is always re-fetched: only the answer may prove the deletion."""
    if deletion_without_refetch(change):
        return False
    if change.observed and baseline is None and not change.customer.deleted and not change.forced:
        # A record a reconcile just read from the list, linked to nothing: imported as read. A
        # change since has an event of its own, and the import's tagging re-reads it anyway.
        return False
    return baseline is None or change.customer.deleted or change.customer.data != baseline


def proves_deletion(retrieved: ExternalCustomer) -> bool:
    """What a re-fetch answered proves a deletion only when it says so (``deleted: true``). The
    caller never gets here on a 404: that is ``ExternalCustomerMissing``, a broken link."""
    return retrieved.deleted
