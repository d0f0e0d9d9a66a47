from datetime import UTC, datetime, timedelta

import pytest

from domain.conflicts import ConflictPolicy
from domain.customer import Customer, CustomerData
from domain.mapping import ExternalMapping, FieldWrite
from domain.plans import merge_inbound, outbound_changes

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BASE = CustomerData("Ada", "ada@example.com")


def customer(data: CustomerData, updated_at: datetime = T0) -> Customer:
    return Customer(id=1, data=data, version=2, created_at=T0, updated_at=updated_at)


def mapping(baseline: CustomerData = BASE) -> ExternalMapping:
    return ExternalMapping(customer_id=1, system="stripe", external_id="cus_1", synced=baseline, synced_version=1, synced_at=T0)


def test_outbound_sends_only_the_fields_that_differ_from_the_baseline():
    assert outbound_changes(customer(CustomerData("Ada L.", "ada@example.com")), mapping()) == {"name": "Ada L."}


def test_outbound_sends_a_cleared_field_as_none():
    assert outbound_changes(customer(CustomerData("Ada", None)), mapping()) == {"email": None}


def test_an_external_state_equal_to_the_baseline_is_an_echo():
    merge = merge_inbound(customer(BASE), mapping(), BASE, T0, ConflictPolicy.LATEST_WINS)
    assert merge.is_echo and merge.data == BASE


def test_an_external_change_is_taken_field_by_field():
    merge = merge_inbound(
        customer(CustomerData("Ada L.", "ada@example.com")),
        mapping(),
        CustomerData("Ada", "new@example.com"),
        T0,
        ConflictPolicy.INTERNAL_WINS,
    )
    # Our unsynced name change survives; their email change lands: no conflict, nothing lost.
    assert merge.data == CustomerData("Ada L.", "new@example.com")
    assert merge.conflicts == frozenset()


def test_both_sides_changing_a_field_to_the_same_value_is_no_conflict():
    same = CustomerData("Ada L.", "ada@example.com")
    merge = merge_inbound(customer(same), mapping(), same, T0, ConflictPolicy.INTERNAL_WINS)
    assert merge.conflicts == frozenset() and merge.data == same and merge.baseline == same


@pytest.mark.parametrize(
    ("policy", "external_offset", "expected"),
    [
        (ConflictPolicy.INTERNAL_WINS, 60, "Catalog"),
        (ConflictPolicy.EXTERNAL_WINS, -60, "Stripe"),
        (ConflictPolicy.LATEST_WINS, 60, "Stripe"),
        (ConflictPolicy.LATEST_WINS, -60, "Catalog"),
        (ConflictPolicy.LATEST_WINS, 0.4, "Catalog"),  # same second: the tie goes to the catalog
    ],
)
def test_a_conflict_is_settled_by_the_policy(policy, external_offset, expected):
    ours = customer(CustomerData("Catalog", "ada@example.com"), updated_at=T0 + timedelta(seconds=0.1))
    # The event that told of Stripe's change, and when it was made.
    told = with_writes(mapping(), name=FieldWrite("Stripe", T0 + timedelta(seconds=external_offset)))
    merge = merge_inbound(ours, told, CustomerData("Stripe", "ada@example.com"), T0, policy)
    assert merge.conflicts == {"name"}
    assert merge.data.name == expected
    assert merge.kept_internal == (frozenset({"name"}) if expected == "Catalog" else frozenset())
    # The baseline always follows Stripe, so a kept catalog value is pushed back out next.
    assert merge.baseline.name == "Stripe"


def test_latest_wins_waits_for_the_event_of_a_state_it_only_re_fetched():
    # Stripe holds a value no event has dated yet: its time is unknown, so nothing is decided.
    ours = customer(CustomerData("Catalog", "ada@example.com"), updated_at=T0)
    merge = merge_inbound(
        ours, mapping(), CustomerData("Stripe", "ada@example.com"), T0 + timedelta(hours=1), ConflictPolicy.LATEST_WINS
    )
    assert merge.deferred == {"name"} and merge.data.name == "Catalog" and merge.baseline.name == "Ada"


def test_a_newer_external_change_wins_even_over_our_push_that_overwrote_it():
    # We pushed "Catalog" (changed at T0) over Stripe's "Stripe", which an event dates T0 + 5 s.
    ours = customer(CustomerData("Catalog", "ada@example.com"), updated_at=T0)
    pushed = with_writes(
        mapping(CustomerData("Catalog", "ada@example.com")), name=FieldWrite("Stripe", T0 + timedelta(seconds=5))
    )
    merge = merge_inbound(ours, pushed, CustomerData("Catalog", "ada@example.com"), T0, ConflictPolicy.LATEST_WINS)
    assert merge.data.name == "Stripe" and merge.times == {"name": T0 + timedelta(seconds=5)}


def with_writes(m: ExternalMapping, **writes: FieldWrite) -> ExternalMapping:
    return m.with_external_writes(writes)
