"""GET /api/v1/customers: keyset pagination, its bounds, and the email filter."""

from __future__ import annotations

import base64

import pytest

from tests.http.helpers import CUSTOMERS, assert_problem, create, url


async def collect_pages(client, limit: int, **params) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        query = {"limit": limit, **params} | ({"cursor": cursor} if cursor else {})
        response = await client.get(CUSTOMERS, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["limit"] == limit
        pages.append(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 20, "pagination does not end"


async def test_empty_catalog_lists_no_customers_and_no_cursor(client):
    response = await client.get(CUSTOMERS)
    assert response.status_code == 200
    assert response.json() == {"data": [], "limit": 50, "next_cursor": None}


async def test_pages_follow_next_cursor_through_every_customer_once_in_id_order(client):
    created = [await create(client, name=f"Customer {i}") for i in range(7)]

    pages = await collect_pages(client, limit=3)

    assert [len(p) for p in pages] == [3, 3, 1]
    listed = [c["id"] for page in pages for c in page]
    assert listed == [c["id"] for c in created]  # no gaps, no duplicates, oldest first
    assert pages[0][0] == {k: created[0][k] for k in pages[0][0]}


async def test_a_full_last_page_has_no_next_cursor(client):
    for i in range(4):
        await create(client, name=f"Customer {i}")

    pages = await collect_pages(client, limit=2)

    assert [len(p) for p in pages] == [2, 2]


async def test_the_same_cursor_returns_the_same_page(client):
    for i in range(5):
        await create(client, name=f"Customer {i}")
    first = (await client.get(CUSTOMERS, params={"limit": 2})).json()

    again = [(await client.get(CUSTOMERS, params={"limit": 2, "cursor": first["next_cursor"]})).json() for _ in range(2)]

    assert again[0] == again[1]
    assert [c["id"] for c in again[0]["data"]] == [3, 4]


async def test_a_cursor_stays_valid_when_its_customer_is_deleted_and_new_customers_arrive_at_the_end(client):
    for i in range(4):
        await create(client, name=f"Customer {i}")
    first = (await client.get(CUSTOMERS, params={"limit": 2})).json()
    assert (await client.delete(url(2))).status_code == 204  # the last one the cursor saw
    await create(client, name="Late")

    rest = (await client.get(CUSTOMERS, params={"limit": 10, "cursor": first["next_cursor"]})).json()

    assert [c["name"] for c in rest["data"]] == ["Customer 2", "Customer 3", "Late"]
    assert rest["next_cursor"] is None


async def test_default_page_size_is_50(client):
    for i in range(51):
        await create(client, name=f"Customer {i}")

    body = (await client.get(CUSTOMERS)).json()

    assert (len(body["data"]), body["limit"]) == (50, 50)
    assert body["next_cursor"] is not None


@pytest.mark.parametrize("limit", [1, 100])
async def test_limit_accepts_its_bounds(client, limit):
    await create(client, name="Ada")
    await create(client, name="Grace")

    body = (await client.get(CUSTOMERS, params={"limit": limit})).json()

    assert body["limit"] == limit
    assert len(body["data"]) == min(limit, 2)


@pytest.mark.parametrize(
    "limit", ["0", "101", "-1", "abc", "1.5", ""], ids=["zero", "over-100", "negative", "word", "float", "empty"]
)
async def test_limit_out_of_bounds_or_not_an_integer_is_422_naming_limit(client, limit):
    response = await client.get(CUSTOMERS, params={"limit": limit})

    assert_problem(response, 422, field="limit")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor!",
        "",
        "%%%",
        b64(b"after:x"),
        b64(b"before:1"),
        b64(b"after:-1"),
        b64(b"after:" + b"9" * 19),
        b64(b"\xff\xfe"),
        "é",
    ],
    ids=["garbage", "empty", "percent", "non-numeric", "wrong-prefix", "negative", "too-long", "not-utf8", "non-ascii"],
)
async def test_a_cursor_this_api_did_not_issue_is_422_naming_cursor(client, cursor):
    await create(client, name="Ada")

    response = await client.get(CUSTOMERS, params={"cursor": cursor})

    assert_problem(response, 422, field="cursor")


async def test_email_filter_is_an_exact_case_insensitive_match(client):
    ada = await create(client, name="Ada", email="ada@example.com")
    ada_upper = await create(client, name="ADA", email="ADA@Example.COM")
    for other in ["xada@example.com", "ada@example.co", "ada@example.com.au"]:
        await create(client, email=other)
    await create(client, name="No email")

    body = (await client.get(CUSTOMERS, params={"email": "Ada@EXAMPLE.com"})).json()

    assert [c["id"] for c in body["data"]] == [ada["id"], ada_upper["id"]]


async def test_email_filter_paginates_over_matches_only(client):
    for i in range(3):
        await create(client, name=f"Match {i}", email="same@example.com")
        await create(client, name=f"Other {i}", email=f"other{i}@example.com")

    pages = await collect_pages(client, limit=2, email="same@example.com")

    assert [[c["name"] for c in p] for p in pages] == [["Match 0", "Match 1"], ["Match 2"]]


async def test_email_filter_longer_than_1024_characters_is_422_naming_email(client):
    response = await client.get(CUSTOMERS, params={"email": "a" * 1025})

    assert_problem(response, 422, field="email")


async def test_deleted_customers_are_not_listed(client):
    kept = await create(client, name="Kept", email="kept@example.com")
    gone = await create(client, name="Gone", email="gone@example.com")
    assert (await client.delete(url(gone["id"]))).status_code == 204

    listed = (await client.get(CUSTOMERS)).json()["data"]
    by_email = (await client.get(CUSTOMERS, params={"email": "gone@example.com"})).json()["data"]

    assert [c["id"] for c in listed] == [kept["id"]]
    assert by_email == []


async def test_list_items_carry_the_customer_fields_without_mappings(client):
    created = await create(client, name="Ada", email="ada@example.com")

    [item] = (await client.get(CUSTOMERS)).json()["data"]

    assert item == created
    assert "mappings" not in item
