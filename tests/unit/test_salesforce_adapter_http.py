"""``SalesforceIntegration`` on the wire (respx): the client-credentials flow as the adapter uses it,
every class of answer mapped to the port's errors, the exact requests it sends (upserts, partial
updates, escaped SOQL, paging headers, cursors), the figures it reports, and the org it names.

The org stand-in (``InMemorySalesforce``) answers where the behaviour of a real org matters;
hand-written answers where the exact error body does."""

import json
import logging
from datetime import UTC, datetime

import httpx
import pytest
import respx

from adapters.budget import InMemoryLedger, RateBudget
from adapters.memory.clock import FakeClock
from adapters.memory.salesforce import InMemorySalesforce
from adapters.salesforce.auth import ClientCredentials
from adapters.salesforce.errors import LIMIT_RETRY_AFTER
from adapters.salesforce.integration import SalesforceIntegration
from application.errors import (
    ExternalCustomerMissing,
    IntegrationAuthError,
    PermanentIntegrationError,
    RequestRefused,
    RetryableIntegrationError,
)
from domain.binding import ExternalAccount
from domain.customer import CustomerData
from domain.ownership import Claim, OwnershipTag

HOST = "custsync-contract.my.salesforce.com"
INSTANCE = f"https://{HOST}"
TOKEN_PATH = "/services/oauth2/token"
DATA = "/services/data/v62.0"
CONTACT = "003000000000001AAA"
INSTALLATION = "0123456789abcdef0123456789abcdef"
FIELDS = (
    "Id,FirstName,LastName,Email,Custsync_Id__c,Custsync_Create__c,IsDeleted,MasterRecordId,"
    "CreatedDate,LastModifiedDate,SystemModstamp,LastModifiedById"
)


class Metrics:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, int | None]] = []
        self.waits: list[float] = []
        self.usage: list[tuple[str, int, int]] = []

    def external_request(self, system: str, method: str, status: int | None, seconds: float) -> None:
        assert seconds >= 0
        self.requests.append((system, method, status))

    def rate_limit_waited(self, system: str, seconds: float) -> None:
        self.waits.append(seconds)

    def api_usage(self, system: str, used: int, limit: int) -> None:
        self.usage.append((system, used, limit))


ORG_ID_URL = "https://login.salesforce.com/id/00D5g000004ABCDEAA/005xx"  # an 18-character org id


def granted(n: int = 1, instance: str = INSTANCE, id: str | None = ORG_ID_URL) -> httpx.Response:
    body = {"access_token": f"00D!token{n}", "instance_url": instance, "token_type": "Bearer", "issued_at": "1767225600000"}
    return httpx.Response(200, json=body | ({"id": id} if id is not None else {}))


def failure(status: int, code: str, message: str = "no", fields: list[str] | None = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=[{"errorCode": code, "message": message, "fields": fields or []}], headers=headers)


def row(id: str = CONTACT, **fields) -> dict:
    base = {
        "attributes": {"type": "Contact"},
        "Id": id,
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "Email": "ada@example.com",
        "Custsync_Id__c": None,
        "Custsync_Create__c": None,
        "IsDeleted": False,
        "MasterRecordId": None,
        "CreatedDate": "2026-01-01T00:00:00.000+0000",
        "LastModifiedDate": "2026-01-01T00:00:00.000+0000",
        "SystemModstamp": "2026-01-01T00:00:00.000+0000",
    }
    return base | fields


def rows(*records: dict) -> httpx.Response:
    return httpx.Response(200, json={"totalSize": len(records), "done": True, "records": list(records)})


@pytest.fixture
def router():
    with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def http():
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def token(router):
    """A token endpoint granting token1, token2, ... (hand-written data answers)."""
    return router.post(INSTANCE + TOKEN_PATH).mock(side_effect=[granted(n) for n in range(1, 6)])


@pytest.fixture
def org(router) -> InMemorySalesforce:
    org = InMemorySalesforce(FakeClock(), instance_url=INSTANCE, client_id="contract", client_secret="secret")
    router.route(host=HOST).mock(side_effect=org.handle)
    return org


def adapter(http: httpx.AsyncClient, **options) -> SalesforceIntegration:
    return SalesforceIntegration(http, ClientCredentials(http, INSTANCE, "contract", "secret"), **options)


