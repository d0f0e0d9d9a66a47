"""Three-way sync, end to end: real `custsync api` and `custsync worker` processes on PostgreSQL and
Kafka, with INTEGRATIONS=stripe,salesforce, against the Stripe test server and a Salesforce org
behind a real HTTP server (``tests/support/salesforce_server``). Salesforce sends no webhooks, and
no Stripe webhook is delivered here: every change made on the other side arrives by catch-up
(CATCHUP_INTERVAL=1 s, CATCHUP_OVERLAP=5 s).

The processes are started once for the module (each test works on customers of its own); the
database is this module's own (``<TEST_DATABASE_URL's database>_three_way``), and the worker's
fresh consumer groups start at the end of the shared sync topics, which are left alone.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.engine import make_url

from adapters.kafka.topics import ensure_topics
from adapters.memory.salesforce import stamp
from adapters.salesforce.integration import change_event_id
from application.sync.groups import sync_groups
from tests.support.infra import SYNC_TOPICS, migrate, recreate_database
from tests.support.processes import Processes, base_env, wait_until
from tests.support.salesforce_server import SalesforceServer
from tests.support.stripe_server import StripeServer, free_port

pytestmark = pytest.mark.integration

INTERVAL, OVERLAP = 1, 5  # CATCHUP_INTERVAL, CATCHUP_OVERLAP (seconds)
API_TOKEN = "three-way-api-token"
DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://custsync:custsync@127.0.0.1:25432/custsync_test"
DATA = "/services/data/v62.0"


class ThreeWay:
    """The running pipeline and both other sides."""

    def __init__(
        self, database_url: str, stripe: StripeServer, salesforce: SalesforceServer, processes: Processes, api_url: str
    ) -> None:
        self.database_url, self.stripe, self.salesforce, self.processes = database_url, stripe, salesforce, processes
        self.dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.http = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=5)
        # Edits made in Stripe's dashboard: they go through the server (its thread), never faulted.
        self.dashboard = httpx.Client(
            base_url=stripe.url, timeout=5, headers={"x-dashboard": "1", "authorization": "Bearer sk_test_dashboard"}
        )
        self.installation = ""

    def sql(self, statement: str, *args: Any) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            connection = await asyncpg.connect(self.dsn)
            try:
                return await connection.fetch(statement, *args)
            finally:
                await connection.close()

        return asyncio.run(run())

    # -- the catalog ---------------------------------------------------------------------------------
    def customer(self, customer_id: int) -> dict[str, Any]:
        answer = self.http.get(f"/api/v1/customers/{customer_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def link(self, customer_id: int, system: str) -> dict[str, Any]:
        [link] = [m for m in self.customer(customer_id)["mappings"] if m["system"] == system]
        return link

    def synced_everywhere(self, customer_id: int) -> dict[str, str] | None:
        """``{system: external id}`` once both links are synced."""
        links = {m["system"]: m for m in self.customer(customer_id)["mappings"]}
        if set(links) != {"stripe", "salesforce"} or any(m["sync_status"] != "synced" for m in links.values()):
            return None
        return {system: m["external_id"] for system, m in links.items()}

    def create(self, name: str, email: str) -> tuple[int, str, str]:
        """A customer created through the API, once it is in both systems: (id, Stripe id, Contact id)."""
        answer = self.http.post("/api/v1/customers", json={"name": name, "email": email})
        assert answer.status_code == 201, answer.text
        customer_id = answer.json()["id"]
        ids = wait_until(lambda: self.synced_everywhere(customer_id), 20, 0.1, f"customer {customer_id} synced to both")
        return customer_id, ids["stripe"], ids["salesforce"]

    def patch(self, customer_id: int, **fields: str) -> None:
        answer = self.http.patch(f"/api/v1/customers/{customer_id}", json=fields)
        assert answer.status_code == 200, answer.text

    @contextmanager
    def salesforce_down(self) -> Iterator[None]:
        """Salesforce answers every call 503 while inside, token requests too."""
        self.salesforce.down_status = 503
        try:
            yield
        finally:
            self.salesforce.down_status = None

    def quiet(self, customer_id: int) -> bool:
        """Nothing of this customer waits: the outbox is published, no sync record is unsettled."""
        [(unpublished,)] = self.sql("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        [(unsettled,)] = self.sql(
            "SELECT count(*) FROM sync_records WHERE customer_id = $1 AND status IN ('pending', 'retrying')", customer_id
        )
        return unpublished == 0 and unsettled == 0

    def applied(self, system: str, event_id: str) -> bool:
        return bool(self.sql("SELECT 1 FROM inbox WHERE system = $1 AND event_id = $2", system, event_id))

    # -- Salesforce ----------------------------------------------------------------------------------
    def contact(self, contact_id: str) -> dict[str, Any]:
        contact = self.salesforce.contact(contact_id)
        assert contact is not None, contact_id
        return contact

    def change_id(self, contact_id: str) -> str:
        """The event id catch-up gives the Contact's latest change (``<Id>@<SystemModstamp>#<state>``)."""
        contact = self.contact(contact_id)
        return change_event_id(
            {**contact, "SystemModstamp": stamp(contact["SystemModstamp"])}, "Custsync_Id__c", "Custsync_Create__c"
        )

    def writes_to_contact(self, contact_id: str) -> int:
        """Writes our worker sent to that Contact (updates, tags, deletes by id)."""
        path = f"{DATA}/sobjects/Contact/{contact_id}"
        return sum(1 for method, p in list(self.salesforce.requests) if p == path and method in ("PATCH", "DELETE"))

    def upserts_for(self, value: str) -> int:
        path = f"{DATA}/sobjects/Contact/Custsync_Id__c/{value}"
        return sum(1 for method, p in list(self.salesforce.requests) if (method, p) == ("PATCH", path))

    def contacts_claiming(self, value: str) -> list[dict[str, Any]]:
        """Every Contact (deleted ones too) whose External ID is ``value``."""
        with self.salesforce.lock:
            return [dict(c) for c in self.salesforce.org.contacts.values() if c.get("Custsync_Id__c") == value]

    def diagnosis(self, customer_id: int, contact_id: str) -> str:
        """What a failure message needs: the Contact, the catalog's rows and the org's last requests."""
        lines = [f"contact: {self.salesforce.contact(contact_id)}"]
        lines += [f"customer: {dict(r)}" for r in self.sql("SELECT * FROM customers WHERE id = $1", customer_id)]
        lines += [f"mapping: {dict(r)}" for r in self.sql("SELECT * FROM external_mappings WHERE customer_id = $1", customer_id)]
        lines += [
            f"sync record: {dict(r)}"
            for r in self.sql("SELECT * FROM sync_records WHERE customer_id = $1 ORDER BY id", customer_id)
        ]
        lines += [
            f"salesforce request: {at:.3f} {method} {path} -> {status}"
            for at, method, path, status in self.salesforce.timed[-30:]
        ]
        return "\n".join(lines)

    # -- Stripe --------------------------------------------------------------------------------------
    def stripe_customers(self, **match: str) -> list[dict[str, Any]]:
        return [c for c in list(self.stripe.stripe.customers.values()) if all(c.get(k) == v for k, v in match.items())]

    def stripe_writes(self, stripe_id: str) -> int:
        return sum(
            1 for method, path, _ in list(self.stripe.requests) if (method, path) == ("POST", f"/v1/customers/{stripe_id}")
        )


