"""domain/drift.py: how a linked pair is classified, how a first link merges two records that share
no history, and what two emails must share to match."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.conflicts import ConflictPolicy
from domain.customer import Customer, CustomerData
from domain.drift import FindingKind, Fix, ReconcileRun, RunStatus, compare_linked, email_key, first_link_data
from domain.mapping import ExternalMapping
from domain.messages import ExternalCustomer

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BASE = CustomerData("Ada", "ada@example.com")


def customer(data: CustomerData = BASE, *, version: int = 2, deleted: bool = False) -> Customer:
    return Customer(id=1, data=data, version=version, created_at=T0, updated_at=T0, deleted=deleted)


def link(baseline: CustomerData = BASE, *, synced_version: int = 2, broken: str | None = None) -> ExternalMapping:
    return ExternalMapping(
        customer_id=1,
        system="stripe",
        external_id="cus_1",
        synced=baseline,
        synced_version=synced_version,
        synced_at=T0,
        broken=broken,
    )


def there(data: CustomerData = BASE) -> ExternalCustomer:
    return ExternalCustomer(external_id="cus_1", data=data)


def test_a_pair_holding_the_same_values_is_in_sync_and_needs_nothing():
    assert compare_linked(customer(), link(), there()) == (FindingKind.IN_SYNC, Fix.NONE, (), None)


@pytest.mark.parametrize(
    ("here", "over_there", "detail"),
    [
        (BASE, CustomerData("Ada L.", "ada@example.com"), "name: changed there"),
        (CustomerData("Ada L.", "ada@example.com"), BASE, "name: changed here"),
        (CustomerData("Ada K.", "ada@example.com"), CustomerData("Ada L.", "ada@example.com"), "name: changed on both sides"),
    ],
)
def test_a_pair_that_differs_is_refreshed_through_the_inbound_rules_and_says_who_changed_what(here, over_there, detail):
    kind, fix, fields, said = compare_linked(customer(here), link(), there(over_there))
    assert (kind, fix, fields, said) == (FindingKind.DIFFERS, Fix.REFRESH, ("name",), detail)


def test_every_differing_field_is_named_in_order():
    kind, _, fields, detail = compare_linked(customer(CustomerData("B", "b@example.com")), link(), there())
    assert (kind, fields) == (FindingKind.DIFFERS, ("email", "name"))
    assert detail == "email: changed here; name: changed here"


def test_a_deletion_here_that_never_reached_there_is_sent_again():
    deleted = customer(CustomerData(), version=3, deleted=True)
    assert compare_linked(deleted, link(synced_version=2), there())[:3] == (FindingKind.DIFFERS, Fix.PUSH, ("deleted",))


def test_a_synced_deletion_still_listed_there_is_for_a_person_to_decide():
    """Sending the deletion again would destroy a record someone restored on purpose (or a restored
    account): it is reported, never guessed."""
    deleted = customer(CustomerData(), version=3, deleted=True)
    kind, fix, fields, detail = compare_linked(deleted, link(synced_version=3), there())
    assert (kind, fix, fields) == (FindingKind.DIFFERS, Fix.NONE, ("deleted",)) and "a person decides" in detail


def test_a_broken_link_whose_record_is_listed_again_is_pushed():
    kind, fix, _, detail = compare_linked(customer(), link(broken="404 on retrieve"), there())
    assert (kind, fix) == (FindingKind.DIFFERS, Fix.PUSH) and "404 on retrieve" in detail


@pytest.mark.parametrize(
    ("here", "over_there", "policy", "merged"),
    [
        # a field set on one side only takes that value: a link never clears anything
        (CustomerData(None, "ada@example.com"), CustomerData("Ada", "ada@example.com"), ConflictPolicy.LATEST_WINS, BASE),
        (CustomerData("Ada", "ada@example.com"), CustomerData(None, "ada@example.com"), ConflictPolicy.LATEST_WINS, BASE),
        # set differently on both: the catalog's (the hub) ...
        (CustomerData("Ada", "ada@example.com"), CustomerData("Ada L.", "ADA@example.com"), ConflictPolicy.LATEST_WINS, BASE),
        (CustomerData("Ada", "ada@example.com"), CustomerData("Ada L.", "ADA@example.com"), ConflictPolicy.INTERNAL_WINS, BASE),
        # ... unless the external side wins every conflict
        (
            CustomerData("Ada", "ada@example.com"),
            CustomerData("Ada L.", "ADA@example.com"),
            ConflictPolicy.EXTERNAL_WINS,
            CustomerData("Ada L.", "ADA@example.com"),
        ),
        (CustomerData("Ada", None), CustomerData(None, "ada@example.com"), ConflictPolicy.EXTERNAL_WINS, BASE),
    ],
)
def test_a_first_link_takes_the_union_and_settles_conflicts_by_the_policy(here, over_there, policy, merged):
    assert first_link_data(here, over_there, policy) == merged


@pytest.mark.parametrize(
    ("email", "key"),
    [
        ("Ada@Example.COM", "ada@example.com"),
        ("ada@example.com", "ada@example.com"),
        (None, None),
        ("", None),
    ],
)
def test_emails_match_ignoring_case_and_a_missing_email_matches_nothing(email, key):
    assert email_key(email) == key


def test_a_run_counts_add_up_and_zeroes_are_not_stored():
    run = ReconcileRun(
        id=1, system="stripe", status=RunStatus.RUNNING, dry_run=False, match_by=None, trigger="cli", created_at=T0
    )
    counted = run.counted(in_sync=3, differs=0).counted(in_sync=2, only_here=1)
    assert counted.counts == {"in_sync": 5, "only_here": 1} and run.counts == {}
    assert RunStatus.QUEUED.active and RunStatus.RUNNING.active and not RunStatus.DONE.active