def data_calls(router) -> list[httpx.Request]:
    return [call.request for call in router.calls if call.request.url.path != TOKEN_PATH]


def token_calls(router) -> list[httpx.Request]:
    return [call.request for call in router.calls if call.request.url.path == TOKEN_PATH]


# -- the client-credentials flow, through the adapter -------------------------------------------------
async def test_the_first_call_asks_for_a_token_with_the_form_and_later_calls_reuse_it(router, http, org):
    contact = org.create(FirstName="Ada", LastName="Lovelace", Email="ada@example.com")["Id"]
    sf = adapter(http)
    await sf.retrieve_customer(contact)
    await sf.update_customer(contact, {"email": "ada@lovelace.org"})
    await sf.list_customers(limit=10)
    [asked] = token_calls(router)
    assert asked.method == "POST" and asked.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(httpx.QueryParams(asked.content.decode())) == {
        "grant_type": "client_credentials",
        "client_id": "contract",
        "client_secret": "secret",
    }
    assert org.token_requests == 1 and len(org.calls) == 3
    assert len({r.headers["authorization"] for r in data_calls(router)}) == 1
    assert data_calls(router)[0].headers["authorization"] == f"Bearer {next(iter(org.tokens))}"


async def test_an_expired_session_asks_for_one_new_token_and_the_call_is_repeated(router, http, org):
    contact = org.create(FirstName="Ada", LastName="Lovelace")["Id"]
    sf = adapter(http)
    await sf.list_customers(limit=10)
    org.expire_tokens()  # every call with the old token now answers 401 INVALID_SESSION_ID
    found = await sf.retrieve_customer(contact)
    assert found.external_id == contact and found.data == CustomerData("Ada Lovelace", None)
    assert org.token_requests == 2
    retrieves = [r for r in data_calls(router) if r.url.path.endswith(contact)]
    assert len(retrieves) == 2 and retrieves[0].headers["authorization"] != retrieves[1].headers["authorization"]


async def test_a_second_401_in_a_row_pauses_sync_after_exactly_one_new_token(router, http, token):
    route = router.patch(host=HOST, path=f"{DATA}/sobjects/Contact/{CONTACT}").mock(
        return_value=failure(401, "INVALID_SESSION_ID", "Session expired or invalid")
    )
    with pytest.raises(IntegrationAuthError):
        await adapter(http).update_customer(CONTACT, {"email": "a@example.com"})
    assert token.call_count == 2 and route.call_count == 2
    assert [c.request.headers["authorization"] for c in route.calls] == ["Bearer 00D!token1", "Bearer 00D!token2"]


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (
            httpx.Response(400, json={"error": "invalid_client", "error_description": "invalid client credentials"}),
            IntegrationAuthError,
        ),
        (httpx.Response(503, text="down for maintenance"), RetryableIntegrationError),
    ],
)
async def test_a_refused_or_unavailable_token_endpoint_sends_no_data_call(router, http, answer, kind):
    router.post(INSTANCE + TOKEN_PATH).mock(return_value=answer)
    data = router.route(host=HOST, path__startswith=DATA).mock(return_value=httpx.Response(204))
    with pytest.raises(RetryableIntegrationError) as caught:
        await adapter(http).delete_customer(CONTACT)
    assert type(caught.value) is kind and data.call_count == 0


