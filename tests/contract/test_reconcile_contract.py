"""Reconcile on both storages (in memory and PostgreSQL): the queries a run asks of the whole
catalog are anti-joins in PostgreSQL, so the same scenarios pin them to the in-memory ones."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from application.commands import CreateCustomer
from application.customers.create import create_customer
from application.sync.reconcile import OtherRunActive, request_run
from domain.customer import CustomerData
from domain.drift import FindingKind, Fix, FixStatus, MatchBy, Phase, RunStatus
from domain.messages import OUTBOUND_TOPIC
from tests.unit.test_reconcile_runs import assert_converged, before_install, catalog, findings, reconcile


async def test_a_first_sync_with_matching_by_email(api_system):
    system = api_system
    stripe_ids, catalog_ids = await before_install(
        system,
        stripe=[("Ada", "Ada@example.com"), ("Bo", "bo@example.com"), ("Bo 2", "bo@example.com"), ("Only there", None)],
        catalog=[("Ada", "ada@example.com"), ("Bo", "bo@example.com"), ("Only here", "here@example.com")],
    )
    run = await reconcile(system, match_by=MatchBy.EMAIL)
    found = {f.subject: f for f in await findings(system, run)}
    assert found[f"customer:{catalog_ids[0]}"].fix is Fix.LINK
    assert found["email:bo@example.com"].kind is FindingKind.AMBIGUOUS
    assert found[f"customer:{catalog_ids[2]}"].fix is Fix.EXPORT
    assert found[f"external:{stripe_ids[3]}"].fix is Fix.IMPORT
    assert run.counts == {
        "external_listed": 4,
        "only_here": 2,
        "only_there": 1,
        "ambiguous": 1,
        "fix_applied": 3,
        "fix_none": 1,
    }
    await system.settle()
    assert len(system.stripe.customers) == 5 and len(await catalog(system)) == 4
    again = await reconcile(system, match_by=MatchBy.EMAIL)
    assert Counter(f.kind for f in await findings(system, again)) == {FindingKind.AMBIGUOUS: 1}
    assert again.counts["in_sync"] == 3


async def test_a_run_interrupted_anywhere_resumes_and_applies_each_fix_once(api_system):
    system = api_system
    await before_install(system, stripe=[(f"S{i}", None) for i in range(230)], catalog=[(f"C{i}", None) for i in range(520)])
    phases = set()
    for stop_at in range(1, 40):  # stopped after 1 page, resumed, stopped after 2 more, ...
        stopping = asyncio.Event()
        seen = []

        def progress(run, seen=seen, stopping=stopping, stop_at=stop_at):
            seen.append(run.phase)
            if len(seen) >= stop_at % 3 + 1:
                stopping.set()

        run = await reconcile(system, stopping=stopping, progress=progress, owner=f"runner-{stop_at}", dead=True)
        phases.add(run.phase)
        if run.status is RunStatus.DONE:
            break
    assert run.status is RunStatus.DONE and {Phase.EXTERNAL, Phase.CATALOG, Phase.UNLINKED} <= phases
    assert run.counts["fix_applied"] == 750
    await system.settle()
    await assert_converged(system)
    events = Counter(m.key for m in system.messages(OUTBOUND_TOPIC))
    assert len(events) == 750 and set(events.values()) == {1}


async def test_one_active_run_per_system(api_system):
    uow_factory, clock = api_system.uow_factory, api_system.clock
    first, created = await request_run(uow_factory, clock, "stripe", dry_run=True, match_by=None, trigger="api")
    same, again = await request_run(uow_factory, clock, "stripe", dry_run=True, match_by=None, trigger="api")
    assert created and not again and same.id == first.id
    with pytest.raises(OtherRunActive):
        await request_run(uow_factory, clock, "stripe", dry_run=False, match_by=MatchBy.EMAIL, trigger="api")


async def test_what_a_missing_link_becomes(api_system):
    system = api_system
    customers = [await create_customer(CreateCustomer(f"C{i}", None), system.uow_factory(), system.clock) for i in range(3)]
    await system.settle()
    ids = [(await system.mapping(c.id)).external_id for c in customers]
    await system.stripe.delete_async(ids[0])  # deleted there, its webhook lost
    del system.stripe.customers[ids[1]]  # unknown there
    system.delivered = len(system.stripe.events)
    await asyncio.sleep(0.01)
    run = await reconcile(system)
    found = {f.customer_id: f for f in await findings(system, run)}
    assert found[customers[0].id].fix_status is FixStatus.APPLIED and (await system.customer(customers[0].id)).deleted
    assert found[customers[1].id].fix_status is FixStatus.FAILED and not (await system.customer(customers[1].id)).deleted
    assert customers[2].id not in found and run.counts["in_sync"] == 1


async def test_the_held_emails_are_those_of_the_latest_completed_run(api_system):
    system = api_system
    await before_install(
        system,
        stripe=[("Ada", "Ada@example.com"), ("Bo", "bo@example.com")],
        catalog=[("Ada", "ada@example.com"), ("Bo", "bo@example.com")],
    )
    keys = ["ada@example.com", "bo@example.com", "cy@example.com"]

    async def held():
        async with system.uow_factory() as uow:
            return await uow.reconcile.ambiguous_emails("stripe", keys)

    assert await held() == set()  # no run yet: nothing held
    await reconcile(system, dry_run=True)
    assert await held() == set()  # a dry run changes nothing, holds included
    await reconcile(system)
    assert await held() == {"ada@example.com", "bo@example.com"}
    await reconcile(system, dry_run=True, match_by=MatchBy.EMAIL)  # a preview plans links, links nothing
    assert await held() == {"ada@example.com", "bo@example.com"}
    async with system.uow_factory() as uow:
        assert (
            await uow.reconcile.ambiguous_emails("other", keys) == set()
            and await uow.reconcile.ambiguous_emails("stripe", []) == set()
        )
    await reconcile(system, match_by=MatchBy.EMAIL)  # links both: the latest run holds nothing
    assert await held() == set()


async def test_claimed_and_in_flight_customers_are_held_back_from_export_and_link(api_system):
    from application.sync.creates import create_intent

    system = api_system
    _, [claimed, in_flight, free] = await before_install(
        system,
        catalog=[("Claimed", "a@example.com"), ("In flight", "b@example.com"), ("Free", "c@example.com")],
    )
    record = await system.stripe.create_async(
        params={
            "name": "Claimed",
            "metadata": {"internal_id": str(claimed), "custsync_installation": await system.installation()},
        }
    )
    system.delivered = len(system.stripe.events)
    ctx = await system.context()
    async with system.uow_factory() as uow:
        await create_intent(uow, await uow.customers.get(in_flight), "stripe", ctx)
    run = await reconcile(system, dry_run=True)
    async with system.uow_factory() as uow:
        held = await uow.reconcile.held_back(run.id, "stripe", [claimed, in_flight, free])
        assert await uow.reconcile.held_back(run.id, "stripe", []) == {}
    assert held == {claimed: f"claimed by {record['id']}", in_flight: "its create is in flight"}
    found = {f.subject: f for f in await findings(system, run)}
    # The create in flight is sent again (the same create under its key); the claimed one is not.
    assert (found[f"customer:{free}"].fix, found[f"customer:{claimed}"].fix, found[f"customer:{in_flight}"].fix) == (
        Fix.EXPORT,
        Fix.NONE,
        Fix.EXPORT,
    )


async def test_a_page_is_compared_where_the_data_is_and_its_links_marked_seen(api_system):
    """linked_in_page, the SQL comparison of a page, agrees with the rule (compare_linked) on both
    storages: nulls equal nulls, case is a difference, a deletion or a broken link is never in sync."""
    from datetime import timedelta

    from domain.messages import ExternalCustomer

    system = api_system
    names = [("Ada", "ada@example.com"), (None, None), ("Bob", "bob@example.com"), ("Cy", None), ("Dee", "dee@example.com")]
    made = [await create_customer(CreateCustomer(n, e), system.uow_factory(), system.clock) for n, e in names]
    await system.settle()
    async with system.uow_factory() as uow:
        links = [await uow.mappings.get(c.id, "stripe") for c in made]
        await uow.mappings.save(links[4].marked_broken("404"))
        await uow.commit()
    ids = [link.external_id for link in links]
    page = [
        ExternalCustomer(external_id=ids[0], data=CustomerData("Ada", "ada@example.com")),  # in sync
        ExternalCustomer(external_id=ids[1], data=CustomerData(None, None)),  # in sync: nulls
        ExternalCustomer(external_id=ids[2], data=CustomerData("Bob", "BOB@example.com")),  # differs: case
        ExternalCustomer(external_id=ids[3], data=CustomerData("Cy", "cy@example.com")),  # differs: null vs value
        ExternalCustomer(external_id=ids[4], data=CustomerData("Dee", "dee@example.com")),  # broken link
        ExternalCustomer(external_id="cus_unlinked", data=CustomerData("Eve", None)),
    ]
    run, _ = await request_run(system.uow_factory, system.clock, "stripe", dry_run=True, match_by=None, trigger="cli")
    async with system.uow_factory() as uow:
        linked, differing = await uow.reconcile.linked_in_page(run.id, "stripe", page)
        assert await uow.reconcile.linked_in_page(run.id, "stripe", []) == (set(), set())
        await uow.commit()
    assert linked == set(ids) and differing == {ids[2], ids[3], ids[4]}
    async with system.uow_factory() as uow:  # marked seen: no link is left unseen
        assert await uow.reconcile.unseen_links(run.id, "stripe", system.clock.now() + timedelta(seconds=1), None, 100) == []
