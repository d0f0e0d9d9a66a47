import pytest

from domain.customer import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH, CustomerData, validated, validated_changes
from domain.errors import InvalidCustomer


def reasons(exc: pytest.ExceptionInfo[InvalidCustomer]) -> dict[str, str]:
    return {e.field: e.reason for e in exc.value.errors}


def test_fields_are_trimmed():
    assert validated("  Ada Lovelace \t", " ada@example.com ") == CustomerData("Ada Lovelace", "ada@example.com")


def test_both_fields_may_be_absent_as_stripe_allows():
    assert validated(None, None) == CustomerData(None, None)


@pytest.mark.parametrize("email", ["ada@example.com", "a.b+tag@sub.example.co.uk", "ü@bücher.de", "o'hara@example.ie"])
def test_plausible_emails_pass(email):
    assert validated(None, email).email == email


@pytest.mark.parametrize(
    "email",
    [
        "ada",
        "ada@",
        "@example.com",
        "ada@example",
        "a b@example.com",
        "a..b@example.com",
        ".a@example.com",
        "ada@@example.com",
        "ada@-example.com",
        "ada@example.c0m",
        "ada@exa_mple..com",
    ],
)
def test_broken_emails_are_refused(email):
    with pytest.raises(InvalidCustomer) as exc:
        validated(None, email)
    assert reasons(exc) == {"email": "is not a valid email address"}


def test_limits_match_stripes():
    assert validated("x" * NAME_MAX_LENGTH, None).name == "x" * NAME_MAX_LENGTH
    with pytest.raises(InvalidCustomer) as exc:
        validated("x" * (NAME_MAX_LENGTH + 1), "a@" + "b" * EMAIL_MAX_LENGTH + ".com")
    assert set(reasons(exc)) == {"name", "email"}
    assert "at most 256" in reasons(exc)["name"]


def test_length_is_counted_after_trimming():
    assert validated("  " + "x" * NAME_MAX_LENGTH + "  ", None).name == "x" * NAME_MAX_LENGTH


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_blank_strings_are_refused_rather_than_silently_cleared(value):
    with pytest.raises(InvalidCustomer) as exc:
        validated(value, None)
    assert "null" in reasons(exc)["name"]


@pytest.mark.parametrize("value", ["Ada\x00", "Ada\nLovelace", "Ada\x1b[31m"])
def test_control_characters_are_refused(value):
    with pytest.raises(InvalidCustomer) as exc:
        validated(value, None)
    assert reasons(exc) == {"name": "must not contain control characters"}


def test_every_offending_field_is_named_at_once():
    with pytest.raises(InvalidCustomer) as exc:
        validated("", "nope")
    assert set(reasons(exc)) == {"name", "email"}


def test_a_partial_change_checks_only_the_fields_it_touches():
    # The name came from Stripe and breaks our stricter input rules; changing the email must still work.
    current = CustomerData(name="Line one\nLine two", email="old@example.com")
    assert validated_changes(current, {"email": " new@example.com"}) == CustomerData("Line one\nLine two", "new@example.com")


def test_a_partial_change_can_clear_a_field():
    assert validated_changes(CustomerData("Ada", "ada@example.com"), {"name": None}) == CustomerData(None, "ada@example.com")