# -- every class of answer on data calls ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "kind", "retry_after"),
    [
        (failure(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."), RetryableIntegrationError, LIMIT_RETRY_AFTER),
        (failure(400, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"), RetryableIntegrationError, None),
        (failure(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred"), RetryableIntegrationError, None),
        (httpx.Response(503, text="Service Unavailable", headers={"Retry-After": "7"}), RetryableIntegrationError, 7.0),
        (
            failure(429, "REQUEST_LIMIT_EXCEEDED_CONCURRENT", "slow down", **{"Retry-After": "42"}),
            RetryableIntegrationError,
            42.0,
        ),
        (failure(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Rule says no"), RequestRefused, None),
        (failure(400, "DUPLICATES_DETECTED", "Use one of these records?"), RequestRefused, None),
        (failure(400, "INVALID_EMAIL_ADDRESS", "Email: invalid email address: x", ["Email"]), RequestRefused, None),
        (failure(400, "STRING_TOO_LONG", "LastName: data value too large", ["LastName"]), RequestRefused, None),
        (failure(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", ["LastName"]), RequestRefused, None),
        (failure(400, "INVALID_CROSS_REFERENCE_KEY", "a 400 whose code is new to us"), RequestRefused, None),
        (failure(403, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id"), IntegrationAuthError, None),
    ],
)
async def test_each_answer_to_a_write_is_the_ports_error(router, http, token, answer, kind, retry_after):
    route = router.patch(host=HOST, path=f"{DATA}/sobjects/Contact/{CONTACT}").mock(return_value=answer)
    with pytest.raises(Exception) as caught:
        await adapter(http).update_customer(CONTACT, {"name": "Ada Lovelace"})
    assert type(caught.value) is kind and caught.value.retry_after == retry_after
    assert str(caught.value).startswith(f"salesforce: {answer.status_code}")
    assert route.call_count == 1 and token.call_count == 1  # only a 401 asks for a new token


@pytest.mark.parametrize("error", [httpx.ConnectError("connection refused"), httpx.ReadTimeout("timed out")])
async def test_no_answer_waits_and_is_counted_without_a_status(router, http, token, error):
    router.delete(host=HOST, path=f"{DATA}/sobjects/Contact/{CONTACT}").mock(side_effect=error)
    metrics = Metrics()
    with pytest.raises(RetryableIntegrationError) as caught:
        await adapter(http, metrics=metrics).delete_customer(CONTACT)
    assert type(caught.value) is RetryableIntegrationError and type(error).__name__ in str(caught.value)
    assert metrics.requests == [("salesforce", "contacts.delete", None)] and metrics.usage == []


@pytest.mark.parametrize("recycle_bin", [rows(), rows(row(IsDeleted=False))], ids=["empty", "not-deleted"])
async def test_a_404_with_nothing_deleted_in_the_recycle_bin_is_missing_not_deleted(router, http, token, recycle_bin):
    router.get(host=HOST, path=f"{DATA}/sobjects/Contact/{CONTACT}").mock(
        return_value=failure(404, "NOT_FOUND", "The requested resource does not exist")
    )
    bin_ = router.get(host=HOST, path=f"{DATA}/queryAll").mock(return_value=recycle_bin)
    with pytest.raises(ExternalCustomerMissing):
        await adapter(http).retrieve_customer(CONTACT)
    assert bin_.calls.last.request.url.params["q"] == f"SELECT {FIELDS} FROM Contact WHERE Id = '{CONTACT}'"


async def test_a_404_with_the_row_deleted_in_the_recycle_bin_is_a_deletion(router, http, token):
    router.get(host=HOST, path=f"{DATA}/sobjects/Contact/{CONTACT}").mock(
        return_value=failure(404, "ENTITY_IS_DELETED", "entity is deleted")
    )
    router.get(host=HOST, path=f"{DATA}/queryAll").mock(return_value=rows(row(IsDeleted=True)))
    found = await adapter(http).retrieve_customer(CONTACT)
    assert (found.external_id, found.deleted, found.data) == (CONTACT, True, CustomerData("Ada Lovelace", "ada@example.com"))


async def test_a_contact_deleted_in_the_org_reads_as_deleted_and_a_merged_one_as_missing(http, org):
    kept = org.create(FirstName="Ada", LastName="Lovelace", Email="ada@example.com")["Id"]
    deleted = org.create(LastName="Deleted")["Id"]
    merged = org.create(FirstName="Ada", LastName="Lovelace", Email="ada@example.com")["Id"]
    org.delete(deleted)
    org.merge(kept, merged)
    sf = adapter(http)
    gone = await sf.retrieve_customer(deleted)
    assert gone.deleted is True and gone.data == CustomerData("Deleted", None)
    with pytest.raises(ExternalCustomerMissing, match="merged"):
        await sf.retrieve_customer(merged)  # the person lives on in the survivor: never a deletion
    assert (await sf.retrieve_customer(kept)).deleted is False


async def test_an_upsert_matching_several_contacts_fails_for_good(router, http, token):
    value = f"{INSTALLATION}-42"
    router.get(host=HOST, path=f"{DATA}/queryAll").mock(return_value=rows())
    router.patch(host=HOST, path=f"{DATA}/sobjects/Contact/Custsync_Id__c/{value}").mock(
        return_value=httpx.Response(
            300, json=[f"{DATA}/sobjects/Contact/003000000000001AAA", f"{DATA}/sobjects/Contact/003000000000002AAA"]
        )
    )
    tag = OwnershipTag(internal_id=42, installation=INSTALLATION, create_key="custsync-c-42")
    with pytest.raises(PermanentIntegrationError) as caught:
        await adapter(http).create_customer(CustomerData("Ada", None), tag=tag, idempotency_key="custsync-c-42")
    assert type(caught.value) is PermanentIntegrationError and "several Contacts" in str(caught.value)


# -- what goes on the wire ------------------------------------------------------------------------------
async def test_a_create_looks_in_the_recycle_bin_then_upserts_on_the_external_id(router, http, org):
    tag = OwnershipTag(internal_id=42, installation=INSTALLATION, create_key="custsync-create-42")
    value = f"{INSTALLATION}-42"
    made = await adapter(http).create_customer(
        CustomerData("Ada King Lovelace", "ada@example.com"), tag=tag, idempotency_key="custsync-create-42"
    )
    look_up, upsert = data_calls(router)
    assert (look_up.method, look_up.url.path) == ("GET", f"{DATA}/queryAll")
    assert look_up.url.params["q"] == f"SELECT {FIELDS} FROM Contact WHERE Custsync_Id__c = '{value}'"
    assert (upsert.method, upsert.url.path) == ("PATCH", f"{DATA}/sobjects/Contact/Custsync_Id__c/{value}")
    assert json.loads(upsert.content) == {
        "FirstName": "Ada King",
        "LastName": "Lovelace",
        "Email": "ada@example.com",
        "Custsync_Create__c": "custsync-create-42",
    }
    [contact] = org.by_external_id(value)
    assert made.external_id == contact["Id"] and contact["Custsync_Create__c"] == "custsync-create-42"
    assert made.claim == Claim(internal_id=42, installation=INSTALLATION, create_key="custsync-create-42")
    again = await adapter(http).create_customer(made.data, tag=tag, idempotency_key="custsync-create-42")
    assert again.external_id == made.external_id and len(org.live()) == 1  # a repeated create makes nothing new


@pytest.mark.parametrize(
    ("changes", "body"),
    [
        ({"name": "Ada Lovelace"}, {"FirstName": "Ada", "LastName": "Lovelace"}),
        ({"email": "ada@example.com"}, {"Email": "ada@example.com"}),
        ({"email": None}, {"Email": None}),
        ({"name": None, "email": "a@example.com"}, {"FirstName": None, "LastName": "[no name]", "Email": "a@example.com"}),
        ({"name": "Plato"}, {"FirstName": None, "LastName": "Plato"}),
    ],
)
async def test_an_update_patches_only_the_fields_it_was_given(router, http, token, changes, body):
    route = router.patch(host=HOST, path=f"{DATA}/sobjects/Contact/{CONTACT}").mock(return_value=httpx.Response(204))
    await adapter(http).update_customer(CONTACT, changes)
    [request] = [c.request for c in route.calls]
    assert json.loads(request.content) == body and request.headers["content-type"] == "application/json"
    assert (b'"Email":null' in request.content.replace(b" ", b"")) == (body.get("Email", "") is None)


async def test_an_update_with_no_change_sends_nothing(router, http, token):
    await adapter(http).update_customer(CONTACT, {})
    assert router.calls.call_count == 0


async def test_a_delete_is_a_delete_of_the_record(router, http, org):
    contact = org.create(LastName="Lovelace")["Id"]
    await adapter(http).delete_customer(contact)
    [request] = data_calls(router)
    assert (request.method, request.url.path) == ("DELETE", f"{DATA}/sobjects/Contact/{contact}")
    assert org.contacts[contact]["IsDeleted"] is True


HOSTILE = "o'ha\\ra\"@example.com"  # o ' h a \ r a " -- quotes and a backslash


async def test_a_hostile_email_is_escaped_in_the_soql_and_matches_only_itself(router, http, org):
    target = org.create(LastName="Hostile", Email=HOSTILE)["Id"]
    org.create(LastName="Other", Email="other@example.com")
    sf = adapter(http)
    page = await sf.list_customers(limit=10, email=HOSTILE)
    assert [c.external_id for c in page.customers] == [target] and page.customers[0].data.email == HOSTILE
    query = data_calls(router)[-1]
    assert query.url.path == f"{DATA}/query"
    assert query.url.params["q"] == (
        f"SELECT {FIELDS} FROM Contact WHERE Email = "
        r"""'o\'ha\\ra"@example.com'"""
        " ORDER BY CreatedDate DESC, Id DESC"
    )
    injected = await sf.list_customers(limit=10, email="x' OR Email != 'x")
    assert injected.customers == []  # the quote stays inside the literal: no OR reaches the query


async def test_a_list_by_email_keeps_only_the_exact_email_whatever_soql_matched(router, http, token):
    router.get(host=HOST, path=f"{DATA}/query").mock(
        return_value=rows(row("003000000000001AAA", Email="Ada@Example.com"), row("003000000000002AAA", Email="ada@example.com"))
    )
    page = await adapter(http).list_customers(limit=10, email="ada@example.com")
    assert [c.external_id for c in page.customers] == ["003000000000002AAA"]


@pytest.mark.parametrize(("page_size", "batch"), [(200, 200), (500, 500), (5, 200), (5000, 2000)])
async def test_queries_ask_for_a_batch_size_within_salesforces_bounds(router, http, org, page_size, batch):
    for n in range(batch + 1):
        org.create(LastName=f"Contact {n}")
    sf = adapter(http, page_size=page_size)
    first = await sf.list_customers(limit=10)
    assert len(first.customers) == batch and first.next_cursor is not None
    second = await sf.list_customers(limit=10, cursor=first.next_cursor)
    assert len(second.customers) == 1 and second.next_cursor is None
    query, more = data_calls(router)
    assert more.url.path == first.next_cursor and more.url.path.startswith(f"{DATA}/query/01g")
    assert query.headers["sforce-query-options"] == more.headers["sforce-query-options"] == f"batchSize={batch}"


@pytest.mark.parametrize(
    "cursor",
    [
        f"https://evil.example{DATA}/query/01gxx0000000001-200",
        f"{INSTANCE}{DATA}/query/01gxx0000000001-200",
        f"{DATA}/sobjects/Contact/{CONTACT}",
        f"{DATA}/query/01gxx0000000001-200?q=SELECT+Id+FROM+User",
        "/services/data/v61.0/query/01gxx0000000001-200",
    ],
)
async def test_a_cursor_that_is_not_ours_is_refused_without_a_request(router, http, org, cursor):
    sf = adapter(http)
    since = FakeClock().now()
    for call in (
        lambda: sf.list_customers(limit=10, cursor=cursor),
        lambda: sf.recent_changes(since=since, cursor=cursor),
        lambda: sf.created_customers(created_since=since, cursor=cursor),
    ):
        with pytest.raises(PermanentIntegrationError, match="not a query cursor of ours"):
            await call()
    assert router.calls.call_count == 0


async def test_a_cursor_climbing_out_of_query_is_refused_without_a_request(router, http, org):
    contact = org.create(LastName="Lovelace")["Id"]
    with pytest.raises(PermanentIntegrationError):
        await adapter(http).list_customers(limit=10, cursor=f"{DATA}/query/../sobjects/Contact/{contact}")
    assert data_calls(router) == []


# -- figures ----------------------------------------------------------------------------------------------
async def test_each_call_is_counted_with_its_label_and_status_and_the_daily_usage_reported(router, http, token):
    answers = [
        failure(401, "INVALID_SESSION_ID", "Session expired or invalid"),
        httpx.Response(204, headers={"Sforce-Limit-Info": "api-usage=18/15000"}),
        failure(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", **{"Sforce-Limit-Info": "api-usage=15000/15000"}),
    ]
    router.patch(host=HOST, path=f"{DATA}/sobjects/Contact/{CONTACT}").mock(side_effect=answers)
    metrics = Metrics()
    sf = adapter(http, metrics=metrics)
    await sf.update_customer(CONTACT, {"email": "a@example.com"})
    with pytest.raises(RetryableIntegrationError):
        await sf.update_customer(CONTACT, {"email": "b@example.com"})
    assert metrics.requests == [
        ("salesforce", "contacts.update", 401),
        ("salesforce", "contacts.update", 204),
        ("salesforce", "contacts.update", 403),
    ]
    assert metrics.usage == [("salesforce", 18, 15000), ("salesforce", 15000, 15000)]  # error answers count too
    assert metrics.waits == []  # no budget, no wait reported


async def test_the_orgs_usage_header_is_reported_and_every_label_named(router, http, org):
    metrics = Metrics()
    sf = adapter(http, metrics=metrics)
    tag = OwnershipTag(internal_id=7, installation=INSTALLATION, create_key="k7")
    made = await sf.create_customer(CustomerData("Ada", None), tag=tag, idempotency_key="k7")
    await sf.retrieve_customer(made.external_id)
    await sf.list_customers(limit=10)
    assert [(label, status) for _, label, status in metrics.requests] == [
        ("queryAll", 200),
        ("contacts.upsert", 201),
        ("contacts.retrieve", 200),
        ("query", 200),
    ]
    assert metrics.usage == [("salesforce", n, org.daily_limit) for n in (1, 2, 3, 4)]


async def test_a_budget_paces_calls_and_each_wait_is_reported(router, http, token):
    router.delete(host=HOST, path__startswith=f"{DATA}/sobjects/Contact/").mock(return_value=httpx.Response(204))
    clock, metrics = FakeClock(), Metrics()
    sf = adapter(http, metrics=metrics, budget=RateBudget(1.0, clock, InMemoryLedger(1.0, clock)))
    await sf.delete_customer(CONTACT)
    await sf.delete_customer("003000000000002AAA")
    assert metrics.waits == [0.0, 1.0] and clock.slept == [1.0]


# -- the account ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("instance", "mode"),
    [
        ("https://x--dev.sandbox.my.salesforce.com", "sandbox"),
        ("https://x.my.salesforce.com", "production"),
    ],
)
async def test_the_account_is_the_tokens_org_in_its_mode(router, http, instance, mode):
    router.post(INSTANCE + TOKEN_PATH).mock(return_value=granted(instance=instance))
    assert await adapter(http).account() == ExternalAccount("00D5g000004ABCD", mode)
    assert router.calls.call_count == 1  # the token says it all: no data call


async def test_the_account_of_the_org_stand_in(http, org):
    assert await adapter(http).account() == ExternalAccount(org.org_id[:15], "production")  # the 15-character id


@pytest.mark.parametrize("id", [None, "", "https://login.salesforce.com/id/not-an-org/005xx"])
async def test_a_token_naming_no_org_fails_for_good(router, http, id):
    router.post(INSTANCE + TOKEN_PATH).mock(return_value=granted(id=id))
    with pytest.raises(PermanentIntegrationError, match="names no organization"):
        await adapter(http).account()


# -- what each call says in the log ----------------------------------------------------------------------
async def test_a_polls_page_logs_at_debug_and_every_other_call_at_info(http, org, caplog):
    """An idle org adds no INFO line per poll (the poll says itself what it found); a look-up that
    guards a create or a deletion, a reconcile page and every write stay at INFO."""
    contact = org.create(FirstName="Ada", LastName="Lovelace", Email="ada@example.com")["Id"]
    sf = adapter(http)
    with caplog.at_level(logging.DEBUG, logger="adapters.salesforce.integration"):
        await sf.recent_changes(since=datetime(2020, 1, 1, tzinfo=UTC))
        polled = [(r.levelno, r.getMessage()) for r in caplog.records]
        caplog.clear()
        await sf.list_customers(limit=10)
        await sf.retrieve_customer(contact)
        await sf.update_customer(contact, {"email": "ada@lovelace.org"})
        others = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [(level, message.split(" in ")[0]) for level, message in polled] == [(logging.DEBUG, "salesforce queryAll -> 200")]
    assert [message.split(" in ")[0] for _, message in others] == [
        "salesforce query -> 200",
        "salesforce contacts.retrieve -> 200",
        "salesforce contacts.update -> 204",
    ]
    assert {level for level, _ in others} == {logging.INFO}
