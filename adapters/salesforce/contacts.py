"""The field mapping between a catalog customer and a Salesforce Contact.

A Contact has no single name field that can be written (``Name`` is a read-only compound of
``FirstName`` and ``LastName``), and ``LastName`` is required. So:

* a name is split at its **last space**: ``FirstName`` is everything before it, ``LastName``
  everything after (``"Ada King Lovelace"`` -> ``"Ada King"`` / ``"Lovelace"``); a name without
  an inner space is all ``LastName``, and so is a name whose parts would start or end with a space
  (``"Jean-Luc  Picard"``: Salesforce trims what it stores) or whose first part is longer than
  ``FirstName`` takes (the whole name still fits ``LastName``). Joining the two with one space gives
  the name back exactly, so a name never drifts through a round trip;
* a customer without a name is written with ``LastName`` = ``NO_NAME``, which reads back as no
  name (and a Contact whose ``LastName`` is empty, which Salesforce does not allow, reads as no
  name too);
* ``email`` is ``Email``.

Salesforce's own limits are shorter than the catalog's: ``FirstName`` 40, ``LastName`` 80,
``Email`` 80 characters. ``limits_refusal`` says which one a customer breaks, so that the API can
refuse it up front, as it does for Stripe's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.customer import CustomerData
from domain.errors import FieldError

NO_NAME = "[no name]"  # what LastName holds for a customer without a name (Salesforce requires one)
FIRST_NAME_MAX, LAST_NAME_MAX, EMAIL_MAX = 40, 80, 80


def split_name(name: str | None) -> tuple[str | None, str]:
    """``(FirstName, LastName)`` for a catalog name."""
    if not name:
        return None, NO_NAME
    cut = name.rfind(" ")
    first, last = name[:cut], name[cut + 1 :]
    if cut > 0 and first == first.strip() and last and last == last.strip() and len(first) <= FIRST_NAME_MAX:
        return first, last
    # Salesforce trims what it stores: a part that would lose a space keeps the name whole in
    # LastName, as does a first part too long for FirstName.
    return None, name


def joined_name(first: str | None, last: str | None) -> str | None:
    """The catalog name of a Contact's ``FirstName`` and ``LastName``."""
    if not last or last == NO_NAME:  # a first name a person typed on a Contact without a name is its name
        return first or None
    return f"{first} {last}" if first else last


def contact_fields(data: CustomerData) -> dict[str, str | None]:
    """What a Contact is written with for ``data``."""
    first, last = split_name(data.name)
    return {"FirstName": first, "LastName": last, "Email": data.email}


def customer_data(contact: Mapping[str, Any]) -> CustomerData:
    """The catalog's view of a Contact record as the REST API returns it."""
    email = contact.get("Email")
    return CustomerData(joined_name(contact.get("FirstName"), contact.get("LastName")), email or None)


def limits_refusal(data: CustomerData) -> str | None:
    """Why Salesforce would refuse ``data`` (a field longer than it takes), or None."""
    errors = field_errors({"name": data.name, "email": data.email})
    return "; ".join(f"{e.field}: {e.reason}" for e in errors) or None


def field_errors(changes: Mapping[str, str | None]) -> list[FieldError]:
    """What Salesforce would refuse of these catalog field values (trimmed as the catalog trims
    them), named by catalog field: its lengths, and the one name that would not read back."""
    errors = []
    if "name" in changes and changes["name"] is not None:
        name = changes["name"].strip()
        first, last = split_name(name)
        if name == NO_NAME:
            errors.append(FieldError("name", f"{NO_NAME!r} is what custsync writes in Salesforce for a customer without a name"))
        elif len(last) > LAST_NAME_MAX:
            errors.append(
                FieldError(
                    "name",
                    f"{'its last word goes' if first else 'it goes whole'} to Salesforce's "
                    f"LastName, which takes at most {LAST_NAME_MAX} characters ({len(last)} given)",
                )
            )
    if "email" in changes and changes["email"] is not None and len(changes["email"].strip()) > EMAIL_MAX:
        errors.append(
            FieldError(
                "email", f"Salesforce's Email takes at most {EMAIL_MAX} characters ({len(changes['email'].strip())} given)"
            )
        )
    return errors