def _database_url() -> str:
    admin = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    try:
        url = asyncio.run(recreate_database(admin, f"{make_url(admin).database}_three_way"))
    except OSError as exc:
        pytest.fail(f"PostgreSQL is not reachable ({exc}): `scripts/services.sh up`", pytrace=False)
    return url


async def _start_group_at_end(kafka: str, group: str) -> None:
    """Commit ``group``'s offsets at the end of every sync topic: its first member reads only what
    is published from now on (the topics are shared, and not reset here)."""
    await ensure_topics(kafka, 3, topics=SYNC_TOPICS)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka, client_id="custsync-tests")
    await admin.start()
    try:
        described = await admin.describe_topics(SYNC_TOPICS)
    finally:
        await admin.close()
    partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    assert {tp.topic for tp in partitions} == set(SYNC_TOPICS), described
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        await consumer.commit({tp: await consumer.position(tp) for tp in partitions})
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
def three_way(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreeWay]:
    database_url = _database_url()
    migrate(database_url, kafka)
    group = f"custsync-3way-{uuid.uuid4().hex[:8]}"
    for one in sync_groups(group, ("stripe", "salesforce")):  # the worker's groups: inbound, and one per system
        asyncio.run(_start_group_at_end(kafka, one.group_id))
    api_port = free_port()
    with StripeServer() as stripe, SalesforceServer() as salesforce:
        env = {
            **base_env(),
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "KAFKA_PARTITIONS": "3",
            "KAFKA_GROUP_ID": group,
            "API_TOKEN": API_TOKEN,
            "STRIPE_SECRET_KEY": "sk_test_integration",
            "STRIPE_WEBHOOK_SECRET": "whsec_three_way",
            "STRIPE_MAX_RPS": "200",
            "STRIPE_API_BASE": stripe.url,
            "INTEGRATIONS": "stripe,salesforce",
            "SALESFORCE_INSTANCE_URL": salesforce.url,
            "SALESFORCE_CLIENT_ID": salesforce.client_id,
            "SALESFORCE_CLIENT_SECRET": salesforce.client_secret,
            "SALESFORCE_MAX_RPS": "100",
            "CATCHUP_INTERVAL": str(INTERVAL),
            "CATCHUP_OVERLAP": str(OVERLAP),
            "WORKER_RETRY_MAX_DELAY": "1",
        }
        processes = Processes(env, tmp_path_factory.mktemp("three-way"))
        pipeline = ThreeWay(database_url, stripe, salesforce, processes, f"http://127.0.0.1:{api_port}")
        try:
            api = processes.start("api", "--port", str(api_port))
            worker = processes.start("worker")

            def api_up() -> bool:
                try:
                    return pipeline.http.get("/health", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(api_up, 30, 0.1, "the API up")
            # Catch-up reads from its first poll on: changes made on the other side before it are
            # a reconcile's business, so the tests start once both systems were polled.
            wait_until(
                lambda: len(pipeline.sql("SELECT 1 FROM sync_cursors WHERE name = 'changes' AND position IS NOT NULL")) == 2,
                30,
                0.1,
                "the first polls of Stripe and Salesforce",
            )
            [(pipeline.installation,)] = pipeline.sql("SELECT id FROM installation")
            yield pipeline
            for proc in (api, worker):
                assert proc.poll() is None, f"{proc.args[1]} exited:\n{processes.log(proc)[-3000:]}"
        finally:
            salesforce.down_status = None
            processes.stop_all()
            pipeline.http.close()
            pipeline.dashboard.close()


def test_a_customer_created_through_the_api_reaches_stripe_and_salesforce_once(three_way: ThreeWay):
    p = three_way
    customer_id, stripe_id, contact_id = p.create("Ada Lovelace", "ada@example.com")
    value = f"{p.installation}-{customer_id}"

    [held] = p.stripe_customers(email="ada@example.com")
    assert held["id"] == stripe_id and held["name"] == "Ada Lovelace" and held["metadata"]["internal_id"] == str(customer_id)
    [contact] = p.contacts_claiming(value)
    assert contact["Id"] == contact_id and not contact["IsDeleted"]
    assert (contact["FirstName"], contact["LastName"], contact["Email"]) == ("Ada", "Lovelace", "ada@example.com")
    assert contact["Custsync_Create__c"], "the create key proves our create made it"
    assert contact["LastModifiedById"] == p.salesforce.org.integration_user

    # Catch-up lists our own create back; it is applied as ours (no import, no second anything).
    wait_until(lambda: p.applied("salesforce", p.change_id(contact_id)), 10, 0.1, "our create's echo polled back")
    wait_until(lambda: p.quiet(customer_id), 10, 0.1, "nothing pending")
    assert p.sql("SELECT id FROM customers WHERE email = 'ada@example.com'") == [(customer_id,)]
    assert len(p.stripe_customers(email="ada@example.com")) == 1
    assert [c["Id"] for c in p.contacts_claiming(value)] == [contact_id]
    assert [c["Id"] for c in p.salesforce.live() if c["Email"] == "ada@example.com"] == [contact_id]
    assert p.upserts_for(value) == 1
    assert p.synced_everywhere(customer_id) == {"stripe": stripe_id, "salesforce": contact_id}


def test_b_an_edit_in_salesforce_reaches_the_catalog_and_stripe_and_is_not_sent_back(three_way: ThreeWay):
    p = three_way
    customer_id, stripe_id, contact_id = p.create("Grace Hopper", "grace@example.com")
    wait_until(lambda: p.applied("salesforce", p.change_id(contact_id)), 10, 0.1, "our create's echo polled back")
    writes_before = p.writes_to_contact(contact_id)
    upserts_before = p.upserts_for(f"{p.installation}-{customer_id}")

    p.salesforce.edit(contact_id, Email="grace.hopper@navy.example", LastName="Hopper-Murray")
    edit = p.change_id(contact_id)

    wait_until(lambda: p.customer(customer_id)["email"] == "grace.hopper@navy.example", 15, 0.1, "the edit in the catalog")
    assert p.customer(customer_id)["name"] == "Grace Hopper-Murray"
    wait_until(
        lambda: p.stripe.stripe.customers[stripe_id]["email"] == "grace.hopper@navy.example", 15, 0.1, "the edit in Stripe"
    )
    assert p.stripe.stripe.customers[stripe_id]["name"] == "Grace Hopper-Murray"
    wait_until(lambda: p.synced_everywhere(customer_id), 10, 0.1, "both links synced")
    wait_until(lambda: p.quiet(customer_id), 10, 0.1, "nothing pending")
    assert p.applied("salesforce", edit)
    time.sleep(2 * INTERVAL)  # a late bounce would have been sent by now (polls, retries)

    assert p.writes_to_contact(contact_id) == writes_before, "a write went back to the Contact the edit came from"
    assert p.upserts_for(f"{p.installation}-{customer_id}") == upserts_before
    contact = p.contact(contact_id)
    assert (contact["Email"], contact["LastName"], contact["LastModifiedById"]) == (
        "grace.hopper@navy.example",
        "Hopper-Murray",
        p.salesforce.org.person,
    )
    assert p.change_id(contact_id) == edit  # the Contact was not touched since the person's edit


def test_c_a_change_in_stripe_reaches_the_catalog_and_salesforce(three_way: ThreeWay):
    p = three_way
    customer_id, stripe_id, contact_id = p.create("Katherine Johnson", "katherine@example.com")
    stripe_writes_before = p.stripe_writes(stripe_id)

    answer = p.dashboard.post(f"/v1/customers/{stripe_id}", data={"name": "Katherine Coleman Johnson"})
    assert answer.status_code == 200, answer.text
    event_id = p.stripe.stripe.events[-1]["id"]

    wait_until(lambda: p.customer(customer_id)["name"] == "Katherine Coleman Johnson", 15, 0.1, "the change in the catalog")
    # A catalog name is split at its last space into FirstName and LastName.
    wait_until(lambda: p.contact(contact_id)["FirstName"] == "Katherine Coleman", 15, 0.1, "the change in Salesforce")
    contact = p.contact(contact_id)
    assert (contact["LastName"], contact["Email"], contact["LastModifiedById"]) == (
        "Johnson",
        "katherine@example.com",
        p.salesforce.org.integration_user,
    )
    wait_until(lambda: p.synced_everywhere(customer_id), 10, 0.1, "both links synced")
    wait_until(lambda: p.quiet(customer_id), 10, 0.1, "nothing pending")
    assert p.applied("stripe", event_id)
    assert p.stripe_writes(stripe_id) == stripe_writes_before, "the change was sent back to Stripe"
    assert p.stripe.stripe.customers[stripe_id]["name"] == "Katherine Coleman Johnson"


def test_d_a_contact_created_in_salesforce_is_imported_once_created_in_stripe_once_and_tagged(three_way: ThreeWay):
    p = three_way
    made = p.salesforce.create(FirstName="Hedy", LastName="Lamarr", Email="hedy@example.com")
    contact_id = made["Id"]
    assert made["Custsync_Id__c"] is None

    def imported() -> int | None:
        rows = p.sql("SELECT id FROM customers WHERE email = 'hedy@example.com'")
        return rows[0]["id"] if rows else None

    customer_id = wait_until(imported, 15, 0.1, "the Contact imported into the catalog")
    ids = wait_until(lambda: p.synced_everywhere(customer_id), 15, 0.1, "the imported customer synced to both")
    assert ids["salesforce"] == contact_id
    wait_until(
        lambda: p.contact(contact_id)["Custsync_Id__c"] == f"{p.installation}-{customer_id}", 10, 0.1, "the Contact tagged"
    )
    # The tag is a change too: catch-up lists it back, and it is read as ours.
    wait_until(lambda: p.applied("salesforce", p.change_id(contact_id)), 10, 0.1, "the tag polled back")
    wait_until(lambda: p.quiet(customer_id), 10, 0.1, "nothing pending")
    time.sleep(2 * INTERVAL)

    assert p.sql("SELECT id, name, deleted FROM customers WHERE email = 'hedy@example.com'") == [
        (customer_id, "Hedy Lamarr", False)
    ]
    [held] = p.stripe_customers(email="hedy@example.com")
    assert held["id"] == ids["stripe"] and held["name"] == "Hedy Lamarr" and held["metadata"]["internal_id"] == str(customer_id)
    assert held["metadata"]["custsync_create"].startswith(f"custsync-{p.installation}-create-")
    assert [c["Id"] for c in p.salesforce.live() if c["Email"] == "hedy@example.com"] == [contact_id]
    assert p.upserts_for(f"{p.installation}-{customer_id}") == 0  # linked where it was, never created again
    contact = p.contact(contact_id)
    assert (contact["FirstName"], contact["LastName"]) == ("Hedy", "Lamarr")


def test_e_a_contact_deleted_in_salesforce_deletes_the_customer_and_in_stripe_for_good(three_way: ThreeWay):
    p = three_way
    customer_id, stripe_id, contact_id = p.create("Barbara Liskov", "barbara@example.com")
    wait_until(lambda: p.applied("salesforce", p.change_id(contact_id)), 10, 0.1, "our create's echo polled back")

    p.salesforce.delete(contact_id)
    deletion = p.change_id(contact_id)
    deleted_at = time.monotonic()

    wait_until(
        lambda: p.sql("SELECT deleted FROM customers WHERE id = $1", customer_id) == [(True,)],
        15,
        0.1,
        "the catalog customer deleted",
    )
    wait_until(lambda: stripe_id in p.stripe.stripe.deleted, 15, 0.1, "the Stripe customer deleted")
    assert p.applied("salesforce", deletion)
    assert p.http.get(f"/api/v1/customers/{customer_id}").status_code in (404, 410)

    # Every poll for the next overlap lists the deletion again (and Stripe's own deletion event is
    # polled back): none brings anyone back.
    while time.monotonic() < deleted_at + OVERLAP + 2 * INTERVAL + 1:
        assert p.sql("SELECT deleted FROM customers WHERE id = $1", customer_id) == [(True,)]
        assert not p.sql("SELECT id FROM customers WHERE email = 'barbara@example.com' OR id > $1", customer_id)
        assert not p.stripe_customers(email="barbara@example.com")
        assert not [c for c in p.salesforce.live() if c["Email"] == "barbara@example.com"]
        time.sleep(0.25)
    wait_until(lambda: p.quiet(customer_id), 10, 0.1, "nothing pending")
    assert p.sql("SELECT deleted FROM customers WHERE id = $1", customer_id) == [(True,)]
    assert not p.sql("SELECT id FROM customers WHERE email = 'barbara@example.com' OR id > $1", customer_id)
    assert not p.stripe_customers(email="barbara@example.com")
    assert p.contact(contact_id)["IsDeleted"] is True
    assert [c["Id"] for c in p.contacts_claiming(f"{p.installation}-{customer_id}")] == [contact_id]
    assert p.upserts_for(f"{p.installation}-{customer_id}") == 1


def test_f_a_salesforce_outage_holds_salesforce_back_while_stripe_gets_the_change_then_salesforce_converges(
    three_way: ThreeWay,
):
    p = three_way
    customer_id, stripe_id, contact_id = p.create("Frances Allen", "frances@example.com")
    wait_until(lambda: p.quiet(customer_id), 10, 0.1, "nothing pending")

    with p.salesforce_down():
        p.patch(customer_id, email="frances.allen@example.com")
        wait_until(
            lambda: p.link(customer_id, "salesforce")["sync_status"] == "retrying", 15, 0.1, "the Salesforce link retrying"
        )
        wait_until(
            lambda: p.stripe.stripe.customers[stripe_id]["email"] == "frances.allen@example.com",
            15,
            0.1,
            "the change in Stripe during the Salesforce outage",
        )
        assert p.link(customer_id, "stripe")["sync_status"] == "synced"
        # The worker keeps trying (nothing is dead-lettered), and Salesforce waits meanwhile.
        contact_url = f"{DATA}/sobjects/Contact/{contact_id}"
        wait_until(
            lambda: sum(1 for _, _, path, status in list(p.salesforce.timed) if (path, status) == (contact_url, 503)) >= 2,
            10,
            0.1,
            "a retry during the outage",
        )
        assert p.link(customer_id, "salesforce")["sync_status"] == "retrying"
        assert p.contact(contact_id)["Email"] == "frances@example.com"

    try:
        wait_until(
            lambda: p.contact(contact_id)["Email"] == "frances.allen@example.com",
            20,
            0.1,
            "Salesforce converged after the outage",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{p.diagnosis(customer_id, contact_id)}") from None
    wait_until(lambda: p.synced_everywhere(customer_id), 10, 0.1, "both links synced")
    wait_until(lambda: p.quiet(customer_id), 10, 0.1, "nothing pending")
    assert p.stripe.stripe.customers[stripe_id]["email"] == "frances.allen@example.com"
    assert [c["Id"] for c in p.contacts_claiming(f"{p.installation}-{customer_id}")] == [contact_id]
    assert len(p.stripe_customers(email="frances.allen@example.com")) == 1


def test_f_a_second_change_made_during_a_salesforce_outage_reaches_stripe_before_salesforce_is_back(three_way: ThreeWay):
    p = three_way
    customer_id, stripe_id, contact_id = p.create("Margaret Hamilton", "margaret@example.com")
    wait_until(lambda: p.quiet(customer_id), 10, 0.1, "nothing pending")

    with p.salesforce_down():
        p.patch(customer_id, email="margaret.hamilton@example.com")
        wait_until(
            lambda: p.stripe.stripe.customers[stripe_id]["email"] == "margaret.hamilton@example.com",
            15,
            0.1,
            "the first change in Stripe during the Salesforce outage",
        )
        wait_until(
            lambda: p.link(customer_id, "salesforce")["sync_status"] == "retrying", 15, 0.1, "the Salesforce link retrying"
        )
        # The catalog changes again while the first change still waits for Salesforce: Stripe's
        # own consumer group carries it at once (application.sync.groups).
        p.patch(customer_id, name="Margaret H. Hamilton")
        wait_until(
            lambda: p.stripe.stripe.customers[stripe_id]["name"] == "Margaret H. Hamilton",
            5,
            0.1,
            "the second change in Stripe during the Salesforce outage",
        )
        assert p.link(customer_id, "stripe")["sync_status"] == "synced"
        assert p.link(customer_id, "salesforce")["sync_status"] == "retrying"
        assert p.contact(contact_id)["Email"] == "margaret@example.com"  # Salesforce still waits

        def lag(group: str) -> int:  # as the broker tells it, for each of the worker's groups
            answer = p.http.get("/api/v1/status")
            assert answer.status_code == 200, answer.text
            return sum(answer.json()["lag"][group].values())

        wait_until(lambda: lag("stripe") == 0, 10, 0.2, "Stripe's group committed")
        assert lag("salesforce") >= 1  # the changes wait on Salesforce's group alone

    try:
        wait_until(
            lambda: (
                (p.contact(contact_id)["Email"], p.contact(contact_id)["FirstName"])
                == ("margaret.hamilton@example.com", "Margaret H.")
            ),
            20,
            0.1,
            "Salesforce converged after the outage",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{p.diagnosis(customer_id, contact_id)}") from None
    wait_until(lambda: p.synced_everywhere(customer_id), 10, 0.1, "both links synced")
    wait_until(lambda: p.quiet(customer_id), 10, 0.1, "nothing pending")
    assert p.stripe.stripe.customers[stripe_id]["email"] == "margaret.hamilton@example.com"
