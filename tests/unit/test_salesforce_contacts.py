"""The catalog <-> Contact field mapping: a name splits at its last space and joins back exactly;
no name is Salesforce's required LastName placeholder and reads back as none."""

import pytest

from adapters.salesforce.contacts import NO_NAME, contact_fields, customer_data, limits_refusal, split_name
from domain.customer import CustomerData


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("Ada Lovelace", "Ada", "Lovelace"),
        ("Ada King Lovelace", "Ada King", "Lovelace"),
        ("Plato", None, "Plato"),
        (None, None, NO_NAME),
        ("", None, NO_NAME),
        ("Ada  Lovelace", None, "Ada  Lovelace"),  # Salesforce would trim "Ada ": kept whole
        (" Plato", None, " Plato"),
        ("Plato ", None, "Plato "),
        ("李 小龍", "李", "小龍"),
    ],
)
def test_a_name_splits_at_its_last_inner_space(name, first, last):
    assert split_name(name) == (first, last)


@pytest.mark.parametrize(
    "name", ["Ada Lovelace", "Ada King Lovelace", "Plato", None, "Ada  Lovelace", " Plato", "Plato ", "a b c d"]
)
@pytest.mark.parametrize("email", ["ada@example.com", None])
def test_every_customer_round_trips_through_a_contact_without_drifting(name, email):
    data = CustomerData(name, email)
    assert customer_data(contact_fields(data)) == data


def test_a_contact_made_in_salesforce_reads_as_its_names_joined():
    assert customer_data({"FirstName": "Grace", "LastName": "Hopper", "Email": "grace@example.com"}) == CustomerData(
        "Grace Hopper", "grace@example.com"
    )
    assert customer_data({"FirstName": None, "LastName": "Hopper", "Email": None}) == CustomerData("Hopper", None)
    # A first name a person typed on a Contact we wrote without a name: that is its name (the
    # placeholder never reaches the catalog, nor Stripe through it).
    assert customer_data({"FirstName": "Grace", "LastName": NO_NAME, "Email": ""}) == CustomerData("Grace", None)


def test_salesforce_limits_are_named_with_the_field_that_breaks_them():
    assert limits_refusal(CustomerData("A" * 40 + " " + "B" * 80, "a@example.com")) is None
    # A first part too long for FirstName: the whole name goes to LastName, if it fits there.
    assert limits_refusal(CustomerData("A" * 41 + " B", None)) is None
    assert split_name("A" * 41 + " B") == (None, "A" * 41 + " B")
    assert "LastName" in limits_refusal(CustomerData("A" * 41 + " " + "B" * 40, None))
    assert "LastName" in limits_refusal(CustomerData("B" * 81, None))
    assert "Email" in limits_refusal(CustomerData("Ada", "a" * 70 + "@example.com"))
    assert "without a name" in limits_refusal(CustomerData(NO_NAME, None))
    assert limits_refusal(CustomerData("  " + "B" * 80 + "  ", None)) is None  # trimmed first, as the catalog does
